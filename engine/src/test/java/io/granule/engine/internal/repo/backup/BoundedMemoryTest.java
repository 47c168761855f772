package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChildJvm;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.spi.DiskImage;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Backs up a 2 GiB virtual disk in a child JVM limited to a 40 MiB heap: the pipeline's memory must
 * not grow with the disk. The disk's content is generated on the fly and repeats every 8 chunks, so
 * the test stores almost nothing and writes no large file.
 */
class BoundedMemoryTest {
  @TempDir Path tmp;

  /** Entry point of the child JVM: args are the repository directory and the disk size. */
  public static void main(String[] args) throws Exception {
    long size = Long.parseLong(args[1]);
    DiskImage virtual =
        new DiskImage() {
          @Override
          public long size() {
            return size;
          }

          @Override
          public String format() {
            return "virtual";
          }

          @Override
          public void read(long offset, ByteBuffer dst) {
            while (dst.hasRemaining()) {
              long chunk = (offset / (1 << 20)) % 8;
              dst.put((byte) (chunk * 31 + (offset % 251)));
              offset++;
            }
          }

          @Override
          public void close() {}
        };
    try (Repository repo =
        Repository.init(Path.of(args[0]), RepositoryConfig.defaults().withPackSize(4 << 20))) {
      BackupResult r =
          repo.backup(
              new BackupRequest(
                  List.of(new BackupRequest.NamedDisk("big", virtual)), "h", null, null),
              BackupListener.NONE);
      System.out.println("read=" + r.progress().bytesRead() + " new=" + r.progress().bytesNew());
    }
  }

  @Test
  void twoGibDiskBacksUpInAFortyMibHeap() throws Exception {
    long size = 2L << 30;
    String out =
        ChildJvm.run(
            List.of("-Xmx40m"),
            BoundedMemoryTest.class,
            tmp.resolve("repo").toString(),
            Long.toString(size));
    assertThat(out).contains("read=" + size);
  }
}
