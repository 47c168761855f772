package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Verify with its tables over their memory budget (1 MiB, {@code granule.index.memory-mib}): index
 * entries checked against the trailers, and a disk's 80 000 chunks against the index, through
 * lookups sorted by where they land in the paged tables. Intact, it counts every chunk; with a pack
 * or an index blob gone, it names the file and the snapshot as with tables in memory.
 */
class PagedVerifyTest {
  private static final int CHUNK = 4096;
  private static final int CHUNKS = 80_000;

  @TempDir Path tmp;
  Path repo;
  String snapshot;
  String before;
  LocalBlobStore store;

  @BeforeEach
  void backUpAndShrinkTheBudget() {
    repo = tmp.resolve("repo");
    try (Repository r =
        Repository.init(
            repo, RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(64 << 10))) {
      snapshot =
          r.backup(
                  new BackupRequest(
                      List.of(new BackupRequest.NamedDisk("d", TestImages.numbered(CHUNK, CHUNKS))),
                      "h",
                      null,
                      null),
                  BackupListener.NONE)
              .manifest()
              .id();
    }
    before = System.getProperty("granule.index.memory-mib");
    store = new LocalBlobStore(repo);
  }

  @AfterEach
  void restoreTheBudget() {
    if (before == null) {
      System.clearProperty("granule.index.memory-mib");
    } else {
      System.setProperty("granule.index.memory-mib", before);
    }
  }

  private VerifyReport verify() {
    return verify(true, false);
  }

  /** Verify with tables paged through a 1 MiB budget, or in memory (the default budget). */
  private VerifyReport verify(boolean paged, boolean readData) {
    if (paged) {
      System.setProperty("granule.index.memory-mib", "1");
      assertThat(ChunkIndex.defaultMemory()).isEqualTo(1 << 20);
    } else {
      System.clearProperty("granule.index.memory-mib");
    }
    try (Repository r =
        Repository.open(new LocalBlobStore(repo), Clock.systemUTC(), tmp.resolve("cache"))) {
      return r.verify(readData, VerifyListener.NONE);
    } finally {
      System.clearProperty("granule.index.memory-mib");
    }
  }

  @Test
  void intactRepositoryVerifiesEveryChunk() {
    VerifyReport report = verify();
    assertThat(report.ok()).as("%s", report.damages()).isTrue();
    assertThat(report.chunks()).isEqualTo(CHUNKS);
  }

  @Test
  void aMissingPackIsNamedWithTheSnapshotItAffects() throws Exception {
    BlobName pack = store.list(BlobType.PACK).get(3);
    Files.delete(store.path(pack));
    VerifyReport report = verify();
    assertThat(report.damages())
        .anySatisfy(
            d -> {
              assertThat(d.file()).isEqualTo(pack.toString());
              assertThat(d.problems()).anyMatch(p -> p.startsWith("missing, listed by index/"));
              assertThat(d.snapshots()).containsExactly(snapshot);
            });
    assertThat(report.affectedSnapshots()).containsExactly(snapshot);
  }

  @Test
  void chunksNoIndexListsAreCountedOnTheDiskThatUsesThem() throws Exception {
    List<BlobName> indexes = store.list(BlobType.INDEX);
    assertThat(indexes).hasSizeGreaterThan(1);
    BlobName gone = indexes.get(0);
    Files.delete(store.path(gone));
    VerifyReport report = verify();
    assertThat(report.chunks()).isPositive().isLessThan(CHUNKS);
    long missing = CHUNKS - report.chunks();
    assertThat(report.damages())
        .anySatisfy(
            d -> {
              assertThat(d.file()).startsWith("fixed/");
              assertThat(d.problems())
                  .anyMatch(
                      p ->
                          p.contains(
                              "references " + missing + " chunks that no intact index lists"));
              assertThat(d.snapshots()).containsExactly(snapshot);
            });
  }

  private static long part(ChunkId key, long capacity, int parts) {
    return Math.multiplyHigh(key.w0() >>> 1, capacity << 1) * parts / capacity;
  }

  /** A new, empty index blob listed after at least one real one. */
  private BlobName newBlobListedAfterTheFirst() throws Exception {
    for (int attempt = 0; ; attempt++) {
      byte[] id = new byte[32];
      new Random(attempt * 7919L + 1).nextBytes(id);
      BlobName n = new BlobName(BlobType.INDEX, HexFormat.of().formatHex(id));
      store.save(n, IndexWriter.write(List.of()));
      if (store.list(BlobType.INDEX).indexOf(n) >= 1) {
        return n;
      }
      store.delete(n);
    }
  }

  /** The entries of the index blobs listed before {@code n}. */
  private List<IndexEntry> entriesBefore(BlobName n) throws Exception {
    List<IndexEntry> out = new ArrayList<>();
    for (BlobName b : store.list(BlobType.INDEX)) {
      if (b.equals(n)) {
        break;
      }
      out.addAll(IndexReader.read(b, store.load(b)));
    }
    return out;
  }

  private static ChunkLocation at(PackId pack, ChunkLocation l) {
    return new ChunkLocation(pack, l.offset(), l.storedLength(), l.rawLength(), l.flags());
  }

