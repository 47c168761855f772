package io.granule.engine.internal.repo.snapshot;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import java.util.Random;
import org.junit.jupiter.api.Test;

class FixedIndexTest {
  private static ChunkId id(long seed) {
    Random r = new Random(seed);
    return new ChunkId(r.nextLong(), r.nextLong(), r.nextLong(), r.nextLong());
  }

  @Test
  void nextSameChainsEachChunksPlacesInOrderAndLeavesZerosAndSinglesAlone() {
    FixedIndex f = new FixedIndex(1024, 10 * 1024 - 100);
    long[] layout = {1, 2, 0, 1, 3, 2, 0, 1, 4, 2}; // 0: zeros
    for (int p = 0; p < layout.length; p++) {
      f.set(p, layout[p] == 0 ? ChunkId.ZERO : id(layout[p]));
    }
    assertThat(f.nextSame().toArray()).containsExactly(3, 5, -1, 7, -1, 9, -1, -1, -1, -1);
  }

  @Test
  void idsThatShareTheirFirstWordAreStillTellApart() {
    FixedIndex f = new FixedIndex(512, 4 * 512);
    f.set(0, new ChunkId(7, 1, 1, 1));
    f.set(1, new ChunkId(7, 1, 1, 2));
    f.set(2, new ChunkId(7, 1, 1, 1));
    f.set(3, new ChunkId(7, 2, 1, 2));
    assertThat(f.nextSame().toArray()).containsExactly(2, -1, -1, -1);
  }

  @Test
  void manyPlacesAgreeWithAPlainMap() {
    int n = 20_000;
    FixedIndex f = new FixedIndex(4096, (long) n * 4096);
    Random r = new Random(5);
    long[] seeds = new long[n];
    for (int p = 0; p < n; p++) {
      seeds[p] = r.nextInt(3000); // about 7 places per chunk, some zeros
      f.set(p, seeds[p] == 0 ? ChunkId.ZERO : id(seeds[p]));
    }
    int[] next = f.nextSame().toArray();
    java.util.Map<Long, Integer> last = new java.util.HashMap<>();
    int[] expected = new int[n];
    java.util.Arrays.fill(expected, -1);
    for (int p = 0; p < n; p++) {
      if (seeds[p] != 0) {
        Integer q = last.put(seeds[p], p);
        if (q != null) {
          expected[q] = p;
        }
      }
    }
    assertThat(next).isEqualTo(expected);
  }

  /**
   * A disk of more distinct chunks than the table holds links the ones it met first, each to its
   * next place, and leaves the others to be fetched at each place.
   */
  @Test
  void aFullTableLinksTheChunksItMetFirst() {
    FixedIndex f = new FixedIndex(4096, 100L * 4096);
    for (int p = 0; p < 100; p++) {
      f.set(p, id(1 + p % 20)); // 20 chunks, each at 5 places 20 apart
    }
    int[] next = f.nextSame(8).toArray(); // 8 slots, at most half full: 4 chunks tracked
    for (int p = 0; p < 100; p++) {
      boolean tracked = p % 20 < 4;
      assertThat(next[p]).as("position %d", p).isEqualTo(tracked && p + 20 < 100 ? p + 20 : -1);
    }
  }
}
