package io.granule.engine.internal.repo.chunk;

import java.util.ArrayList;
import java.util.List;

/** Deterministic inputs and boundary collection for chunker tests. */
final class ChunkerTestSupport {
  private ChunkerTestSupport() {}

  /** {@code n} pseudo-random bytes from SplitMix64 seeded with {@code seed}: stable forever. */
  static byte[] splitMix(int n, long seed) {
    byte[] out = new byte[n];
    long s = seed;
    for (int i = 0; i < n; i += 8) {
      s += 0x9e3779b97f4a7c15L;
      long z = s;
      z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
      z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
      z ^= z >>> 31;
      for (int k = 0; k < 8 && i + k < n; k++) {
        out[i + k] = (byte) (z >>> (8 * k));
      }
    }
    return out;
  }

  /** End offsets of the chunks of {@code data}, fed {@code piece} bytes at a time. */
  static List<Long> boundaries(Chunker chunker, byte[] data, int piece) {
    List<Long> ends = new ArrayList<>();
    long[] at = {0};
    for (int off = 0; off < data.length; off += piece) {
      int len = Math.min(piece, data.length - off);
      chunker.update(
          data,
          off,
          len,
          n -> {
            at[0] += n;
            ends.add(at[0]);
          });
    }
    chunker.finish(
        n -> {
          at[0] += n;
          ends.add(at[0]);
        });
    return ends;
  }
}
