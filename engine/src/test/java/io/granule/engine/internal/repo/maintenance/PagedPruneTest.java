package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.assertValid;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.backup;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.live;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.packed;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prune, verify, stats and restore over chunk tables larger than the index's memory budget (1 MiB
 * here, through {@code granule.index.memory-mib}): the tables are paged through their files and
 * filled through loaders, and every answer is as with tables in memory.
 */
class PagedPruneTest {
  private static final int CHUNK = 4096;
  private static final int CHUNKS = 24_000;

  @TempDir Path tmp;

  /** A disk of {@code CHUNKS} distinct chunks numbered from {@code first}: compressible, unique. */
  private Path numbered(String name, int first) throws Exception {
    Path p = tmp.resolve(name);
    ByteBuffer block = ByteBuffer.allocate(CHUNK);
    try (FileChannel ch =
        FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      for (int i = 0; i < CHUNKS; i++) {
        block.clear();
        block.putLong(0, first + i + 1L).putLong(8, 0x5eedL);
        ch.write(block);
      }
    }
    return p;
  }

  @Test
  void pruneOfARepositoryOverTheBudgetKeepsExactlyTheLiveChunks() throws Exception {
    Path a = numbered("a.raw", 0);
    Path b = numbered("b.raw", CHUNKS / 2); // half of a's chunks, half new
    Path dir = tmp.resolve("repo");
    Manifest first;
    Manifest second;
    RepositoryConfig config =
        RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(256 << 10);
    try (Repository r = Repository.init(dir, config)) {
      first = backup(r, "vda", a, "h").manifest();
      second = backup(r, "vda", b, "h").manifest();
    }
    String before = System.getProperty("granule.index.memory-mib");
    System.setProperty("granule.index.memory-mib", "1");
    try {
      assertThat(ChunkIndex.defaultMemory()).isEqualTo(1 << 20);
      try (Repository r = open(dir)) {
        assertThat(r.stats().chunks()).isEqualTo(CHUNKS * 3 / 2);
        r.lock(LockKind.SHARED, "forget", Duration.ZERO);
        assertThat(r.forgetSnapshots(List.of(first.id()), false)).hasSize(1);
      }
      Set<ChunkId> liveB = live(dir);
      assertThat(liveB).hasSize(CHUNKS);
      Pruner.Report rep;
      try (Repository r = open(dir)) {
        r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
        rep =
            r.prune(
                new Pruner.Options(false, 1.0, java.time.Duration.ZERO),
                (phase, done, total) -> {});
        assertThat(r.stats().chunks()).as("chunk index after reload").isEqualTo(CHUNKS);
        assertValid(r, Map.of(second.id(), TestImages.sha256(b)), tmp);
      }
      assertThat(rep.liveChunks()).isEqualTo(CHUNKS);
      Map<ChunkId, Integer> packed = packed(dir);
      assertThat(packed.keySet()).as("exactly the live chunks").isEqualTo(liveB);
      assertThat(packed.values()).as("each once").containsOnly(1);
      try (Repository r = open(dir)) {
        assertThat(backup(r, "vda", b, "h").progress().bytesNew())
            .as("a new backup dedups against what stayed")
            .isZero();
      }
    } finally {
      if (before == null) {
        System.clearProperty("granule.index.memory-mib");
      } else {
        System.setProperty("granule.index.memory-mib", before);
      }
    }
  }

  private Repository open(Path dir) {
    return Repository.open(new LocalBlobStore(dir), Clock.systemUTC(), tmp.resolve("cache"));
  }
}
