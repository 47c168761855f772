package io.granule.engine.internal.repo.lock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class LocalLockTest extends LockContractTest {
  @Override
  protected BlobStore newStore(Path tmp) {
    return new LocalBlobStore(tmp.resolve("repo"));
  }

  /**
   * audit14 B L3: one sparse file in locks/ larger than the process reads whole (4 KiB on disk)
   * made every locking command fail, unlock too, naming nothing to do but delete it by hand. It is
   * an unreadable lock: stale, named in a conflict, and removed by unlock.
   */
  @Test
  void aLockTooLargeToReadIsUnreadableAndUnlockRemovesIt() throws Exception {
    BlobName huge = new BlobName(BlobType.LOCK, "cc".repeat(32));
    store.save(huge, new byte[] {1});
    Path file = ((LocalBlobStore) store).path(huge);
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.setLength(3L << 30); // past what any process reads whole
    }
    assertUnreadableLock(huge);
    assertThat(Files.exists(file)).isFalse();
  }

  /**
   * audit14 D: a FIFO in locks/ (granule never writes one) made every locking command fail, unlock
   * --remove-all too; read, it would block forever. It is an unreadable, stale lock that unlock
   * removes, never opened.
   */
  @Test
  @org.junit.jupiter.api.Timeout(60)
  void aFifoInTheLocksIsUnreadableAndUnlockRemovesIt() throws Exception {
    BlobName fifo = new BlobName(BlobType.LOCK, "dd".repeat(32));
    store.save(new BlobName(BlobType.LOCK, "ee".repeat(32)), new byte[] {1});
    store.delete(new BlobName(BlobType.LOCK, "ee".repeat(32))); // locks/ exists
    Path file = ((LocalBlobStore) store).path(fifo);
    Process p = new ProcessBuilder("mkfifo", file.toString()).inheritIO().start();
    assertThat(p.waitFor()).isZero();
    assertThat(manager(ALICE).list())
        .singleElement()
        .satisfies(s -> assertThat(s.describe()).contains("not a regular file"));
    assertUnreadableLock(fifo);
    assertThat(Files.exists(file, java.nio.file.LinkOption.NOFOLLOW_LINKS)).isFalse();
  }

  /**
   * audit15 G F2: on a repository disk full to the last byte, forget and prune could not write
   * their lock and said nothing of a way out. The refusal says to free space and run it again.
   */
  @Test
  void aLockThatCannotBeWrittenOnAFullDiskSaysWhatToDo() throws Exception {
    BlobStore real = store;
    store =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(real) {
          @Override
          public void save(BlobName name, byte[] data) throws java.io.IOException {
            throw new java.io.IOException(name + ": No space left on device");
          }
        };
    try {
      assertThatThrownBy(
              () -> manager(ALICE).acquire(LockKind.EXCLUSIVE, "prune", java.time.Duration.ZERO))
          .hasMessageContaining("No space left on device")
          .hasMessageContaining("its file system is full: free some space on it");
    } finally {
      store = real;
    }
  }
}
