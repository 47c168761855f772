package io.granule.engine.internal.repo.chunk;

import static io.granule.engine.internal.repo.chunk.ChunkerTestSupport.boundaries;
import static io.granule.engine.internal.repo.chunk.ChunkerTestSupport.splitMix;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class FastCdcChunkerTest {
  private static final byte[] INPUT = splitMix(8 << 20, 42);

  /** Computed once with this implementation; a change here is a repository format change. */
  private static final List<Long> GOLDEN_DEFAULT =
      List.of(1081847L, 2345945L, 3774358L, 4887587L, 5989005L, 7267208L, 8341913L, 8388608L);

  private static final List<Long> GOLDEN_SMALL_FIRST =
      List.of(69717L, 136484L, 205354L, 304495L, 403755L, 505908L, 577757L, 646053L);

  private static FastCdcChunker small() {
    return new FastCdcChunker(16 << 10, 64 << 10, 256 << 10);
  }

  @Test
  void gearTableIsFrozen() {
    assertThat(FastCdcChunker.GEAR[0]).isEqualTo(0xc0ef3847b413c92bL);
    assertThat(FastCdcChunker.GEAR[255]).isEqualTo(0xc2ba2791ae40991aL);
  }

  @Test
  void defaultSizesGiveTheGoldenBoundaries() {
    assertThat(boundaries(new FastCdcChunker(), INPUT, INPUT.length)).isEqualTo(GOLDEN_DEFAULT);
  }

  @Test
  void smallSizesGiveTheGoldenBoundaries() {
    List<Long> b = boundaries(small(), INPUT, INPUT.length);
    assertThat(b).hasSize(117).startsWith(GOLDEN_SMALL_FIRST.toArray(Long[]::new));
    assertThat(b.get(116)).isEqualTo(8388608L);
    assertThat(b).contains(4887587L, 7267208L);
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 7, 4096, 65536, 1 << 20})
  void feedingGranularityNeverChangesBoundaries(int piece) {
    byte[] data = piece == 1 ? java.util.Arrays.copyOf(INPUT, 2 << 20) : INPUT;
    assertThat(boundaries(small(), data, piece)).isEqualTo(boundaries(small(), data, data.length));
    assertThat(boundaries(new FastCdcChunker(), data, piece))
        .isEqualTo(boundaries(new FastCdcChunker(), data, data.length));
  }

  @Test
  void chunksRespectMinAndMax() {
    byte[] zeros = new byte[3 << 20];
    List<Long> b = boundaries(small(), zeros, zeros.length);
    long prev = 0;
    for (long end : b.subList(0, b.size() - 1)) {
      assertThat(end - prev).isEqualTo(256 << 10);
      prev = end;
    }
    prev = 0;
    for (long end : boundaries(small(), INPUT, INPUT.length)) {
      assertThat(end - prev).isBetween(1L, 256L << 10);
      if (end != INPUT.length) {
        assertThat(end - prev).isGreaterThanOrEqualTo(16 << 10);
      }
      prev = end;
    }
  }

  @Test
  void localEditOnlyMovesBoundariesNearIt() {
    byte[] edited = INPUT.clone();
    int at = 4_210_000;
    for (int i = at; i < at + 4096; i++) {
      edited[i] ^= 0x5a;
    }
    List<Long> before = boundaries(small(), INPUT, INPUT.length);
    List<Long> after = boundaries(small(), edited, edited.length);
    long horizon = at + 4096 + 2L * (256 << 10);
    assertThat(after.stream().filter(e -> e <= at).toList())
        .isEqualTo(before.stream().filter(e -> e <= at).toList());
    assertThat(after.stream().filter(e -> e > horizon).toList())
        .isEqualTo(before.stream().filter(e -> e > horizon).toList());
    List<Long> changed = new ArrayList<>(after);
    changed.removeAll(before);
    assertThat(changed).allMatch(e -> e > at && e <= horizon);
  }

  @Test
  void editJustBeforeABoundaryMovesItAndTheStreamResynchronizes() {
    List<Long> before = boundaries(small(), INPUT, INPUT.length);
    long boundary = 4245011L;
    assertThat(before).contains(boundary);
    byte[] edited = INPUT.clone();
    for (int i = (int) boundary - 32; i < boundary; i++) {
      edited[i] ^= 0x5a;
    }
    List<Long> after = boundaries(small(), edited, edited.length);
    assertThat(after).doesNotContain(boundary);
    long horizon = boundary + 2L * (256 << 10);
    assertThat(after.stream().filter(e -> e < boundary - 32).toList())
        .isEqualTo(before.stream().filter(e -> e < boundary - 32).toList());
    assertThat(after.stream().filter(e -> e > horizon).toList())
        .isEqualTo(before.stream().filter(e -> e > horizon).toList());
  }

  @Test
  void insertionShiftsLaterBoundariesByItsLength() {
    int at = 3 << 20;
    byte[] inserted = new byte[INPUT.length + 100];
    System.arraycopy(INPUT, 0, inserted, 0, at);
    System.arraycopy(INPUT, at, inserted, at + 100, INPUT.length - at);
    List<Long> before = boundaries(small(), INPUT, INPUT.length);
    List<Long> after = boundaries(small(), inserted, inserted.length);
    long horizon = at + 2L * (256 << 10);
    List<Long> shiftedTail = before.stream().filter(e -> e > horizon).map(e -> e + 100).toList();
    assertThat(after).containsAll(shiftedTail);
  }

  @Test
  void rejectsInvalidSizes() {
    assertThatThrownBy(() -> new FastCdcChunker(1024, 3000, 8192))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("avg a power of two");
  }
}
