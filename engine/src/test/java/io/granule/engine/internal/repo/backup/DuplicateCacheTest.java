package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The bounded cache of chunks kept for their next place, in an ordered (image) restore. */
class DuplicateCacheTest {
  private static final int SIZE = 16;

  private static ChunkId id(int n) {
    byte[] b = new byte[32];
    b[0] = (byte) n;
    b[1] = 1;
    return ChunkId.of(b, 0);
  }

  private static ByteBuffer bytes(int n) {
    byte[] b = new byte[SIZE];
    Arrays.fill(b, (byte) n);
    return ByteBuffer.wrap(b);
  }

  private static byte[] take(DuplicateCache c, int n, int p) {
    ByteBuffer dst = ByteBuffer.allocate(SIZE);
    return c.take(id(n), p, dst) ? dst.array() : null;
  }

  @Test
  void keepsWhatIsNeededSoonestAndDropsWhatIsDone() {
    // Disk of 10 positions: chunk A at 0, 5, 9; B at 1, 3; C at 2, 8; D at 4 only.
    int[] next = {5, 3, 8, -1, -1, 9, -1, -1, -1, -1};
    DuplicateCache c = new DuplicateCache(FixedIndex.NextSame.of(next), 2, SIZE);
    c.offer(id(0xA), 0, bytes(0xA), 0, SIZE);
    c.offer(id(0xB), 1, bytes(0xB), 0, SIZE);
    // Full: C (next at 8) is needed later than A (5) and B (3): not kept.
    c.offer(id(0xC), 2, bytes(0xC), 0, SIZE);
    assertThat(take(c, 0xB, 3)).containsOnly(0xB);
    // B's last place: dropped, which makes room for D? D has no next place: never kept.
    c.offer(id(0xD), 4, bytes(0xD), 0, SIZE);
    assertThat(take(c, 0xD, 4)).isNull();
    assertThat(take(c, 0xA, 5)).containsOnly(0xA);
    assertThat(take(c, 0xC, 8)).as("never kept").isNull();
    assertThat(take(c, 0xA, 9)).containsOnly(0xA);
    assertThat(take(c, 0xA, 9)).as("dropped after its last place").isNull();
    assertThat(c.hits()).isEqualTo(3);
  }

  @Test
  void aChunkWhosePlaceWasPassedMakesRoomFirst() {
    // A at 0 and 2, B at 1 and 9, C at 3 and 4; capacity 2.
    int[] next = {2, 9, -1, 4, -1, -1, -1, -1, -1, -1};
    DuplicateCache c = new DuplicateCache(FixedIndex.NextSame.of(next), 2, SIZE);
    c.offer(id(0xA), 0, bytes(0xA), 0, SIZE);
    c.offer(id(0xB), 1, bytes(0xB), 0, SIZE);
    // Position 2 was decoded by another worker (a miss there): A's entry is stale at position 3,
    // and goes before B, which is still needed.
    c.offer(id(0xC), 3, bytes(0xC), 0, SIZE);
    assertThat(take(c, 0xC, 4)).containsOnly(0xC);
    assertThat(take(c, 0xB, 9)).containsOnly(0xB);
  }

  @Test
  void copiesOnlyTheChunksBytesFromWhereItWasDecoded() {
    int[] next = {1, -1};
    DuplicateCache c = new DuplicateCache(FixedIndex.NextSame.of(next), 1, SIZE);
    ByteBuffer run = ByteBuffer.allocate(3 * SIZE);
    run.put(bytes(1)).put(bytes(2)).put(bytes(3));
    c.offer(id(2), 0, run, SIZE, SIZE - 3); // a short chunk in the middle of a run
    ByteBuffer dst = ByteBuffer.allocate(SIZE).position(2);
    assertThat(c.take(id(2), 1, dst)).isTrue();
    assertThat(dst.position()).isEqualTo(2 + SIZE - 3);
    assertThat(Arrays.copyOfRange(dst.array(), 2, 2 + SIZE - 3)).containsOnly(2);
    assertThat(dst.get(SIZE - 1)).isZero();
  }
}
