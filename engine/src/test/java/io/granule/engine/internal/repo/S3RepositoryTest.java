package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.RetryingBlobStore;
import io.granule.engine.internal.repo.blob.S3Proxy;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An encrypted repository on a real S3 server, with the local metadata cache. */
class S3RepositoryTest {
  @TempDir Path tmp;

  /** Counts whole-blob loads per type that reach the remote store. */
  static final class Counting implements BlobStore {
    final BlobStore d;
    final Map<BlobType, AtomicInteger> loads = new ConcurrentHashMap<>();

    Counting(BlobStore d) {
      this.d = d;
    }

    int loads(BlobType t) {
      return loads.getOrDefault(t, new AtomicInteger()).get();
    }

    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      d.save(name, data);
    }

    @Override
    public byte[] load(BlobName name) throws IOException {
      loads.computeIfAbsent(name.type(), t -> new AtomicInteger()).incrementAndGet();
      return d.load(name);
    }

    @Override
    public byte[] load(BlobName name, long offset, int length) throws IOException {
      return d.load(name, offset, length);
    }

    @Override
    public Optional<BlobInfo> stat(BlobName name) throws IOException {
      return d.stat(name);
    }

    @Override
    public List<BlobName> list(BlobType type) throws IOException {
      return d.list(type);
    }

    @Override
    public void delete(BlobName name) throws IOException {
      d.delete(name);
    }

    @Override
    public String location() {
      return d.location();
    }
  }

  @Test
  void encryptedRoundTripOnS3AndMetadataComesFromTheCache() throws Exception {
    byte[] data = TestImages.mixed(6 << 20, 91);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    Path cache = tmp.resolve("xdg-cache/granule");
    PasswordSource pw = "s3 secret"::toCharArray;
    try (S3Proxy proxy = S3Proxy.start(tmp)) {
      BlobStore remote = RetryingBlobStore.withDefaults(proxy.store("hosts/a"));
      Manifest m;
      String id;
      try (Repository repo =
              Repository.init(
                  remote,
                  RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(1 << 20),
                  Clock.systemUTC(),
                  tmp.resolve("idx"),
                  "s3 secret".toCharArray(),
                  KdfParams.TESTING,
                  cache);
          RawDiskImage img = RawDiskImage.open(image)) {
        id = repo.config().repositoryId();
        m =
            repo.backup(
                    new BackupRequest(List.of(new NamedDisk("vda", img)), "h", null, null),
                    BackupListener.NONE)
                .manifest();
      }
      assertThat(cache.resolve(id).resolve("snapshots").resolve(m.id())).isRegularFile();

      Counting counting = new Counting(remote);
      try (Repository repo =
          Repository.open(counting, Clock.systemUTC(), tmp.resolve("idx"), pw, cache)) {
        assertThat(repo.snapshots()).containsExactly(m);
        repo.restoreDisk(m, "vda", tmp.resolve("out"));
        assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
        // the index, fixed index and snapshot blobs were all read from the cache
        assertThat(counting.loads(BlobType.INDEX)).isZero();
        assertThat(counting.loads(BlobType.SNAPSHOT)).isZero();
        assertThat(counting.loads(BlobType.FIXED_INDEX)).isZero();
        // but verify checks the repository's own (a cached copy hid its damage: audit X-H1)
        assertThat(repo.verify(true, VerifyListener.NONE).ok()).isTrue();
        assertThat(counting.loads(BlobType.INDEX)).isPositive();
        assertThat(counting.loads(BlobType.SNAPSHOT)).isPositive();
      }

      // a cold cache downloads them once, then has them
      try (var files = Files.walk(cache)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
      Counting cold = new Counting(remote);
      try (Repository repo =
          Repository.open(cold, Clock.systemUTC(), tmp.resolve("idx"), pw, cache)) {
        assertThat(repo.snapshots()).containsExactly(m);
      }
      assertThat(cold.loads(BlobType.SNAPSHOT)).isEqualTo(1);
      assertThat(cache.resolve(id).resolve("snapshots").resolve(m.id())).isRegularFile();
    }
  }
}
