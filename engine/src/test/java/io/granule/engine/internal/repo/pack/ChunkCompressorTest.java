package io.granule.engine.internal.repo.pack;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The compress-or-store decision of {@link ChunkCompressor} and its incompressibility pre-check.
 */
class ChunkCompressorTest {
  private static final int CHUNK = 512 << 10;

  private static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  private static byte[] text(int n) {
    byte[] line =
        "block 0042 of the inode table: mode 0644 uid 1000 gid 1000\n"
            .getBytes(StandardCharsets.US_ASCII);
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) {
      b[i] = line[i % line.length];
    }
    return b;
  }

  /** compressInto of {@code data}: the compressed length or -1, checked to decompress back. */
  private static int compress(ChunkCompressor c, byte[] data) {
    ByteBuffer src = ByteBuffer.allocateDirect(data.length).put(data).flip();
    ByteBuffer dst = ByteBuffer.allocateDirect(ChunkCompressor.bound(data.length));
    int n = c.compressInto(src, dst);
    assertThat(src.position()).as("source position left alone").isZero();
    if (n >= 0) {
      ByteBuffer plain = ByteBuffer.allocate(data.length);
      c.decompressInto(dst.limit(n), ChunkFlags.ZSTD, data.length, plain);
      assertThat(plain.array()).isEqualTo(data);
    }
    return n;
  }

  @Test
  void aRandomChunkIsStoredAsItIsWithoutBeingCompressedWhole() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      assertThat(compress(c, random(CHUNK, 1))).isEqualTo(-1);
      assertThat(c.skipped()).isEqualTo(1);
    }
  }

  @Test
  void aCompressibleChunkIsCompressed() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      assertThat(compress(c, text(CHUNK))).isPositive().isLessThan(CHUNK / 10);
      assertThat(c.skipped()).isZero();
    }
  }

  @Test
  void aRandomChunkWithACompressibleStretchUnderASampleIsCompressed() {
    byte[] data = random(CHUNK, 2);
    byte[] t = text(CHUNK / 2);
    // the middle half: under the second and third samples
    System.arraycopy(t, 0, data, CHUNK / 4, t.length);
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      assertThat(compress(c, data)).isPositive().isLessThan(CHUNK * 3 / 4);
      assertThat(c.skipped()).isZero();
    }
  }

  @Test
  void randomBytesRepeatingWithinASampleAreCompressed() {
    byte[] block = random(8 << 10, 3);
    byte[] data = new byte[CHUNK];
    for (int i = 0; i < CHUNK; i += block.length) {
      System.arraycopy(block, 0, data, i, block.length);
    }
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      assertThat(compress(c, data)).isPositive().isLessThan(CHUNK / 20);
      assertThat(c.skipped()).isZero();
    }
  }

  @Test
  void aSmallChunkIsTriedWhole() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      assertThat(compress(c, random(ChunkCompressor.PRECHECK_MIN - 1, 4))).isEqualTo(-1);
      assertThat(c.skipped()).isZero();
      byte[] small = random(ChunkCompressor.PRECHECK_MIN - 1, 5);
      System.arraycopy(text(1000), 0, small, 20_000, 1000);
      assertThat(compress(c, small)).isEqualTo(-1); // 1000 bytes saved: under 3 %
    }
  }
}
