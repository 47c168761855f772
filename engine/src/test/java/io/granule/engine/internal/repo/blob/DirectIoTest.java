package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DirectIoTest {
  @TempDir Path tmp;

  /** A large buffer (mapped in huge pages where the library loads) is as a small one is. */
  @Test
  void allocatesAlignedZeroedBuffersOfEverySize() {
    for (int length :
        new int[] {
          1, 4095, 65536, DirectIo.HUGE - 1, DirectIo.HUGE, 16 << 20, (16 << 20) + 4096 + 7
        }) {
      ByteBuffer b = DirectIo.allocate(length, DirectIo.MIN_ALIGN);
      assertThat(b.isDirect()).isTrue();
      assertThat(b.alignmentOffset(0, DirectIo.MIN_ALIGN)).isZero();
      assertThat(b.position()).isZero();
      assertThat(b.limit()).isEqualTo(length);
      assertThat(b.capacity())
          .isGreaterThanOrEqualTo(length)
          .isLessThan(length + DirectIo.MIN_ALIGN);
      ByteBuffer all = b.duplicate().clear();
      for (int i = 0; i < all.capacity(); i += 4096) {
        assertThat(all.get(i)).isZero();
      }
      assertThat(all.get(all.capacity() - 1)).isZero();
      all.put(all.capacity() - 1, (byte) 1); // the whole capacity is writable
    }
  }

  /** Slices of a large buffer keep it mapped after it is unreachable (they hold it). */
  @Test
  void slicesOutliveTheirBuffer() throws IOException {
    byte[] data = new byte[(8 << 20) + 12345];
    new Random(3).nextBytes(data);
    ByteBuffer slice = DirectIo.allocate(data.length, DirectIo.MIN_ALIGN).put(data).flip().slice();
    for (int i = 0; i < 5; i++) {
      System.gc();
      DirectIo.allocate(32 << 20, DirectIo.MIN_ALIGN).put(0, (byte) 1);
    }
    Path f = tmp.resolve("f");
    try (FileChannel ch =
        FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      while (slice.hasRemaining()) {
        ch.write(slice);
      }
    }
    assertThat(Files.readAllBytes(f)).isEqualTo(data);
  }
}
