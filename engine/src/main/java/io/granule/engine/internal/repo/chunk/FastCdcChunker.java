package io.granule.engine.internal.repo.chunk;

import java.util.function.IntConsumer;

/**
 * Content-defined chunking after FastCDC 2020 (Xia et al.) with normalized chunking, level 2, for
 * streams such as database dumps, WAL and mail stores, where an insertion must not shift every
 * later boundary.
 *
 * <p>The fingerprint is the gear hash {@code fp = (fp << 1) + GEAR[b]}, reset at each chunk start;
 * the first {@code minSize} bytes of a chunk are skipped. A boundary falls after the byte where
 * {@code fp & mask == 0}, with a stricter mask ({@code log2(avg) + 2} bits) before {@code avgSize}
 * bytes and a looser one ({@code log2(avg) - 2} bits) after, and at {@code maxSize} at the latest.
 * The masks take the high bits of {@code fp}, which depend on the last 64 bytes.
 *
 * <p>The gear table and the mask placement are part of the repository format: changing them changes
 * every boundary and loses deduplication against existing snapshots. Not thread-safe.
 */
public final class FastCdcChunker implements Chunker {
  /** Seed of the gear table; never change it. */
  static final long GEAR_SEED = 0x6772616e756c6531L;

  static final long[] GEAR = gearTable();

  private final int minSize;
  private final int avgSize;
  private final int maxSize;
  private final long maskS;
  private final long maskL;
  private int pos;
  private long fp;

  /** Defaults for streams: 512 KiB / 1 MiB / 4 MiB. */
  public FastCdcChunker() {
    this(512 << 10, 1 << 20, 4 << 20);
  }

  /**
   * A chunker with the given sizes; {@code avgSize} must be a power of two with {@code 64 <=
   * minSize < avgSize < maxSize}.
   */
  public FastCdcChunker(int minSize, int avgSize, int maxSize) {
    if (Integer.bitCount(avgSize) != 1
        || minSize < 64
        || minSize >= avgSize
        || avgSize >= maxSize) {
      throw new IllegalArgumentException(
          "invalid content-defined chunk sizes: min="
              + minSize
              + " avg="
              + avgSize
              + " max="
              + maxSize
              + " (need 64 <= min < avg < max, avg a power of two)");
    }
    this.minSize = minSize;
    this.avgSize = avgSize;
    this.maxSize = maxSize;
    int bits = Integer.numberOfTrailingZeros(avgSize);
    this.maskS = highBits(bits + 2);
    this.maskL = highBits(bits - 2);
  }

  private static long highBits(int n) {
    return n <= 0 ? 0 : -1L << (64 - n);
  }

  private static long[] gearTable() {
    long[] t = new long[256];
    long s = GEAR_SEED;
    for (int i = 0; i < 256; i++) {
      s += 0x9e3779b97f4a7c15L;
      long z = s;
      z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
      z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
      t[i] = z ^ (z >>> 31);
    }
    return t;
  }

  @Override
  public void update(byte[] data, int off, int len, IntConsumer chunkEnd) {
    int end = off + len;
    int i = off;
    while (i < end) {
      if (pos < minSize) {
        int skip = Math.min(minSize - pos, end - i);
        pos += skip;
        i += skip;
        continue;
      }
      long f = fp;
      int p = pos;
      int cut = -1;
      while (i < end) {
        f = (f << 1) + GEAR[data[i++] & 0xff];
        p++;
        if ((f & (p <= avgSize ? maskS : maskL)) == 0 || p >= maxSize) {
          cut = p;
          break;
        }
      }
      if (cut > 0) {
        chunkEnd.accept(cut);
        pos = 0;
        fp = 0;
      } else {
        pos = p;
        fp = f;
      }
    }
  }

  @Override
  public void finish(IntConsumer chunkEnd) {
    if (pos > 0) {
      chunkEnd.accept(pos);
    }
    reset();
  }

  @Override
  public void reset() {
    pos = 0;
    fp = 0;
  }

  @Override
  public int maxSize() {
    return maxSize;
  }

  /** The smallest chunk emitted except the last one of a stream. */
  public int minSize() {
    return minSize;
  }

  /** The normal (target average) chunk size. */
  public int avgSize() {
    return avgSize;
  }
}
