package io.granule.engine.internal.repo.index;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChunkIndexTest {
  @TempDir Path tmp;

  /** A random chunk id (shared with {@link PagedChunkIndexTest}). */
  static ChunkId id(SplittableRandom r) {
    return new ChunkId(r.nextLong(), r.nextLong(), r.nextLong(), r.nextLong());
  }

  /** A location made from {@code i}, different for each. */
  static ChunkLocation loc(int i) {
    return new ChunkLocation(new PackId(i, ~i), i * 1000L + 8, 500 + i % 1000, 1 << 20, i & 1);
  }

  @Test
  void holdsAndFindsManyChunksWhileGrowing() throws Exception {
    SplittableRandom r = new SplittableRandom(11);
    List<ChunkId> ids = new ArrayList<>();
    try (ChunkIndex index = new ChunkIndex(tmp, 0)) {
      for (int i = 0; i < 300_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        assertThat(index.put(id, loc(i))).isTrue();
      }
      assertThat(index.size()).isEqualTo(300_000);
      // 4096 slots grown by half at 80 % up to 531 441 (4096 * 1.5^12)
      assertThat(index.tableBytes()).isEqualTo(531_441L * ChunkIndex.SLOT);
      for (int i = 0; i < ids.size(); i++) {
        assertThat(index.get(ids.get(i))).isEqualTo(loc(i));
      }
      for (int i = 0; i < 10_000; i++) {
        assertThat(index.contains(id(r))).isFalse();
      }
    }
    try (var files = Files.list(tmp)) {
      assertThat(files).isEmpty();
    }
  }

  /**
   * Reserved ids are invisible until filled; the first location given wins; reserved and filled
   * entries survive the table doubling.
   */
  @Test
  void reservedIdsAreFilledOnceAndInvisibleUntilThen() {
    SplittableRandom r = new SplittableRandom(5);
    List<ChunkId> ids = new ArrayList<>();
    try (ChunkIndex index = new ChunkIndex(tmp, 0)) {
      for (int i = 0; i < 20_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        assertThat(index.reserve(id)).isTrue();
        if (i % 2 == 0) {
          assertThat(index.fill(id, loc(i))).isTrue();
        }
      }
      assertThat(index.reserve(ids.get(0))).isFalse();
      for (int i = 0; i < ids.size(); i++) {
        ChunkId id = ids.get(i);
        if (i % 2 == 0) {
          assertThat(index.get(id)).isEqualTo(loc(i));
          assertThat(index.fill(id, loc(i + 1))).as("first location wins").isFalse();
        } else {
          assertThat(index.get(id)).isNull();
          assertThat(index.contains(id)).isFalse();
        }
      }
      assertThat(index.fill(id(r), loc(3))).as("not reserved").isFalse();
      ChunkId late = ids.get(1);
      assertThat(index.fill(late, loc(77))).isTrue();
      assertThat(index.get(late)).isEqualTo(loc(77));
    }
  }

  /**
   * Sized for an expected count, a table is 70 % full once they are in (whatever the count, not
   * rounded to a power of two), takes ~14 % more before it grows by half, and finds every id after.
   */
  @Test
  void aPresizedTableIsSeventyPercentFullAndGrowsAtEighty() {
    SplittableRandom r = new SplittableRandom(9);
    List<ChunkId> ids = new ArrayList<>();
    try (ChunkIndex index = new ChunkIndex(tmp, 100_000)) {
      long slots = index.tableBytes() / ChunkIndex.SLOT;
      assertThat(slots).isEqualTo(100_000 * 10 / 7 + 1);
      for (int i = 0; i < 114_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        index.put(id, loc(i));
      }
      assertThat(index.tableBytes() / ChunkIndex.SLOT).as("not grown yet").isEqualTo(slots);
      for (int i = 114_000; i < 120_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        index.put(id, loc(i));
      }
      assertThat(index.tableBytes() / ChunkIndex.SLOT).isEqualTo(slots * 3 / 2);
      for (int i = 0; i < ids.size(); i++) {
        assertThat(index.get(ids.get(i))).isEqualTo(loc(i));
      }
    }
  }

  @Test
  void firstLocationWins() {
    try (ChunkIndex index = new ChunkIndex(tmp, 10)) {
      ChunkId id = new ChunkId(1, 2, 3, 4);
      assertThat(index.put(id, loc(1))).isTrue();
      assertThat(index.put(id, loc(2))).isFalse();
      assertThat(index.get(id)).isEqualTo(loc(1));
      assertThat(index.size()).isEqualTo(1);
    }
  }

  @Test
  void collidingFirstWordsAreKeptApart() {
    try (ChunkIndex index = new ChunkIndex(tmp, 10)) {
      for (int i = 1; i <= 100; i++) {
        index.put(new ChunkId(42, i, 0, 0), loc(i));
      }
      for (int i = 1; i <= 100; i++) {
        assertThat(index.get(new ChunkId(42, i, 0, 0))).isEqualTo(loc(i));
      }
      assertThat(index.get(new ChunkId(42, 101, 0, 0))).isNull();
    }
  }

  @Test
  void zeroIdIsRefused() {
    try (ChunkIndex index = new ChunkIndex(tmp, 10)) {
      assertThatThrownBy(() -> index.put(ChunkId.ZERO, loc(1)))
          .isInstanceOf(IllegalArgumentException.class);
    }
  }

  @Test
  void indexBlobRoundTripsAndDetectsDamage() {
    SplittableRandom r = new SplittableRandom(5);
    List<IndexEntry> entries = new ArrayList<>();
    for (int i = 0; i < 100; i++) {
      entries.add(new IndexEntry(id(r), loc(i)));
    }
    BlobName name = new BlobName(BlobType.INDEX, "abcd");
    byte[] bytes = IndexWriter.write(entries);
    assertThat(IndexReader.read(name, bytes)).isEqualTo(entries);
    bytes[100] ^= 4;
    assertThatThrownBy(() -> IndexReader.read(name, bytes))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageStartingWith("index/abcd: checksum mismatch: actual=");
  }
}
