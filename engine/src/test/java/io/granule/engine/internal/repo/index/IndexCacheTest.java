package io.granule.engine.internal.repo.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The chunk index kept between runs: read back as it was written, resident or paged, and never used
 * when it is damaged, truncated, another repository's or of another version.
 */
class IndexCacheTest {
  private static final long MIB = 1 << 20;
  private static final String REPO = "ab".repeat(32);

  @TempDir Path tmp;

  private final List<ChunkId> ids = new ArrayList<>();
  private long capacity;
  private final Map<BlobName, Long> blobs =
      Map.of(
          new BlobName(BlobType.INDEX, "aa".repeat(32)), 123L,
          new BlobName(BlobType.INDEX, "bb".repeat(32)), 456L);
  private final Set<PackId> packs = Set.of(new PackId(1, 2), new PackId(-3, 4));

  private ChunkIndex filled(int n, long memory) {
    SplittableRandom r = new SplittableRandom(5);
    ChunkIndex index = new ChunkIndex(tmp.resolve("t"), 0, memory);
    for (int i = 0; i < n; i++) {
      ChunkId id = ChunkIndexTest.id(r);
      ids.add(id);
      index.put(id, ChunkIndexTest.loc(i));
    }
    return index;
  }

  private void assertHoldsAll(ChunkIndex index) {
    assertThat(index.size()).isEqualTo(ids.size());
    for (int i = 0; i < ids.size(); i++) {
      assertThat(index.get(ids.get(i))).isEqualTo(ChunkIndexTest.loc(i));
    }
    SplittableRandom other = new SplittableRandom(99);
    for (int i = 0; i < 1000; i++) {
      assertThat(index.contains(ChunkIndexTest.id(other))).isFalse();
    }
  }

  private Optional<IndexCache.Contents> read(Path file, long memory) {
    return IndexCache.read(file, REPO, tmp.resolve("t"), memory);
  }

  @Test
  void aResidentIndexReadsBackAsWritten() throws Exception {
    Path file = tmp.resolve("c").resolve(IndexCache.FILE);
    try (ChunkIndex index = filled(20_000, 64 * MIB)) {
      assertThat(index.resident()).isTrue();
      IndexCache.write(file, REPO, index, blobs, packs);
    }
    IndexCache.Contents c = read(file, 64 * MIB).orElseThrow();
    try (ChunkIndex back = c.index()) {
      assertThat(back.resident()).isTrue();
      assertThat(c.blobs()).isEqualTo(blobs);
      assertThat(c.packs()).isEqualTo(packs);
      assertHoldsAll(back);
      ChunkId more = ChunkIndexTest.id(new SplittableRandom(1234));
      assertThat(back.put(more, ChunkIndexTest.loc(7))).isTrue();
      assertThat(back.get(more)).isEqualTo(ChunkIndexTest.loc(7));
    }
    try (Stream<Path> left = Files.list(file.getParent())) {
      assertThat(left).containsExactly(file); // no temporary file left
    }
  }

  /**
   * A table four times its 1 MiB budget, written while some of its pages are dirty in its cache and
   * others only in its file, and read back into a paged table of the same budget: the same entries,
   * and it grows on as any index does.
   */
  @Test
  void aPagedIndexReadsBackAsWritten() throws Exception {
    Path file = tmp.resolve(IndexCache.FILE);
    try (ChunkIndex index = filled(40_000, MIB)) {
      assertThat(index.resident()).isFalse();
      IndexCache.write(file, REPO, index, blobs, packs);
      assertHoldsAll(index); // its cache and file untouched by the write
    }
    byte[] before = Files.readAllBytes(file);
    IndexCache.Contents c = read(file, MIB).orElseThrow();
    try (ChunkIndex back = c.index()) {
      assertThat(back.resident()).isFalse();
      assertThat(back.memoryBytes()).isLessThanOrEqualTo(MIB);
      assertHoldsAll(back);
      // pages it reads from the kept file and pages it wrote since, written out again
      SplittableRandom s = new SplittableRandom(66);
      for (int i = 0; i < 500; i++) {
        ChunkId id = ChunkIndexTest.id(s);
        ids.add(id);
        assertThat(back.put(id, ChunkIndexTest.loc(40_000 + i))).isTrue();
      }
      Path again = tmp.resolve("again");
      IndexCache.write(again, REPO, back, blobs, packs);
      try (ChunkIndex copy = read(again, MIB).orElseThrow().index()) {
        assertThat(copy.size()).isEqualTo(40_500);
        for (int i = 0; i < 500; i++) {
          assertThat(copy.get(ids.get(40_000 + i))).isEqualTo(ChunkIndexTest.loc(40_000 + i));
        }
        assertThat(copy.get(ids.get(0))).isEqualTo(ChunkIndexTest.loc(0));
      }
      assertThat(Files.readAllBytes(file)).as("the kept file is never written").isEqualTo(before);
      SplittableRandom r = new SplittableRandom(77);
      for (int i = 40_500; i < 80_000; i++) { // grows past the table read
        ChunkId id = ChunkIndexTest.id(r);
        ids.add(id);
        assertThat(back.put(id, ChunkIndexTest.loc(i))).isTrue();
      }
      assertHoldsAll(back);
    }
    try (ChunkIndex resident = read(file, 64 * MIB).orElseThrow().index()) {
      assertThat(resident.resident()).isTrue(); // the same file, a larger budget
      assertThat(resident.size()).isEqualTo(40_000);
      assertThat(resident.get(ids.get(39_999))).isEqualTo(ChunkIndexTest.loc(39_999));
    }
  }

