package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.assertValid;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.backup;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.PasswordSource;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.RetryingBlobStore;
import io.granule.engine.internal.repo.blob.S3Proxy;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prune on S3 with two hosts' metadata caches: the host that did not prune drops its cached copies
 * of deleted index blobs, reloads its chunk index when it takes a lock, and stores pruned chunks
 * again instead of deduplicating against them.
 */
class S3PruneTest {
  @TempDir Path tmp;

  static long cachedIndexes(Path cache) throws Exception {
    try (Stream<Path> s = Files.list(cache)) {
      // the repository's directory, not pins/
      Path repoCache =
          s.filter(p -> p.getFileName().toString().matches("[0-9a-f]{64}"))
              .findFirst()
              .orElseThrow();
      Path idx = repoCache.resolve("index");
      if (!Files.isDirectory(idx)) {
        return 0;
      }
      try (Stream<Path> f = Files.list(idx)) {
        return f.count();
      }
    }
  }

  @Test
  void pruneOnS3InvalidatesTheOtherHostsCacheAndChunkIndex() throws Exception {
    byte[] dataA = TestImages.mixed(4 << 20, 21);
    byte[] dataB = TestImages.mixed(4 << 20, 22);
    Path imageA = TestImages.write(tmp.resolve("a.raw"), dataA);
    Path imageB = TestImages.write(tmp.resolve("b.raw"), dataB);
    PasswordSource pw = "pw"::toCharArray;
    Path cache1 = tmp.resolve("host1-cache");
    Path cache2 = tmp.resolve("host2-cache");
    try (S3Proxy proxy = S3Proxy.start(tmp.resolve("s3"))) {
      BlobStore remote = RetryingBlobStore.withDefaults(proxy.store("prune"));
      Manifest a;
      Manifest b;
      try (Repository r =
          Repository.init(
              remote,
              RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(512 << 10),
              Clock.systemUTC(),
              tmp.resolve("idx1"),
              "pw".toCharArray(),
              KdfParams.TESTING,
              cache1)) {
        a = backup(r, "vda", imageA, "h").manifest();
        b = backup(r, "vda", imageB, "h").manifest();
      }
      try (Repository host2 =
          Repository.open(remote, Clock.systemUTC(), tmp.resolve("idx2"), pw, cache2)) {
        host2.stats(); // loads its chunk index (on first use), which caches the index blobs
        long before = cachedIndexes(cache2);
        assertThat(before).isPositive();
        try (Repository host1 =
            Repository.open(remote, Clock.systemUTC(), tmp.resolve("idx1"), pw, cache1)) {
          host1.lock(LockKind.SHARED, "forget", Duration.ZERO);
          host1.forgetSnapshots(List.of(a.id()), false);
        }
        try (Repository host1 =
            Repository.open(remote, Clock.systemUTC(), tmp.resolve("idx1"), pw, cache1)) {
          host1.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
          // All were written just now: a margin spares A's fixed index and so A's chunks.
          Pruner.Report spared =
              host1.prune(new Pruner.Options(false, 1.0, Duration.ofHours(1)), (p, d, t) -> {});
          assertThat(spared.packsDeleted() + spared.packsRepacked()).isZero();
          assertThat(spared.itemIndexesSpared()).isEqualTo(1);
          Pruner.Report rep =
              host1.prune(new Pruner.Options(false, 1.0, java.time.Duration.ZERO), (p, d, t) -> {});
          assertThat(rep.packsDeleted() + rep.packsRepacked()).isPositive();
        }
        assertThat(remote.list(BlobType.LOCK)).isEmpty();
        // Host 2 still has A's chunks in its chunk index and A's index blobs in its cache.
        host2.lock(LockKind.SHARED, "backup", Duration.ZERO);
        assertThat(cachedIndexes(cache2))
            .as("cached copies of deleted index blobs dropped")
            .isEqualTo(remote.list(BlobType.INDEX).size());
        Manifest again = backup(host2, "vda", imageA, "h").manifest();
        Map<String, String> expected = new HashMap<>();
        expected.put(b.id(), TestImages.sha256(dataB));
        expected.put(again.id(), TestImages.sha256(dataA));
        assertValid(host2, expected, tmp);
      }
    }
  }
}
