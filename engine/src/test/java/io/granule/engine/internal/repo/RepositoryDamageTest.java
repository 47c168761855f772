package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.RepositoryTest.backup;
import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.Damage;
import io.granule.engine.internal.repo.backup.DataSubset;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damages repository files the way disks and people do (bit flips, truncation, deletion) and checks
 * that verify names each damaged file with the snapshots it affects, that unaffected snapshots
 * still restore byte for byte, and that affected data fails loudly instead of restoring wrong
 * bytes.
 */
class RepositoryDamageTest {
  @TempDir Path tmp;
  private Path dir;
  private LocalBlobStore store;
  private Path imageA;
  private Path imageB;
  private Manifest a;
  private Manifest b;
  private List<BlobName> packsOfA;
  private List<BlobName> packsOnlyOfB;
  private List<BlobName> indexesOfB;

  @BeforeEach
  void setUp() throws Exception {
    dir = tmp.resolve("repo");
    store = new LocalBlobStore(dir);
    imageA = TestImages.write(tmp.resolve("a.raw"), TestImages.mixed(6 << 20, 21));
    imageB = TestImages.write(tmp.resolve("b.raw"), TestImages.mixed(6 << 20, 22));
    try (Repository repo =
        Repository.init(
            dir, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(512 << 10))) {
      a = backup(repo, "vda", imageA, "h").manifest();
      packsOfA = store.list(BlobType.PACK);
      List<BlobName> indexesOfA = store.list(BlobType.INDEX);
      b = backup(repo, "vda", imageB, "h").manifest();
      packsOnlyOfB = new ArrayList<>(store.list(BlobType.PACK));
      packsOnlyOfB.removeAll(packsOfA);
      indexesOfB = new ArrayList<>(store.list(BlobType.INDEX));
      indexesOfB.removeAll(indexesOfA);
    }
    assertThat(packsOnlyOfB).hasSizeGreaterThan(2);
    assertThat(indexesOfB).isNotEmpty();
  }

  private VerifyReport verify(boolean readData) {
    try (Repository repo = Repository.open(dir)) {
      return repo.verify(readData, VerifyListener.NONE);
    }
  }

  private static Damage damageOf(VerifyReport r, BlobName file) {
    return r.damages().stream()
        .filter(d -> d.file().equals(file.toString()))
        .findFirst()
        .orElseThrow(() -> new AssertionError(file + " not reported in " + r.damages()));
  }

  private void assertARestoresAndBFails(String expectedInMessage) throws Exception {
    try (Repository repo = Repository.open(dir)) {
      Path out = tmp.resolve("a.out");
      repo.restoreDisk(repo.resolve(a.id()), "vda", out);
      assertThat(sha256(out)).isEqualTo(sha256(imageA));
      assertThatThrownBy(() -> repo.restoreDisk(repo.resolve(b.id()), "vda", tmp.resolve("b.out")))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("snapshot " + b.id())
          .hasMessageContaining(expectedInMessage);
    }
  }

  private void flipBit(BlobName name, long offset) throws Exception {
    try (RandomAccessFile f = new RandomAccessFile(store.path(name).toFile(), "rw")) {
      f.seek(offset);
      int v = f.read();
      f.seek(offset);
      f.write(v ^ 0x10);
    }
  }

  @Test
  void undamagedRepositoryVerifies() {
    VerifyReport r = verify(true);
    assertThat(r.ok()).as("%s", r.damages()).isTrue();
    assertThat(r.snapshots()).isEqualTo(2);
    assertThat(r.packs()).isEqualTo(packsOfA.size() + packsOnlyOfB.size());
  }

  @Test
  void bitFlipInAChunkIsFoundByReadDataAndBlocksOnlyTheSnapshotUsingIt() throws Exception {
    BlobName pack = packsOnlyOfB.get(1);
    PackEntry victim = PackReader.loadTrailer(store, pack).get(0);
    flipBit(pack, victim.offset() + victim.storedLength() / 2);

    assertThat(verify(false).ok()).as("structure alone cannot see it").isTrue();
    VerifyReport r = verify(true);
    Damage d = damageOf(r, pack);
    assertThat(d.problems()).anyMatch(p -> p.contains("chunk " + victim.id()));
    assertThat(d.snapshots()).containsExactly(b.id());
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    assertARestoresAndBFails("chunk " + victim.id());
  }

