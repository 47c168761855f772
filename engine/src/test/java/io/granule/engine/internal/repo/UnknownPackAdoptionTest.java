package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.RepositoryTest.backup;
import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.pack.PackWriter;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.store.ChunkReader;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A backup indexes packs no index lists (left by a crash) only after checking every record: a pack
 * forged by someone who can write the storage (audit9 M1) or a huge stray file under data/ (M2) is
 * left alone, and the backup still succeeds and restores.
 */
class UnknownPackAdoptionTest {
  @TempDir Path tmp;
  private Path dir;
  private LocalBlobStore store;
  private byte[] data;
  private Path image;

  private Repository open() {
    return Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"), "pw"::toCharArray);
  }

  @BeforeEach
  void setUp() throws Exception {
    dir = tmp.resolve("repo");
    store = new LocalBlobStore(dir);
    data = TestImages.mixed(3 << 20, 77);
    image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository r =
        Repository.init(
            store,
            RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10),
            Clock.systemUTC(),
            tmp.resolve("cache"),
            "pw".toCharArray(),
            KdfParams.TESTING)) {
      backup(r, "vda", image, "h");
    }
  }

  /** Backs the image up again, then restores that snapshot and checks it is the image. */
  private BackupResult backupAndRestore(String out) throws Exception {
    try (Repository r = open()) {
      BackupResult b = backup(r, "vda", image, "h");
      r.restoreDisk(b.manifest(), "vda", tmp.resolve(out));
      assertThat(sha256(tmp.resolve(out))).isEqualTo(sha256(data));
      return b;
    }
  }

  @Test
  void aForgedPackOfCopiedChunkIdsIsNotAdoptedAndTheBackupStoresTheChunksAgain() throws Exception {
    List<BlobName> packs = store.list(BlobType.PACK);
    BlobName victim = packs.get(0);
    List<PackEntry> entries = PackReader.loadTrailer(store, victim);
    store.delete(victim);
    // the attacker's pack: the real (keyed) chunk ids from the trailer, random records, right CRCs
    Random random = new Random(5);
    PackWriter w = new PackWriter(1 << 20);
    for (PackEntry e : entries) {
      byte[] junk = new byte[e.storedLength()];
      random.nextBytes(junk);
      w.add(e.id(), junk, e.rawLength(), e.flags());
    }
    BlobName forged = ChunkReader.packName(PackId.random());
    store.save(forged, w.finish());
    PackReader.parse(forged, store.load(forged)); // every checksum is right

    BackupResult b = backupAndRestore("out");
    assertThat(b.progress().bytesNew())
        .as("the victim's chunks are stored again, not deduplicated against the forged pack")
        .isPositive();
    assertThat(Files.exists(store.path(forged))).as("left for verify and prune").isTrue();
    // and not adopted by a later backup either
    assertThat(backupAndRestore("again").progress().bytesNew()).isZero();
  }

  @Test
  void aHugeStrayFileUnderDataDoesNotStopTheBackup() throws Exception {
    Path stray = store.path(ChunkReader.packName(PackId.random()));
    Files.createDirectories(stray.getParent());
    try (RandomAccessFile f = new RandomAccessFile(stray.toFile(), "rw")) {
      f.setLength(3L << 30); // sparse: it costs a few KiB on disk
    }
    Path garbage = store.path(ChunkReader.packName(PackId.random()));
    Files.createDirectories(garbage.getParent());
    Files.write(garbage, new byte[100_000]);

    assertThat(backupAndRestore("out").progress().bytesNew()).isZero();
    assertThat(stray).exists();
    assertThat(garbage).exists();
    assertThat(backupAndRestore("again").progress().bytesNew()).isZero();
  }

  @Test
  void aPackLeftByACrashIsStillAdopted() throws Exception {
    // an orphan with good records: the index blobs listing it gone, as if the crash came first
    for (BlobName i : store.list(BlobType.INDEX)) {
      store.delete(i);
    }
    assertThat(backupAndRestore("out").progress().bytesNew()).isZero();
  }

  @Test
  void pruneDoesNotTrustForgedTrailersOfUnindexedPacks() throws Exception {
    // audit10 M3: every index blob damaged (the real packs become unindexed too), and forged packs
    // copying the real trailers' ids, random records, right CRCs, listed before the real ones
    List<BlobName> real = store.list(BlobType.PACK);
    Random random = new Random(9);
    List<BlobName> forged = new java.util.ArrayList<>();
    for (BlobName p : real) {
      PackWriter w = new PackWriter(1 << 20);
      for (PackEntry e : PackReader.loadTrailer(store, p)) {
        byte[] junk = new byte[e.storedLength()];
        random.nextBytes(junk);
        w.add(e.id(), junk, e.rawLength(), e.flags());
      }
      BlobName f = ChunkReader.packName(PackId.random());
      store.save(f, w.finish());
      forged.add(f);
    }
    for (BlobName i : store.list(BlobType.INDEX)) {
      byte[] b = store.load(i);
      b[b.length / 2] ^= 1;
      store.save(i, b);
    }
    io.granule.engine.internal.repo.blob.BlobStore forgedFirst =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public List<io.granule.engine.internal.repo.blob.BlobInfo> listInfo(BlobType type)
              throws java.io.IOException {
            List<io.granule.engine.internal.repo.blob.BlobInfo> all =
                new java.util.ArrayList<>(delegate.listInfo(type));
            all.sort(
                java.util.Comparator.comparing(
                    (io.granule.engine.internal.repo.blob.BlobInfo i) ->
                        !forged.contains(i.name())));
            return all;
          }
        };
    try (Repository r =
        Repository.open(forgedFirst, Clock.systemUTC(), tmp.resolve("cache"), "pw"::toCharArray)) {
      r.lock(io.granule.engine.internal.repo.lock.LockKind.EXCLUSIVE, "prune", Duration.ZERO);
      var report =
          r.prune(
              new io.granule.engine.internal.repo.maintenance.Pruner.Options(
                  false, 0.0, Duration.ZERO),
              (phase, done, total) -> {});
      assertThat(report.orphanPacks()).isEqualTo(real.size() + forged.size());
    }
    for (BlobName p : real) {
      assertThat(Files.exists(store.path(p))).as("real pack %s kept", p).isTrue();
    }
    for (BlobName f : forged) {
      assertThat(Files.exists(store.path(f))).as("forged pack %s deleted", f).isFalse();
    }
    try (Repository r = open()) {
      assertThat(r.verify(true, io.granule.engine.internal.repo.backup.VerifyListener.NONE).ok())
          .isTrue();
      Manifest last = r.snapshots().get(r.snapshots().size() - 1);
      r.restoreDisk(last, "vda", tmp.resolve("restored"));
      assertThat(sha256(tmp.resolve("restored"))).isEqualTo(sha256(data));
    }
  }

  /**
   * audit12 M1: the index blobs deleted, and a genuine pack's trailer rewritten (checksums right)
   * so that many entries name its largest record. The next backup refuses that trailer before
   * reading any record of the pack (it decoded the record once per entry, and adopted it), stores
   * the pack's chunks again, adopts the other packs, and verify names the pack.
   */
  @Test
  void aTrailerNamingOneRecordManyTimesIsRefusedWithoutReadingTheRecords() throws Exception {
    for (BlobName i : store.list(BlobType.INDEX)) {
      store.delete(i);
    }
    BlobName victim = null;
    PackEntry largest = null;
    for (BlobName p : store.list(BlobType.PACK)) {
      for (PackEntry e : PackReader.loadTrailer(store, p)) {
        if (largest == null || e.storedLength() > largest.storedLength()) {
          largest = e;
          victim = p;
        }
      }
    }
    store.save(
        victim,
        io.granule.engine.internal.repo.pack.PackForgery.withTrailer(
            store.load(victim), java.util.Collections.nCopies(2000, largest)));
    long trailerOffset =
        PackReader.stat(store, victim).size()
            - io.granule.engine.internal.repo.pack.PackFormat.FOOTER_SIZE
            - 2000L * io.granule.engine.internal.repo.pack.PackFormat.ENTRY_SIZE;
    BlobName forged = victim;
    java.util.concurrent.atomic.AtomicLong recordBytesRead =
        new java.util.concurrent.atomic.AtomicLong();
    io.granule.engine.internal.repo.blob.BlobStore counting =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public byte[] load(BlobName name, long offset, int length) throws java.io.IOException {
            if (name.equals(forged) && offset < trailerOffset) {
              recordBytesRead.addAndGet(length);
            }
            return delegate.load(name, offset, length);
          }
        };
    try (Repository r =
        Repository.open(counting, Clock.systemUTC(), tmp.resolve("cache"), "pw"::toCharArray)) {
      BackupResult b = backup(r, "vda", image, "h");
      assertThat(recordBytesRead.get()).as("no record of the forged pack read").isZero();
      assertThat(b.progress().bytesNew())
          .as("the refused pack's chunks are stored again")
          .isPositive();
      r.restoreDisk(b.manifest(), "vda", tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
      var report = r.verify(false, io.granule.engine.internal.repo.backup.VerifyListener.NONE);
      assertThat(report.damages())
          .anySatisfy(
              d -> {
                assertThat(d.file()).isEqualTo(forged.toString());
                assertThat(String.join(" ", d.problems())).contains("forged or damaged");
              });
    }
    // nothing was adopted from it: the snapshot restores without the pack
    store.delete(victim);
    try (Repository r = open()) {
      Manifest last = r.snapshots().get(r.snapshots().size() - 1);
      r.restoreDisk(last, "vda", tmp.resolve("without"));
      assertThat(sha256(tmp.resolve("without"))).isEqualTo(sha256(data));
    }
  }

  /**
   * The layout rule takes every pack a backup writes: packs of several sizes, encrypted or not, the
   * index blobs gone, are all adopted (nothing stored again).
   */
  @Test
  void genuinePacksOfSeveralSizesEncryptedOrNotAreAdopted() throws Exception {
    int[][] sizes = {{16 << 10, 64 << 10}, {64 << 10, 256 << 10}, {1 << 20, 16 << 20}};
    int k = 0;
    for (boolean encrypted : new boolean[] {false, true}) {
      for (int[] s : sizes) {
        Path d = tmp.resolve("g" + ++k);
        LocalBlobStore st = new LocalBlobStore(d);
        RepositoryConfig config =
            RepositoryConfig.defaults().withChunkSize(s[0]).withPackSize(s[1]);
        Path cache = tmp.resolve("cache" + k);
        try (Repository r =
            encrypted
                ? Repository.init(
                    st, config, Clock.systemUTC(), cache, "pw".toCharArray(), KdfParams.TESTING)
                : Repository.init(st, config, Clock.systemUTC(), cache, null, null)) {
          backup(r, "vda", image, "h");
        }
        int packs = st.list(BlobType.PACK).size();
        for (BlobName i : st.list(BlobType.INDEX)) {
          st.delete(i);
        }
        try (Repository r = Repository.open(st, Clock.systemUTC(), cache, "pw"::toCharArray)) {
          BackupResult b = backup(r, "vda", image, "h");
          assertThat(b.progress().bytesNew())
              .as("encrypted=%s chunk=%d pack=%d: %d packs adopted", encrypted, s[0], s[1], packs)
              .isZero();
          r.restoreDisk(b.manifest(), "vda", tmp.resolve("out" + k));
          assertThat(sha256(tmp.resolve("out" + k))).isEqualTo(sha256(data));
        }
      }
    }
  }
}
