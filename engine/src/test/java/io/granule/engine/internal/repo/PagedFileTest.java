package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.snapshot.FixedIndex;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PagedFileTest {
  @TempDir Path tmp;

  @AfterEach
  void clearProperty() {
    System.clearProperty("granule.tmpdir");
  }

  /**
   * Longs written all over an array ten times the cache's size read back after their pages were
   * evicted and reloaded; what was never written reads as zeros; bulk reads see dirty cached pages
   * and bulk writes replace cached ones; the file is gone from its directory from the start.
   */
  @Test
  void readsBackWhatWasWrittenThroughEvictionsAndBulkAccess() throws Exception {
    System.setProperty("granule.tmpdir", tmp.toString());
    long length = 10L * PagedFile.PAGES * PagedFile.PAGE + 24; // a short last page
    try (PagedFile f = PagedFile.create(length, "test array")) {
      try (Stream<Path> left = Files.list(tmp)) {
        assertThat(left).as("deleted once open").isEmpty();
      }
      Random r = new Random(7);
      long[] offsets = new long[5000];
      long[] values = new long[offsets.length];
      for (int i = 0; i < offsets.length; i++) {
        offsets[i] = (r.nextLong() & Long.MAX_VALUE) % (length / 8) * 8;
        values[i] = r.nextLong() | 1;
        f.putLong(offsets[i], values[i]);
      }
      java.util.Map<Long, Long> last = new java.util.HashMap<>();
      for (int i = 0; i < offsets.length; i++) {
        last.put(offsets[i], values[i]);
      }
      for (var e : last.entrySet()) {
        assertThat(f.getLong(e.getKey())).isEqualTo(e.getValue());
      }
      long untouched = 0;
      while (last.containsKey(untouched)) {
        untouched += 8;
      }
      assertThat(f.getLong(untouched)).isZero();
      assertThat(f.getLong(length - 8)).isEqualTo(last.getOrDefault(length - 8, 0L));

      // bulk: a range across three pages, one of them cached and dirty
      long at = 5L * PagedFile.PAGE - 96;
      f.putLong(5L * PagedFile.PAGE + 8, 424242);
      ByteBuffer got = ByteBuffer.allocate(PagedFile.PAGE + 200);
      f.read(at, got);
      assertThat(got.getLong(96 + 8)).isEqualTo(424242);
      ByteBuffer put = ByteBuffer.allocate(PagedFile.PAGE + 200);
      for (int i = 0; i < put.capacity(); i += 8) {
        put.putLong(i, i + 1);
      }
      f.write(at, put);
      assertThat(put.hasRemaining()).isFalse();
      assertThat(f.getLong(5L * PagedFile.PAGE + 8)).as("cached page replaced").isEqualTo(105);
      assertThat(f.getLong(at + PagedFile.PAGE + 192)).isEqualTo(PagedFile.PAGE + 193);
      long[] four = new long[4];
      f.getLongs(at + 96 + 32, four, 4);
      assertThat(four).containsExactly(129, 137, 145, 153);
      assertThatThrownBy(() -> f.getLong(length - 4))
          .isInstanceOf(IndexOutOfBoundsException.class)
          .hasMessageContaining("test array");
    }
  }

  /**
   * A thread interrupted while it reads or writes (a served disk's reader, a restore's read-ahead
   * being stopped) leaves the array usable by every thread: a channel would have been closed for
   * good by the interrupt, and the file, deleted, could not be opened again.
   */
  @Test
  void anInterruptedThreadLeavesTheArrayUsable() throws Exception {
    System.setProperty("granule.tmpdir", tmp.toString());
    long length = 4L * PagedFile.PAGES * PagedFile.PAGE;
    try (PagedFile f = PagedFile.create(length, "interrupted")) {
      f.putLong(8, 77);
      Thread t =
          new Thread(
              () -> {
                Thread.currentThread().interrupt();
                for (long off = 0; off < length; off += PagedFile.PAGE) {
                  f.putLong(off + 16, off); // pages loaded and evicted while interrupted
                }
                f.read(24, ByteBuffer.allocate(8));
                f.write(length - 8, ByteBuffer.allocate(8).putLong(0, 5));
              });
      t.start();
      t.join();
      assertThat(f.getLong(8)).isEqualTo(77);
      for (long off = 0; off < length; off += PagedFile.PAGE) {
        assertThat(f.getLong(off + 16)).isEqualTo(off);
      }
      assertThat(f.getLong(length - 8)).isEqualTo(5);
    }
  }

  /** A sequential scan loads each page once, however long the array. */
  @Test
  void aScanLoadsEachPageOnce() {
    System.setProperty("granule.tmpdir", tmp.toString());
    long length = 100L * PagedFile.PAGE;
    try (PagedFile f = PagedFile.create(length, "scan")) {
      for (long off = 0; off < length; off += 8) {
        f.getLong(off);
      }
      assertThat(f.pageReads()).isEqualTo(100);
    }
  }

  @Test
  void noRoomIsALocalErrorNamingWhereAndWhatToDo() {
    System.setProperty("granule.tmpdir", tmp.resolve("missing").toString());
    assertThatThrownBy(() -> PagedFile.create(1 << 20, "the fixed index"))
        .isInstanceOf(PagedFile.NoRoomException.class)
        .hasMessageContaining("the fixed index")
        .hasMessageContaining(tmp.resolve("missing").toString())
        .hasMessageContaining("-Dgranule.tmpdir");
    System.setProperty("granule.tmpdir", tmp.toString());
    assertThatThrownBy(() -> PagedFile.create(1L << 60, "a huge thing"))
        .isInstanceOf(PagedFile.NoRoomException.class)
        .hasMessageContaining("a huge thing")
        .hasMessageContaining("MiB free there");
  }

  @Test
  void aDiskTooLargeForItsChunkSizeIsRefusedBeforeAnythingIsRead() {
    // 1 PiB at 4 KiB chunks: 2^38 positions, over the 2^28 a fixed index holds
    assertThatThrownBy(() -> new FixedIndex(4096, 1L << 50))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("--chunk-size")
        .hasMessageContaining("more than a fixed index holds");
  }
}
