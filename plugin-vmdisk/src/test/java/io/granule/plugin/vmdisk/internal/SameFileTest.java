package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An image writer's second (direct I/O) channel must be the file its first one created: a file
 * renamed over the new image before it was opened again by name received the direct writes.
 */
class SameFileTest {
  @TempDir Path tmp;

  @Test
  void channelsAreToldApartByTheFileTheyHoldNotByName() throws Exception {
    Path a = Files.write(tmp.resolve("a.img"), new byte[] {1});
    Path b = Files.write(tmp.resolve("b.img"), new byte[] {2});
    try (FileChannel first =
            FileChannel.open(a, StandardOpenOption.WRITE, StandardOpenOption.READ);
        FileChannel again = FileChannel.open(a, StandardOpenOption.WRITE);
        FileChannel other = FileChannel.open(b, StandardOpenOption.WRITE)) {
      assertThat(SparseImageWriter.sameFile(first, again)).isTrue();
      // renamed over a's name: the name now leads to b's file, the channels still differ
      Files.move(b, a, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      assertThat(SparseImageWriter.sameFile(first, other)).isFalse();
      assertThat(SparseImageWriter.sameFile(first, again))
          .as("and nothing is left locked")
          .isTrue();
    }
  }
}
