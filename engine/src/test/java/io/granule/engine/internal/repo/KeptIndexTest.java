package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.Repository.IndexSource;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexCache;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.maintenance.Pruner;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The chunk index kept between runs ({@link Repository#keepIndexIn}): the next run reads it instead
 * of every index blob, adds the blobs written since, and never uses it when it no longer describes
 * the repository (a prune rewrote the blobs it came from, it is damaged, or a new blob repeats one
 * of its chunks), so that no backup deduplicates against a chunk that is gone.
 */
class KeptIndexTest {
  private static final RepositoryConfig CFG =
      RepositoryConfig.defaults().withChunkSize(4096).withPackSize(1 << 20);

  @TempDir Path tmp;

  private Path dir;
  private Path cache;
  private byte[] a;
  private byte[] b;
  private Path imageA;
  private Path imageB;

  @BeforeEach
  void images() throws Exception {
    dir = tmp.resolve("repo");
    cache = tmp.resolve("cache");
    a = new byte[4 << 20];
    new Random(1).nextBytes(a);
    b = new byte[2 << 20];
    new Random(2).nextBytes(b);
    imageA = TestImages.write(tmp.resolve("a.raw"), a);
    imageB = TestImages.write(tmp.resolve("b.raw"), b);
  }

  private Repository open() {
    return Repository.open(dir).keepIndexIn(cache, 0);
  }

  private Path file() {
    return cache.resolve(IndexCache.FILE);
  }

  private static BackupResult backup(Repository r, String disk, Path image) throws Exception {
    return RepositoryTest.backup(r, disk, image, "h");
  }

  private void assertRestores(Repository r, Manifest m, String disk, byte[] data) throws Exception {
    Path out = tmp.resolve("restored-" + m.id());
    r.restoreDisk(m, disk, out);
    assertThat(TestImages.sha256(out)).isEqualTo(TestImages.sha256(data));
    Files.delete(out);
  }

  @Test
  void theNextRunReadsTheKeptIndexAndTheBlobsAddedSince() throws Exception {
    Manifest first;
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache, 0)) {
      first = backup(r, "a", imageA).manifest();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.BLOBS);
    }
    assertThat(file()).isRegularFile(); // kept as loaded: empty
    try (Repository r = open()) {
      assertThat(backup(r, "a", imageA).progress().bytesNew()).isZero();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE_AND_BLOBS);
    }
    Manifest second;
    try (Repository r = open()) {
      assertThat(r.stats().chunks()).isEqualTo(1024);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE);
      second = backup(r, "b", imageB).manifest();
      assertThat(second.disks().get(0).size()).isEqualTo(b.length);
      assertRestores(r, first, "a", a);
    }
    try (Repository r = open()) {
      assertThat(r.stats().chunks()).isEqualTo(1024 + 512);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE_AND_BLOBS);
    }
    RepositoryStats fromBlobs;
    try (Repository r = Repository.open(dir)) {
      fromBlobs = r.stats();
    }
    try (Repository r = open()) {
      assertThat(r.stats()).isEqualTo(fromBlobs);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE);
      assertThat(backup(r, "b", imageB).progress().bytesNew()).isZero();
      assertRestores(r, second, "b", b);
      assertRestores(r, first, "a", a);
    }
  }

  @Test
  void anEncryptedRepositoryKeepsItsIndex() throws Exception {
    PasswordSource pw = () -> "secret".toCharArray();
    Manifest m;
    try (Repository r = Repository.init(dir, CFG, "secret".toCharArray()).keepIndexIn(cache, 0)) {
      m = backup(r, "a", imageA).manifest();
    }
    try (Repository r = Repository.open(dir, pw).keepIndexIn(cache, 0)) {
      r.stats();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE_AND_BLOBS);
    }
    try (Repository r = Repository.open(dir, pw).keepIndexIn(cache, 0)) {
      assertThat(backup(r, "a", imageA).progress().bytesNew()).isZero();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE);
      assertRestores(r, m, "a", a);
    }
  }

  /**
   * A prune by a process that keeps no index deletes snapshot a's chunks: the kept index still
   * lists them, but the blobs it came from are gone, so it is not used, and backing a up again
   * stores every chunk again instead of pointing at deleted ones.
   */
  @Test
  void aPruneMakesTheKeptIndexUnusable() throws Exception {
    Manifest ma;
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache, 0)) {
      ma = backup(r, "a", imageA).manifest();
      backup(r, "b", imageB);
    }
    try (Repository r = open()) {
      r.stats(); // kept with a's and b's chunks
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE_AND_BLOBS);
    }
    try (Repository r = Repository.open(dir)) {
      r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
      assertThat(r.forgetSnapshots(List.of(ma.id()), false)).hasSize(1);
      r.prune(new Pruner.Options(false, 1.0, java.time.Duration.ZERO), (phase, done, total) -> {});
      assertThat(r.stats().chunks()).isEqualTo(512);
    }
    try (Repository r = open()) {
      BackupResult again = backup(r, "a", imageA);
      assertThat(again.progress().bytesNew()).as("every chunk stored again").isEqualTo(a.length);
      assertRestores(r, again.manifest(), "a", a);
      assertThat(r.verify(true, VerifyListener.NONE).ok()).isTrue();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.BLOBS);
    }
    try (Repository r = open()) {
      assertThat(r.stats().chunks()).isEqualTo(1024 + 512);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE_AND_BLOBS);
    }
  }

  @Test
  void aDamagedKeptIndexIsReadFromTheBlobsAndWrittenAgain() throws Exception {
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache, 0)) {
      backup(r, "a", imageA);
    }
    try (Repository r = open()) {
      r.stats();
    }
    try (RandomAccessFile f = new RandomAccessFile(file().toFile(), "rw")) {
      f.seek(f.length() / 2);
      int x = f.read();
      f.seek(f.length() / 2);
      f.write(x ^ 1);
    }
    try (Repository r = open()) {
      assertThat(r.stats().chunks()).isEqualTo(1024);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.BLOBS);
    }
    try (Repository r = open()) {
      assertThat(backup(r, "a", imageA).progress().bytesNew()).isZero();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE);
    }
  }

  /**
   * An index blob added since the index was kept repeats one of its chunks (two backups stored it
   * at once): which copy comes first depends on the order of all the blobs, so the index is read
   * from them all.
   */
  @Test
  void aNewBlobRepeatingAKeptChunkMeansReadingAllBlobs() throws Exception {
    Manifest m;
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache, 0)) {
      m = backup(r, "a", imageA).manifest();
    }
    ChunkId id;
    try (Repository r = open()) {
      r.stats();
      try (FixedIndex fixed = r.fixedIndex(m, "a")) {
        id = fixed.get(0);
      }
    }
    ChunkLocation elsewhere = new ChunkLocation(PackId.random(), 0, 100, 4096, 0);
    IndexWriter.save(
        new LocalBlobStore(dir), BlobCodec.IDENTITY, List.of(new IndexEntry(id, elsewhere)));
    try (Repository r = open()) {
      assertThat(r.stats().chunks()).isEqualTo(1024);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.BLOBS);
    }
    try (Repository r = open()) {
      r.stats();
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE);
    }
  }

  /**
   * An index blob with one entry no index can hold is skipped whole, its other entries too: half
   * put, they would be in the kept index with no blob it lists naming them, so that a prune that
   * deleted their packs would leave the kept index pointing at them.
   */
  @Test
  void aBlobWithAnImpossibleEntryIsSkippedWhole() throws Exception {
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache, 0)) {
      backup(r, "a", imageA);
    }
    ChunkId fresh = new ChunkId(1, 2, 3, 4);
    ChunkLocation somewhere = new ChunkLocation(PackId.random(), 0, 100, 4096, 0);
    ChunkLocation impossible = new ChunkLocation(PackId.random(), 1L << 40, 100, 4096, 0);
    IndexWriter.save(
        new LocalBlobStore(dir),
        BlobCodec.IDENTITY,
        List.of(
            new IndexEntry(fresh, somewhere), new IndexEntry(new ChunkId(5, 6, 7, 8), impossible)));
    for (int run = 0; run < 2; run++) {
      try (Repository r = open()) {
        assertThat(r.stats().chunks()).isEqualTo(1024);
        assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.FILE_AND_BLOBS); // skipped each time
      }
    }
    try (Repository r = Repository.open(dir)) {
      assertThat(r.stats().chunks()).as("the same from the blobs alone").isEqualTo(1024);
    }
  }

  @Test
  void aRepositoryIdThatIsNotHexIsRefused() throws Exception {
    Path odd = tmp.resolve("odd");
    new LocalBlobStore(odd)
        .save(
            io.granule.engine.internal.repo.blob.BlobName.CONFIG,
            new RepositoryConfig(
                    3, "../../x", "2030-01-01T00:00:00Z", 4096, 1 << 20, 1, "blake3", null)
                .toBytes());
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> Repository.open(odd))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("invalid repository id '../../x'");
  }

  /**
   * The index of a small disk's own chunks, filled from the blobs while a backup replaces one of
   * them (one that found packs missing does): the blobs are listed again and the disk restores
   * byte-identically through its own index, not the repository's.
   */
  @Test
  void aSmallDisksIndexFilledWhileABlobIsReplacedIsFilledAgain() throws Exception {
    byte[] big = new byte[64 << 20];
    new Random(3).nextBytes(big);
    byte[] c = new byte[16 << 20];
    new Random(4).nextBytes(c);
    Manifest mc;
    try (Repository r = Repository.init(dir, CFG)) {
      backup(r, "big", TestImages.write(tmp.resolve("big.raw"), big));
      mc = backup(r, "c", TestImages.write(tmp.resolve("c.raw"), c)).manifest();
    }
    LocalBlobStore store = new LocalBlobStore(dir);
    var victim = store.list(io.granule.engine.internal.repo.blob.BlobType.INDEX).get(0);
    java.util.concurrent.atomic.AtomicBoolean replaced =
        new java.util.concurrent.atomic.AtomicBoolean();
    var racing =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public byte[] load(io.granule.engine.internal.repo.blob.BlobName name)
              throws java.io.IOException {
            if (name.type() == io.granule.engine.internal.repo.blob.BlobType.INDEX
                && replaced.compareAndSet(false, true)) {
              byte[] bytes = delegate.load(victim);
              delegate.save(
                  new io.granule.engine.internal.repo.blob.BlobName(
                      io.granule.engine.internal.repo.blob.BlobType.INDEX, "c".repeat(64)),
                  bytes);
              delegate.delete(victim);
            }
            return super.load(name);
          }
        };
    try (Repository r = Repository.open(racing, java.time.Clock.systemUTC(), tmp.resolve("t"))) {
      assertRestores(r, r.resolve(mc.id()), "c", c);
      assertThat(r.lastScopedFill()).isEqualTo(IndexSource.BLOBS);
      assertThat(r.chunkIndexLoaded()).isFalse();
    }
    assertThat(replaced).isTrue();
  }

  /**
   * A restore of one disk small beside the repository fills an index of its own chunks from the
   * kept file (one read of it) and the blobs added since; from the blobs alone when the file is
   * damaged or no longer describes the repository (a prune), or an added blob repeats one of the
   * disk's chunks. Byte-identical every time, and the repository's index is never loaded.
   */
  @Test
  void aSmallDiskIsRestoredThroughTheKeptFile() throws Exception {
    byte[] big = new byte[64 << 20]; // 16 384 chunks
    new Random(3).nextBytes(big);
    Path imageBig = TestImages.write(tmp.resolve("big.raw"), big);
    byte[] c = new byte[16 << 20]; // 4096 chunks (SCOPED_MIN), a quarter of the rest at most
    new Random(4).nextBytes(c);
    Path imageC = TestImages.write(tmp.resolve("c.raw"), c);
    Manifest mb;
    Manifest mc;
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache, 0)) {
      backup(r, "big", imageBig);
      mb = backup(r, "b", imageB).manifest();
    }
    try (Repository r = open()) {
      r.stats(); // kept: big and b
      mc = backup(r, "c", imageC).manifest(); // an added blob
    }
    try (Repository r = open()) {
      assertRestores(r, mc, "c", c);
      assertThat(r.lastScopedFill()).isEqualTo(IndexSource.FILE_AND_BLOBS);
      assertThat(r.chunkIndexLoaded()).isFalse();
    }

    try (RandomAccessFile f = new RandomAccessFile(file().toFile(), "rw")) { // damaged
      f.seek(f.length() - 100);
      int x = f.read();
      f.seek(f.length() - 100);
      f.write(x ^ 4);
    }
    try (Repository r = open()) {
      assertRestores(r, mc, "c", c);
      assertThat(r.lastScopedFill()).isEqualTo(IndexSource.BLOBS);
      r.stats(); // written again
    }
    try (Repository r = open()) {
      assertRestores(r, mc, "c", c);
      assertThat(r.lastScopedFill()).isEqualTo(IndexSource.FILE_AND_BLOBS);
    }

    try (Repository r = Repository.open(dir)) { // a prune by a process that keeps nothing
      r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
      assertThat(r.forgetSnapshots(List.of(mb.id()), false)).hasSize(1);
      r.prune(new Pruner.Options(false, 1.0, java.time.Duration.ZERO), (phase, done, total) -> {});
    }
    try (Repository r = open()) {
      assertRestores(r, mc, "c", c);
      assertThat(r.lastScopedFill()).isEqualTo(IndexSource.BLOBS);
      r.stats(); // written again
    }

    ChunkId first;
    try (Repository r = open();
        FixedIndex fixed = r.fixedIndex(mc, "c")) {
      first = fixed.get(0);
    }
    IndexWriter.save( // an added blob repeats one of c's chunks
        new LocalBlobStore(dir),
        BlobCodec.IDENTITY,
        List.of(new IndexEntry(first, new ChunkLocation(PackId.random(), 0, 100, 4096, 0))));
    try (Repository r = open()) {
      try {
        r.restoreDisk(mc, "c", tmp.resolve("either.raw"));
      } catch (RepositoryException e) {
        // the repeated entry was listed first, in a pack that does not exist: the blobs' answer
        assertThat(e.getMessage()).contains(first.toString());
      }
      assertThat(r.lastScopedFill()).isEqualTo(IndexSource.BLOBS);
    }
  }

  /** Under the default threshold an index is read from its blobs and no file is kept. */
  @Test
  void aSmallIndexIsNotKept() throws Exception {
    try (Repository r = Repository.init(dir, CFG).keepIndexIn(cache)) {
      backup(r, "a", imageA);
    }
    try (Repository r = Repository.open(dir).keepIndexIn(cache)) {
      assertThat(r.stats().chunks()).isLessThan(Repository.KEEP_MIN_ENTRIES);
      assertThat(r.lastIndexLoad()).isEqualTo(IndexSource.BLOBS);
    }
    assertThat(file()).doesNotExist();
  }
}
