package io.granule.engine.internal.repo.chunk;

import static io.granule.engine.internal.repo.chunk.ChunkerTestSupport.boundaries;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class FixedChunkerTest {

  @Test
  void cutsEverySizeBytesWhateverTheFeeding() {
    byte[] data = new byte[10_000];
    for (int piece : new int[] {1, 7, 999, 10_000}) {
      assertThat(boundaries(new FixedChunker(4096), data, piece))
          .isEqualTo(List.of(4096L, 8192L, 10_000L));
    }
  }

  @Test
  void exactMultipleHasNoEmptyTail() {
    assertThat(boundaries(new FixedChunker(100), new byte[300], 64))
        .isEqualTo(List.of(100L, 200L, 300L));
  }

  @Test
  void defaultFixedSizeIsOneMebibyte() {
    assertThat(Chunker.DEFAULT_FIXED_CHUNK_SIZE).isEqualTo(512 << 10);
  }
}