  /**
   * A blob listed later gives chunks already listed a second location, in a pack that does not
   * exist: the first location listed stays the chunk's (as when a repository loads its index), so
   * the snapshot is not affected, paged or not; the missing pack is named.
   */
  @Test
  void aLaterCopyInAMissingPackDoesNotDisplaceTheFirst() throws Exception {
    BlobName phantom = newBlobListedAfterTheFirst();
    PackId gone = new PackId(0x1234, 0x5678);
    List<IndexEntry> copies = new ArrayList<>();
    for (IndexEntry e : entriesBefore(phantom)) {
      copies.add(new IndexEntry(e.id(), at(gone, e.location())));
    }
    Files.write(store.path(phantom), IndexWriter.write(copies));
    for (boolean paged : new boolean[] {false, true}) {
      VerifyReport report = verify(paged, false);
      assertThat(report.affectedSnapshots()).as("paged %s", paged).isEmpty();
      assertThat(report.damages())
          .as("paged %s", paged)
          .anySatisfy(d -> assertThat(d.problems()).anyMatch(p -> p.startsWith("missing, listed")));
    }
  }

  /**
   * A chunk in two intact packs (a pack copied under a new id, listed by a later blob) whose
   * first-listed copy, the one a restore reads, is corrupt: the snapshot is affected, paged or not,
   * whichever copy the sorted trailer checks answer first.
   */
  @Test
  void aCorruptFirstCopyAffectsTheSnapshotWhateverTheSortOrder() throws Exception {
    BlobName later = newBlobListedAfterTheFirst();
    List<IndexEntry> earlier = entriesBefore(later);
    PackId p1 = earlier.get(0).location().pack();
    PackId p2 = new PackId(~p1.hi(), ~p1.lo()); // its keys sort far from p1's: mirrored
    BlobName n1 = new BlobName(BlobType.PACK, p1.toString());
    BlobName n2 = new BlobName(BlobType.PACK, p2.toString());
    Files.createDirectories(store.path(n2).getParent());
    Files.copy(store.path(n1), store.path(n2));
    List<IndexEntry> copies = new ArrayList<>();
    for (IndexEntry e : earlier) {
      if (e.location().pack().equals(p1)) {
        copies.add(new IndexEntry(e.id(), at(p2, e.location())));
      }
    }
    Files.write(store.path(later), IndexWriter.write(copies));
    // corrupt, in the first copy, one chunk whose copy's key sorts into an earlier part of the
    // verifier's trailer table (its capacity and parts as ChunkIndex makes them for 1 MiB / 2)
    long expected = IndexReader.estimatedEntries(store.listInfo(BlobType.INDEX));
    long capacity = expected * 10 / 7 + 1;
    int parts = (int) (capacity * 64 / (1 << 20) + 1);
    assertThat(parts).isGreaterThan(2);
    ChunkId victim = null;
    for (IndexEntry e : copies) {
      if (part(ChunkIndex.inPackKey(p2, e.id()), capacity, parts)
          < part(ChunkIndex.inPackKey(p1, e.id()), capacity, parts)) {
        victim = e.id();
        break;
      }
    }
    assertThat(victim).isNotNull();
    for (PackEntry x : PackReader.loadTrailer(store, n1)) {
      if (x.id().equals(victim)) {
        byte[] bytes = Files.readAllBytes(store.path(n1));
        bytes[(int) x.offset() + x.storedLength() / 2] ^= 0x55;
        Files.write(store.path(n1), bytes);
      }
    }
    for (boolean paged : new boolean[] {false, true}) {
      VerifyReport report = verify(paged, true);
      assertThat(report.affectedSnapshots()).as("paged %s", paged).containsExactly(snapshot);
    }
  }

  /**
   * Index entries with locations no pack can have (an offset past 2^32, a raw length past 2^24) are
   * damage, named as such, paged or not, whether their pack exists or not; verify goes on.
   */
  @Test
  void impossibleLocationsAreDamageOnBothPaths() throws Exception {
    BlobName b = store.list(BlobType.INDEX).get(0);
    List<IndexEntry> entries = new ArrayList<>(IndexReader.read(b, store.load(b)));
    IndexEntry first = entries.get(0);
    ChunkLocation l = first.location();
    entries.set(
        0,
        new IndexEntry(
            first.id(),
            new ChunkLocation(
                l.pack(),
                l.offset() + (1L << 32),
                l.storedLength(),
                l.rawLength() + (1 << 24),
                l.flags())));
    IndexEntry second = entries.get(1);
    entries.set(
        1, new IndexEntry(second.id(), new ChunkLocation(new PackId(1, 2), 1L << 32, 10, 4096, 0)));
    Files.write(store.path(b), IndexWriter.write(entries));
    for (boolean paged : new boolean[] {false, true}) {
      VerifyReport report = verify(paged, false);
      assertThat(report.ok()).as("paged %s", paged).isFalse();
      assertThat(report.damages())
          .as("paged %s", paged)
          .anySatisfy(
              d -> {
                assertThat(d.file()).isEqualTo(b.toString());
                assertThat(d.problems())
                    .filteredOn(p -> p.contains("impossible location"))
                    .hasSize(2);
              });
    }
  }
}
