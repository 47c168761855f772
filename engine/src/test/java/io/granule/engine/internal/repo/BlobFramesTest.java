package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import org.junit.jupiter.api.Test;

class BlobFramesTest {

  @Test
  void crc32cCombineEqualsTheChecksumOfTheConcatenation() {
    long seed = System.nanoTime();
    Random r = new Random(seed);
    byte[] data = new byte[3 << 20];
    r.nextBytes(data);
    int[] cuts = {0, 1, 2, 7, 64, 4095, 65536, 1 << 20, (3 << 20) - 1, 3 << 20};
    for (int cut : cuts) {
      int a = BlobFrames.crc32c(data, 0, cut);
      int b = BlobFrames.crc32c(data, cut, data.length - cut);
      assertThat(BlobFrames.crc32cCombine(a, b, data.length - cut))
          .as("cut at %d (seed %d)", cut, seed)
          .isEqualTo(BlobFrames.crc32c(data, 0, data.length));
    }
    for (int i = 0; i < 200; i++) {
      int from = r.nextInt(data.length);
      int cut = from + r.nextInt(data.length - from + 1);
      int to = cut + r.nextInt(data.length - cut + 1);
      int a = BlobFrames.crc32c(data, from, cut - from);
      int b = BlobFrames.crc32c(data, cut, to - cut);
      assertThat(BlobFrames.crc32cCombine(a, b, to - cut))
          .as("[%d, %d) + [%d, %d) (seed %d)", from, cut, cut, to, seed)
          .isEqualTo(BlobFrames.crc32c(data, from, to - from));
    }
  }

  @Test
  void crc32cCombineWithAnEmptySecondPartIsTheFirst() {
    assertThat(BlobFrames.crc32cCombine(0x12345678, 0, 0)).isEqualTo(0x12345678);
  }
}
