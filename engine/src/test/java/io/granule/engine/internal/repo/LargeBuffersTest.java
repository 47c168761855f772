package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.snapshot.FixedIndex;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LargeBuffersTest {
  @TempDir Path tmp;

  @AfterEach
  void clearProperty() {
    System.clearProperty("granule.tmpdir");
  }

  @Test
  void smallBuffersAreOnTheHeapAndLargeOnesMappedFromAFileAlreadyDeleted() throws Exception {
    assertThat(LargeBuffers.allocate(LargeBuffers.HEAP_MAX, "small").hasArray()).isTrue();
    System.setProperty("granule.tmpdir", tmp.toString());
    ByteBuffer large = LargeBuffers.allocate(LargeBuffers.HEAP_MAX + 4096L, "large");
    assertThat(large.isDirect()).isTrue();
    assertThat(large.position()).isZero();
    assertThat(large.limit()).isEqualTo(LargeBuffers.HEAP_MAX + 4096);
    assertThat(large.getLong(LargeBuffers.HEAP_MAX)).isZero(); // zero-filled
    large.putLong(LargeBuffers.HEAP_MAX, 42);
    assertThat(large.getLong(LargeBuffers.HEAP_MAX)).isEqualTo(42);
    try (Stream<Path> left = Files.list(tmp)) {
      assertThat(left).isEmpty(); // deleted once mapped
    }
  }

  @Test
  void noRoomIsALocalErrorNamingWhereAndWhatToDo() {
    System.setProperty("granule.tmpdir", tmp.resolve("missing").toString());
    assertThatThrownBy(() -> LargeBuffers.allocate(LargeBuffers.HEAP_MAX + 1L, "the fixed index"))
        .isInstanceOf(LargeBuffers.NoRoomException.class)
        .hasMessageContaining("the fixed index")
        .hasMessageContaining(tmp.resolve("missing").toString())
        .hasMessageContaining("-Dgranule.tmpdir");
    assertThatThrownBy(() -> LargeBuffers.allocate(LargeBuffers.MAX + 1, "a huge thing"))
        .isInstanceOf(LargeBuffers.NoRoomException.class)
        .hasMessageContaining("a huge thing");
  }

  @Test
  void aDiskTooLargeForItsChunkSizeIsRefusedBeforeAnythingIsRead() {
    // 1 PiB at 4 KiB chunks: 2^38 positions, over the 2 GiB a fixed index can hold
    assertThatThrownBy(() -> new FixedIndex(4096, 1L << 50))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("--chunk-size")
        .hasMessageContaining("more than a fixed index holds");
  }
}