  /**
   * A subset of the data read (--read-data-subset) finds a damaged chunk exactly when it reads its
   * pack: of the groups 1/t … t/t, which together read every pack once, exactly one; a size or
   * share reads that many packs; the structure is checked in full whatever the subset.
   */
  @Test
  void aSubsetOfTheDataFindsADamagedChunkOnlyInTheGroupThatReadsItsPack() throws Exception {
    BlobName pack = packsOnlyOfB.get(1);
    PackEntry victim = PackReader.loadTrailer(store, pack).get(0);
    flipBit(pack, victim.offset() + victim.storedLength() / 2);
    int packs = packsOfA.size() + packsOnlyOfB.size();
    int t = 3;
    int found = 0;
    int read = 0;
    long bytes = 0;
    for (int n = 1; n <= t; n++) {
      VerifyReport r = verify(DataSubset.parse(n + "/" + t));
      assertThat(r.dataRead()).isFalse();
      assertThat(r.dataSubset()).isEqualTo(n + "/" + t);
      assertThat(r.packs()).isEqualTo(packs);
      read += r.dataPacks();
      bytes += r.dataBytes();
      if (!r.ok()) {
        found++;
        assertThat(damageOf(r, pack).problems()).anyMatch(p -> p.contains("chunk " + victim.id()));
        assertThat(r.affectedSnapshots()).containsExactly(b.id());
      }
    }
    assertThat(found).as("one group reads the damaged pack").isEqualTo(1);
    assertThat(read).as("the groups read every pack once").isEqualTo(packs);
    long total = 0;
    for (BlobName p : store.list(BlobType.PACK)) {
      total += Files.size(store.path(p));
    }
    assertThat(bytes).isEqualTo(total);

    VerifyReport one = verify(DataSubset.parse("1"));
    assertThat(one.dataPacks()).isEqualTo(1);
    VerifyReport half = verify(DataSubset.parse("50%"));
    assertThat(half.dataPacks()).isEqualTo((packs + 1) / 2);
    VerifyReport every = verify(DataSubset.parse("100%"));
    assertThat(every.dataRead()).isTrue();
    assertThat(every.ok()).isFalse();
    VerifyReport none = verify(false);
    assertThat(none.dataPacks()).isZero();
    assertThat(none.dataSubset()).isEqualTo("none");
    assertThat(none.ok()).isTrue();
  }

  private VerifyReport verify(DataSubset data) {
    try (Repository repo = Repository.open(dir)) {
      return repo.verify(data, VerifyListener.NONE);
    }
  }

  @Test
  void randomReadsOfADamagedChunkFailEachTimeAndTheRestReadsRight() throws Exception {
    BlobName pack = packsOnlyOfB.get(1);
    PackEntry victim = PackReader.loadTrailer(store, pack).get(0);
    flipBit(pack, victim.offset() + victim.storedLength() / 2);
    byte[] data = Files.readAllBytes(imageB);
    try (Repository repo = Repository.open(dir);
        SnapshotDisk disk = repo.openDisk(repo.resolve(b.id()), "vda")) {
      int chunk = disk.fixedIndex().chunkSize();
      int position = 0;
      while (!disk.fixedIndex().get(position).equals(victim.id())) {
        position++;
      }
      long at = (long) position * chunk;
      int readers = 4;
      ExecutorService pool = Executors.newFixedThreadPool(readers);
      try {
        for (int round = 0; round < 3; round++) {
          List<Future<?>> reads = new ArrayList<>();
          for (int t = 0; t < readers; t++) {
            reads.add(
                pool.submit(
                    () -> {
                      disk.read(at + 10, ByteBuffer.allocate(100));
                      return null;
                    }));
          }
          for (Future<?> f : reads) {
            assertThatThrownBy(() -> f.get(60, TimeUnit.SECONDS))
                .isInstanceOf(ExecutionException.class)
                .cause()
                .isInstanceOf(RepositoryCorruptedException.class)
                .hasMessageContaining("snapshot " + b.id())
                .hasMessageContaining("chunk " + victim.id());
          }
        }
      } finally {
        pool.shutdownNow();
      }
      for (long off = 0; off < data.length; off += chunk) {
        if (!disk.fixedIndex().get((int) (off / chunk)).equals(victim.id())) {
          ByteBuffer bytes = ByteBuffer.allocate(chunk);
          disk.read(off, bytes);
          assertThat(bytes.array())
              .isEqualTo(Arrays.copyOfRange(data, (int) off, (int) off + chunk));
        }
      }
    }
  }