  @Test
  void anIndexWithNoEntriesReadsBack() throws Exception {
    Path file = tmp.resolve(IndexCache.FILE);
    try (ChunkIndex index = new ChunkIndex(tmp, 0, MIB)) {
      IndexCache.write(file, REPO, index, Map.of(), Set.of());
    }
    IndexCache.Contents c = read(file, MIB).orElseThrow();
    try (ChunkIndex back = c.index()) {
      assertThat(back.size()).isZero();
      assertThat(c.blobs()).isEmpty();
      assertThat(c.packs()).isEmpty();
    }
  }

  @Test
  void aMissingFileIsNone() {
    assertThat(read(tmp.resolve("nothing"), MIB)).isEmpty();
  }

  @Test
  void anotherRepositorysFileIsNotUsed() throws Exception {
    Path file = write();
    assertThat(IndexCache.read(file, "cd".repeat(32), tmp, MIB)).isEmpty();
    assertThat(read(file, MIB)).isPresent();
  }

  @Test
  void aFileOfAnotherVersionIsNotUsed() throws Exception {
    Path file = write();
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.seek(4);
      f.writeShort(IndexCache.VERSION + 1);
    }
    assertThat(read(file, MIB)).isEmpty();
  }

  /** One byte changed anywhere (header, table, trailer) and the file is not used. */
  @Test
  void aDamagedFileIsNotUsed() throws Exception {
    Path file = write();
    long length = Files.size(file);
    long tableStart = length - 8 - capacity * 64; // the table, then its checksum and the magic
    for (long at : new long[] {20, 80, tableStart - 2, tableStart + 5000, length - 6, length - 1}) {
      Path copy = tmp.resolve("damaged-" + at);
      Files.copy(file, copy);
      try (RandomAccessFile f = new RandomAccessFile(copy.toFile(), "rw")) {
        f.seek(at);
        int b = f.read();
        f.seek(at);
        f.write(b ^ 0x10);
      }
      assertThat(read(copy, MIB)).as("byte %d of %d changed", at, length).isEmpty();
    }
    assertThat(read(file, MIB)).isPresent();
  }

  @Test
  void aTruncatedOrLongerFileIsNotUsed() throws Exception {
    Path file = write();
    long length = Files.size(file);
    for (long keep : new long[] {0, 3, 30, length / 2, length - 1}) {
      Path copy = tmp.resolve("truncated-" + keep);
      Files.copy(file, copy);
      try (RandomAccessFile f = new RandomAccessFile(copy.toFile(), "rw")) {
        f.setLength(keep);
      }
      assertThat(read(copy, MIB)).as("%d of %d bytes", keep, length).isEmpty();
    }
    Path longer = tmp.resolve("longer");
    Files.copy(file, longer);
    try (RandomAccessFile f = new RandomAccessFile(longer.toFile(), "rw")) {
      f.setLength(length + 1);
    }
    assertThat(read(longer, MIB)).isEmpty();
  }

  /** A newer write replaces the file whole. */
  @Test
  void aWriteReplacesTheFile() throws Exception {
    Path file = write();
    try (ChunkIndex index = new ChunkIndex(tmp, 0, MIB)) {
      index.put(ids.get(0), ChunkIndexTest.loc(42));
      IndexCache.write(file, REPO, index, Map.of(), Set.of(new PackId(9, 9)));
    }
    IndexCache.Contents c = read(file, MIB).orElseThrow();
    try (ChunkIndex back = c.index()) {
      assertThat(back.size()).isEqualTo(1);
      assertThat(back.get(ids.get(0))).isEqualTo(ChunkIndexTest.loc(42));
      assertThat(back.get(ids.get(1))).isNull();
      assertThat(c.packs()).containsExactly(new PackId(9, 9));
    }
  }

  /**
   * A writer killed mid-write leaves its temporary file; the next write deletes those older than a
   * day (never a fresh one: another process may be writing it).
   */
  @Test
  void aWriteDeletesTemporaryFilesLeftByKilledWriters() throws Exception {
    Path dir = tmp.resolve("c");
    Files.createDirectories(dir);
    Path old = Files.writeString(dir.resolve(".chunk-index-123.tmp"), "left by a crash");
    Files.setLastModifiedTime(
        old,
        java.nio.file.attribute.FileTime.from(java.time.Instant.now().minusSeconds(2 * 86400)));
    Path fresh = Files.writeString(dir.resolve(".chunk-index-456.tmp"), "being written");
    Path other = Files.writeString(dir.resolve("catalog-x"), "not ours");
    Files.setLastModifiedTime(other, Files.getLastModifiedTime(old));
    try (ChunkIndex index = new ChunkIndex(tmp, 0, MIB)) {
      IndexCache.write(dir.resolve(IndexCache.FILE), REPO, index, Map.of(), Set.of());
    }
    assertThat(old).doesNotExist();
    assertThat(fresh).exists();
    assertThat(other).exists();
    assertThat(read(dir.resolve(IndexCache.FILE), MIB)).isPresent();
  }

  private Path write() throws Exception {
    Path file = tmp.resolve(IndexCache.FILE);
    try (ChunkIndex index = filled(6000, MIB)) {
      capacity = index.capacity();
      IndexCache.write(file, REPO, index, blobs, packs);
    }
    return file;
  }
}
