package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The workers read the disks; the backup must still end the holds (the after-disks step) only once
 * every disk byte has been read, and must name the first unreadable chunk whichever worker fails
 * first.
 */
class DiskReadOrderTest {
  @TempDir Path tmp;

  /** A disk whose reads take a while and are counted when they finish. */
  private static DiskImage slowDisk(long size, AtomicLong finishedBytes, long failFrom) {
    return new DiskImage() {
      @Override
      public long size() {
        return size;
      }

      @Override
      public String format() {
        return "virtual";
      }

      @Override
      public void read(long offset, ByteBuffer dst) throws IOException {
        try {
          Thread.sleep(2);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        if (offset >= failFrom) {
          throw new IOException("input/output error");
        }
        int n = dst.remaining();
        for (long o = offset; dst.hasRemaining(); o++) {
          dst.put((byte) (o * 7 + o / 4096));
        }
        finishedBytes.addAndGet(n);
      }

      @Override
      public void close() {}

      @Override
      public String toString() {
        return "/dev/slow";
      }
    };
  }

  @Test
  void afterDisksRunsOnceEveryDiskByteIsRead() throws Exception {
    long size = 8L << 20;
    AtomicLong finished = new AtomicLong();
    long[] seenByHook = {-1};
    try (Repository repo =
        Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(64 << 10))) {
      BackupRequest request =
          new BackupRequest(
              List.of(new BackupRequest.NamedDisk("vda", slowDisk(size, finished, Long.MAX_VALUE))),
              List.of(),
              "h",
              List.of(),
              null,
              () -> {
                seenByHook[0] = finished.get();
                return new BackupRequest.Extras(List.of(), Map.of());
              });
      BackupResult r = repo.backup(request, BackupListener.NONE);
      assertThat(r.progress().bytesRead()).isEqualTo(size);
    }
    assertThat(seenByHook[0]).as("bytes read when the holds ended").isEqualTo(size);
  }

  @Test
  void theFirstUnreadableChunkIsNamedWhicheverWorkerFailsFirst() throws Exception {
    for (int run = 0; run < 20; run++) {
      try (Repository repo =
          Repository.init(
              tmp.resolve("repo" + run), RepositoryConfig.defaults().withChunkSize(64 << 10))) {
        DiskImage disk = slowDisk(8L << 20, new AtomicLong(), 3L << 20);
        assertThatThrownBy(
                () ->
                    repo.backup(
                        new BackupRequest(
                            List.of(new BackupRequest.NamedDisk("vda", disk)), "h", null, null),
                        BackupListener.NONE))
            .as("run %d", run)
            .isInstanceOf(SourceUnreadableException.class)
            .hasMessageStartingWith(
                "unable to read disk 'vda' (/dev/slow) at offset 3145728: input/output error");
        assertThat(repo.snapshots()).isEmpty();
      }
    }
  }
}
