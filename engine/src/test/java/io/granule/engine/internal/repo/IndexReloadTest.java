package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A disk opened before the repository reloads its chunk index (index blobs came or went: another
 * process, a lock taken) goes on reading through the reloaded index, which replaces the old one's
 * entries in place; the old table's memory is freed at once, not left to a reader that holds it.
 */
class IndexReloadTest {
  @TempDir Path tmp;

  @Test
  void anOpenDiskReadsOnAfterTheIndexIsReloaded() throws Exception {
    byte[] a = new byte[8 << 20];
    new Random(1).nextBytes(a);
    byte[] b = new byte[1 << 20];
    new Random(2).nextBytes(b);
    Path ia = TestImages.write(tmp.resolve("a.raw"), a);
    Path ib = TestImages.write(tmp.resolve("b.raw"), b);
    RepositoryConfig cfg = RepositoryConfig.defaults().withChunkSize(4096).withPackSize(4 << 20);
    try (Repository repo = Repository.init(tmp.resolve("repo"), cfg)) {
      Manifest s = RepositoryTest.backup(repo, "a", ia, "h").manifest();
      repo.stats(); // index loaded
      try (SnapshotDisk disk = repo.openDisk(s, "a", 1 << 20)) {
        ByteBuffer first = ByteBuffer.allocate(4096);
        disk.read(0, first);
        repo.release(repo.lock(LockKind.SHARED, "x", Duration.ZERO)); // index blobs changed: stale
        RepositoryTest.backup(repo, "b", ib, "h"); // reloads the index, closes the old one
        ByteBuffer rest = ByteBuffer.allocate(a.length - 4096);
        disk.read(4096, rest);
        assertThat(rest.array()).isEqualTo(java.util.Arrays.copyOfRange(a, 4096, a.length));
      }
    }
  }
}