  @Test
  void truncatedPackIsNamedWithTheSnapshotsAffected() throws Exception {
    BlobName pack = packsOnlyOfB.get(0);
    Path file = store.path(pack);
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.setLength(f.length() / 2);
    }
    VerifyReport r = verify(false);
    Damage d = damageOf(r, pack);
    assertThat(d.snapshots()).containsExactly(b.id());
    assertThat(d.problems().get(0)).startsWith("pack " + pack + ": ");
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    assertARestoresAndBFails("chunk ");
  }

  /**
   * audit14 B M1: a forged sparse pack (8 KiB on disk, 30 GB apparent) whose footer count makes
   * {@code count * 56} wrap around to 56 crashed every verify with OutOfMemoryError; one that is
   * merely larger than a pack of this repository can be had its trailer read whole. Both are named
   * as damage and the rest is verified.
   */
  @Test
  void aForgedPackTrailerCountIsNamedNotAnOutOfMemoryError() throws Exception {
    int count = 1 + (1 << 29); // count * 56 == 56 (mod 2^32)
    BlobName forged = new BlobName(BlobType.PACK, "ee" + "0".repeat(29) + "1");
    long size = 8 + (long) count * 56 + 24;
    Path file = store.path(forged);
    Files.createDirectories(file.getParent());
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.write(java.nio.ByteBuffer.allocate(8).putInt(0x4750414b).putShort((short) 1).array());
      f.setLength(size);
      byte[] trailer = new byte[56];
      java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
      crc.update(trailer);
      f.seek(size - 24);
      f.write(
          java.nio.ByteBuffer.allocate(24)
              .putLong(8)
              .putInt(count)
              .putInt((int) crc.getValue())
              .putInt(0)
              .putInt(0x4b415047)
              .array());
    }
    VerifyReport r = verify(false);
    assertThat(damageOf(r, forged).problems().get(0))
        .startsWith("pack " + forged + ": ")
        .contains("more than a pack of this repository can have");
    assertThat(r.damages()).hasSize(1);
    // the reader's own bound, for callers without the repository's pack size
    assertThatThrownBy(
            () ->
                io.granule.engine.internal.repo.pack.PackReader.loadTrailer(
                    store, forged, store.stat(forged).orElseThrow()))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("more entries than its data area has bytes");
  }

  @Test
  void deletedPackIsNamedAsMissing() throws Exception {
    BlobName pack = packsOnlyOfB.get(2);
    Files.delete(store.path(pack));
    VerifyReport r = verify(false);
    Damage d = damageOf(r, pack);
    assertThat(d.problems()).anyMatch(p -> p.startsWith("missing, listed by index/"));
    assertThat(d.snapshots()).containsExactly(b.id());
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    assertARestoresAndBFails("pack " + pack + " is missing");
  }

  /**
   * A pack gone from under the index (deleted by hand, lost with a disk): the next backup drops its
   * chunks from the index instead of deduplicating against them, so a backup of the data they held
   * stores them again. Chunks are named by their content, so that heals the damaged snapshot too;
   * until then it fails naming itself, and verify names it alone.
   */
  @Test
  void aBackupAfterAPackWentMissingStoresItsChunksAgain() throws Exception {
    BlobName gone = packsOnlyOfB.get(1);
    Files.delete(store.path(gone));
    try (Repository repo = Repository.open(dir)) {
      BackupResult res = backup(repo, "vda", imageA, "h");
      assertThat(repo.missingPacksForgotten()).isEqualTo(1);
      assertThat(res.progress().bytesNew()).isZero();
    }
    for (BlobName i : store.list(BlobType.INDEX)) {
      for (IndexEntry e : IndexReader.read(i, store.load(i))) {
        assertThat(e.location().pack().toString()).isNotEqualTo(gone.name());
      }
    }
    assertARestoresAndBFails("snapshot " + b.id());
    assertThat(verify(false).affectedSnapshots()).containsExactly(b.id());

    Manifest c;
    try (Repository repo = Repository.open(dir)) {
      BackupResult res = backup(repo, "vda", imageB, "h");
      c = res.manifest();
      assertThat(repo.missingPacksForgotten()).isZero();
      assertThat(res.progress().bytesNew()).as("stored again").isPositive();
    }
    try (Repository repo = Repository.open(dir)) {
      for (Manifest m : List.of(c, b)) {
        Path out = tmp.resolve(m.id() + ".out");
        repo.restoreDisk(repo.resolve(m.id()), "vda", out);
        assertThat(sha256(out)).as(m.id()).isEqualTo(sha256(imageB));
      }
    }
    VerifyReport r = verify(true);
    assertThat(r.ok()).as("%s", r.damages()).isTrue();
  }

  /**
   * Two backups replacing the same index blob at once, each for its own missing pack, each write a
   * copy with the other's entries: the one that still finds its missing pack listed after reading
   * the index again replaces blobs again, so it never deduplicates against the lost chunks.
   */
  @Test
  void aMissingPackListedAgainByAConcurrentReplacementIsDroppedAgain() throws Exception {
    BlobName gone = packsOnlyOfB.get(1);
    Files.delete(store.path(gone));
    java.util.concurrent.atomic.AtomicBoolean raced =
        new java.util.concurrent.atomic.AtomicBoolean();
    io.granule.engine.internal.repo.blob.ForwardingBlobStore racing =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public void delete(BlobName name) throws java.io.IOException {
            if (name.type() == BlobType.INDEX && raced.compareAndSet(false, true)) {
              // the other backup's copy of this blob: its entries, ours included
              delegate.save(new BlobName(BlobType.INDEX, "e".repeat(64)), delegate.load(name));
            }
            super.delete(name);
          }
        };
    Manifest c;
    try (Repository repo =
        Repository.open(racing, java.time.Clock.systemUTC(), tmp.resolve("cache"))) {
      c = backup(repo, "vda", imageB, "h").manifest();
    }
    assertThat(raced).isTrue();
    for (BlobName i : store.list(BlobType.INDEX)) {
      for (IndexEntry e : IndexReader.read(i, store.load(i))) {
        assertThat(e.location().pack().toString()).isNotEqualTo(gone.name());
      }
    }
    try (Repository repo = Repository.open(dir)) {
      Path out = tmp.resolve("c.out");
      repo.restoreDisk(repo.resolve(c.id()), "vda", out);
      assertThat(sha256(out)).isEqualTo(sha256(imageB));
    }
  }

  /**
   * Verify runs under a shared lock, beside backups, forgets and the repairs of backups that found
   * packs missing. None of them makes it report damage that is not there: a backup that writes a
   * snapshot while verify checks the packs, a snapshot forgotten and an index blob replaced while
   * it checks the index blobs.
   */
  @Test
  void verifyReportsNoDamageForWhatOthersChangeWhileItRuns() throws Exception {
    Path imageC = TestImages.write(tmp.resolve("c.raw"), TestImages.mixed(6 << 20, 23));
    BlobName indexToReplace = indexesOfB.get(0);
    java.util.concurrent.atomic.AtomicInteger events =
        new java.util.concurrent.atomic.AtomicInteger();
    io.granule.engine.internal.repo.blob.ForwardingBlobStore busy =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public java.util.Optional<io.granule.engine.internal.repo.blob.BlobInfo> stat(
              BlobName name) throws java.io.IOException {
            if (name.type() == BlobType.PACK && events.compareAndSet(0, 1)) {
              try (Repository other = Repository.open(dir)) { // a backup while packs are checked
                backup(other, "vda", imageC, "h2");
              }
            }
            return super.stat(name);
          }

          @Override
          public byte[] load(BlobName name) throws java.io.IOException {
            if (name.type() == BlobType.INDEX && events.compareAndSet(1, 2)) {
              // a snapshot forgotten, and a blob replaced as a backup that found packs missing does
              delegate.delete(new BlobName(BlobType.SNAPSHOT, a.id()));
              byte[] bytes = delegate.load(indexToReplace);
              delegate.save(new BlobName(BlobType.INDEX, "d".repeat(64)), bytes);
              delegate.delete(indexToReplace);
            }
            return super.load(name);
          }
        };
    VerifyReport r;
    try (Repository repo =
        Repository.open(busy, java.time.Clock.systemUTC(), tmp.resolve("cache"))) {
      r = repo.verify(true, VerifyListener.NONE);
    }
    assertThat(events.get()).isEqualTo(2);
    assertThat(r.ok()).as("%s", r.damages()).isTrue();
    assertThat(r.snapshots())
        .as("b; a was forgotten, the new one came after the listing")
        .isEqualTo(1);
    VerifyReport after = verify(true);
    assertThat(after.ok()).as("%s", after.damages()).isTrue();
    assertThat(after.snapshots()).isEqualTo(2);
  }

  /**
   * A store whose listing lags its writes (some S3-compatible servers) and leaves out a pack that
   * exists: the pack is asked for on its own before anything is dropped.
   */
  @Test
  void aPackTheListingLeavesOutButThatExistsIsNotDropped() throws Exception {
    BlobName unlisted = packsOnlyOfB.get(1);
    List<BlobName> indexesBefore = store.list(BlobType.INDEX);
    io.granule.engine.internal.repo.blob.ForwardingBlobStore lagging =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public List<BlobName> list(BlobType type) throws java.io.IOException {
            List<BlobName> names = new ArrayList<>(super.list(type));
            names.remove(unlisted);
            return names;
          }
        };
    try (Repository repo =
        Repository.open(lagging, java.time.Clock.systemUTC(), tmp.resolve("cache"))) {
      BackupResult res = backup(repo, "vda", imageB, "h");
      assertThat(repo.missingPacksForgotten()).isZero();
      assertThat(res.progress().bytesNew()).isZero();
    }
    assertThat(store.list(BlobType.INDEX)).containsAll(indexesBefore);
    assertThat(verify(true).ok()).isTrue();
  }

  /**
   * An index blob listed and then gone when read (a backup replaced it meanwhile, see above) is not
   * damage: the reader lists the blobs again and gets every chunk.
   */
  @Test
  void anIndexBlobReplacedWhileTheIndexIsReadIsReadAgain() throws Exception {
    BlobName victim = indexesOfB.get(0);
    byte[] bytes = store.load(victim);
    java.util.concurrent.atomic.AtomicBoolean replaced =
        new java.util.concurrent.atomic.AtomicBoolean();
    io.granule.engine.internal.repo.blob.ForwardingBlobStore racing =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public byte[] load(BlobName name) throws java.io.IOException {
            if (name.equals(victim) && replaced.compareAndSet(false, true)) {
              // as a backup replacing it does: the same entries under a new name, then the old gone
              delegate.save(new BlobName(BlobType.INDEX, "f".repeat(64)), bytes);
              delegate.delete(victim);
            }
            return super.load(name);
          }
        };
    try (Repository repo =
        Repository.open(racing, java.time.Clock.systemUTC(), tmp.resolve("cache"))) {
      Path out = tmp.resolve("b.out");
      repo.restoreDisk(repo.resolve(b.id()), "vda", out);
      assertThat(sha256(out)).isEqualTo(sha256(imageB));
    }
    assertThat(replaced).isTrue();
  }

  @Test
  void damagedIndexIsNamedAndItsSnapshotsListed() throws Exception {
    BlobName index = indexesOfB.get(0);
    flipBit(index, 40);
    VerifyReport r = verify(false);
    Damage d = damageOf(r, index);
    assertThat(d.problems().get(0)).startsWith(index + ": checksum mismatch: actual=");
    assertThat(d.snapshots()).containsExactly(b.id());
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    assertARestoresAndBFails("is not in any index");
  }

  @Test
  void indexEntryThatDisagreesWithItsPackTrailerIsNamed() throws Exception {
    BlobName index = indexesOfB.get(0);
    IndexEntry moved =
        rewriteFirstEntry(
            index,
            e -> {
              ChunkLocation l = e.location();
              return new IndexEntry(
                  e.id(),
                  new ChunkLocation(
                      l.pack(), l.offset() + 1, l.storedLength(), l.rawLength(), l.flags()));
            });
    VerifyReport r = verify(false);
    assertThat(damageOf(r, index).problems())
        .anyMatch(
            p ->
                p.startsWith("chunk " + moved.id() + " disagrees with the trailer of pack ")
                    && p.contains("offset=" + moved.location().offset())
                    && p.contains("offset=" + (moved.location().offset() - 1)));
  }

  @Test
  void indexEntryForAChunkItsPackDoesNotHoldIsNamed() throws Exception {
    BlobName index = indexesOfB.get(0);
    ChunkId stranger = ChunkId.parse("17".repeat(32));
    rewriteFirstEntry(index, e -> new IndexEntry(stranger, e.location()));
    VerifyReport r = verify(false);
    assertThat(damageOf(r, index).problems())
        .anyMatch(
            p ->
                p.startsWith("chunk " + stranger + " disagrees with the trailer of pack ")
                    && p.endsWith("expected=no such chunk in it"));
  }

  /** Replaces index blob {@code name} by one whose first entry is {@code change}d; returns it. */
  private IndexEntry rewriteFirstEntry(
      BlobName name, java.util.function.UnaryOperator<IndexEntry> change) throws Exception {
    List<IndexEntry> entries = new ArrayList<>(IndexReader.read(name, store.load(name)));
    IndexEntry changed = change.apply(entries.get(0));
    entries.set(0, changed);
    store.delete(name);
    store.save(name, IndexWriter.write(entries));
    return changed;
  }

  @Test
  void deletedIndexMakesItsChunksUnreachableUntilTheNextBackupReindexesThePacks() throws Exception {
    for (BlobName i : indexesOfB) {
      Files.delete(store.path(i));
    }
    VerifyReport r = verify(false);
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    BlobName fixed = new BlobName(BlobType.FIXED_INDEX, b.disks().get(0).fixedIndex());
    assertThat(damageOf(r, fixed).problems().get(0)).contains("chunks that no intact index lists");
    try (Repository repo = Repository.open(dir)) {
      Path other = TestImages.write(tmp.resolve("c.raw"), new byte[] {7});
      backup(repo, "x", other, "h");
    }
    assertThat(verify(true).ok()).isTrue();
    try (Repository repo = Repository.open(dir)) {
      repo.restoreDisk(repo.resolve(b.id()), "vda", tmp.resolve("b.out"));
      assertThat(sha256(tmp.resolve("b.out"))).isEqualTo(sha256(imageB));
    }
  }

  @Test
  void damagedSnapshotManifestIsNamed() throws Exception {
    BlobName snap = new BlobName(BlobType.SNAPSHOT, b.id());
    flipBit(snap, 30);
    VerifyReport r = verify(false);
    Damage d = damageOf(r, snap);
    assertThat(d.snapshots()).containsExactly(b.id());
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    try (Repository repo = Repository.open(dir)) {
      assertThat(repo.snapshots()).extracting(Manifest::id).containsExactly(a.id());
      assertThatThrownBy(() -> repo.resolve(b.id()))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageStartingWith("snapshots/" + b.id() + ": checksum mismatch: actual=");
      repo.restoreDisk(repo.resolve(a.id()), "vda", tmp.resolve("a.out"));
      assertThat(sha256(tmp.resolve("a.out"))).isEqualTo(sha256(imageA));
      // b, the newest, is damaged: 'latest' is refused, never resolved to a (the older one)
      assertThatThrownBy(() -> repo.resolve("latest", SnapshotFilter.ANY, "vda"))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageStartingWith("snapshots/" + b.id() + ": checksum mismatch")
          .hasMessageContaining("'latest' is refused");
      repo.lock(io.granule.engine.internal.repo.lock.LockKind.SHARED, "forget", Duration.ZERO);
      assertThat(repo.forgetSnapshots(List.of(b.id()), false)).containsExactly(b.id());
      assertThat(repo.resolve("latest").id()).isEqualTo(a.id());
    }
  }

  @Test
  void aManifestPastTheBoundsIsSkippedAsDamagedNotAnOutOfMemoryError() throws Exception {
    // audit12 M3: millions of entries within the size cap ran every listing out of memory
    BlobName snap = new BlobName(BlobType.SNAPSHOT, b.id());
    List<Manifest.DiskEntry> disks = java.util.Collections.nCopies(5000, b.disks().get(0));
    Files.write(
        store.path(snap),
        io.granule.engine.internal.repo.snapshot.ManifestWriter.write(
            new Manifest(
                b.version(),
                b.id(),
                b.time(),
                b.host(),
                b.tags(),
                b.parent(),
                disks,
                b.streams(),
                b.applications())));
    VerifyReport r = verify(false);
    assertThat(damageOf(r, snap).snapshots()).containsExactly(b.id());
    try (Repository repo = Repository.open(dir)) {
      assertThat(repo.snapshots()).extracting(Manifest::id).containsExactly(a.id());
      assertThatThrownBy(() -> repo.resolve(b.id()))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("more than 4096 entries in 'disks'");
    }
  }

  @Test
  void missingFixedIndexIsNamed() throws Exception {
    BlobName fixed = new BlobName(BlobType.FIXED_INDEX, b.disks().get(0).fixedIndex());
    Files.delete(store.path(fixed));
    VerifyReport r = verify(false);
    Damage d = damageOf(r, fixed);
    assertThat(d.problems().get(0)).startsWith("missing, listed by snapshots/" + b.id());
    assertThat(r.affectedSnapshots()).containsExactly(b.id());
    assertARestoresAndBFails("fixed index fixed/" + fixed.name() + " is missing");
  }
}
