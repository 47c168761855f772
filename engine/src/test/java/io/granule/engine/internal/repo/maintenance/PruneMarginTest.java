package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.assertValid;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.backup;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.copyTree;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.listing;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prune's safety margin ({@code --keep-recent}) and its check for snapshots saved while it runs:
 * the data of a backup whose lock went stale while its snapshot was still on the way survives a
 * prune, and that snapshot restores when it lands.
 */
class PruneMarginTest {
  static final Duration HOUR = Duration.ofHours(1);

  @TempDir Path tmp;
  Path dir;
  byte[] dataA;
  byte[] dataB;
  Path imageA;
  Path imageB;
  Manifest a;

  @BeforeEach
  void repository() throws Exception {
    dataA = TestImages.mixed(2 << 20, 21);
    dataB = TestImages.mixed(2 << 20, 22);
    imageA = TestImages.write(tmp.resolve("a.raw"), dataA);
    imageB = TestImages.write(tmp.resolve("b.raw"), dataB);
    dir = tmp.resolve("repo");
    try (Repository r = Repository.init(dir, PruneTest.SMALL)) {
      a = backup(r, "vda", imageA, "h").manifest();
    }
  }

  Repository open(BlobStore store) {
    return Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"));
  }

  static Pruner.Report prune(Repository r, Duration keepRecent) {
    r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    return r.prune(new Pruner.Options(false, 1.0, keepRecent), (phase, done, total) -> {});
  }

  /** Sets every blob's modification time {@code age} back, as if written that long ago. */
  static void age(Path dir, Duration age) throws IOException {
    FileTime then = FileTime.from(Instant.now().minus(age));
    try (Stream<Path> all = Files.walk(dir)) {
      for (Path p : all.filter(Files::isRegularFile).toList()) {
        Files.setLastModifiedTime(p, then);
      }
    }
  }

  /**
   * Backs up image B with the snapshot's save held back, as a backup killed while its snapshot's
   * upload was on the way (its lock then stale, removed by {@code unlock}); returns the manifest
   * blob that lands later.
   */
  Map.Entry<BlobName, byte[]> backupWhoseSnapshotLandsLate() throws Exception {
    AtomicReference<Map.Entry<BlobName, byte[]>> held = new AtomicReference<>();
    BlobStore withheld =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public void save(BlobName name, byte[] data) throws IOException {
            if (name.type() == BlobType.SNAPSHOT) {
              held.set(Map.entry(name, data.clone()));
              throw new IOException("killed while the snapshot was uploaded");
            }
            delegate.save(name, data);
          }
        };
    try (Repository r = open(withheld)) {
      assertThatThrownBy(() -> backup(r, "vda", imageB, "h"))
          .isInstanceOf(RepositoryException.class);
    }
    assertThat(held.get()).as("the backup got as far as its snapshot").isNotNull();
    return held.get();
  }

  @Test
  void recentUnusedDataIsSparedAndFreedOnceOlderThanTheMargin() throws Exception {
    try (Repository r = open(new LocalBlobStore(dir))) {
      Manifest b = backup(r, "vda", imageB, "h").manifest();
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      assertThat(r.forgetSnapshots(List.of(b.id()), false)).hasSize(1);
    }
    Map<String, String> before = listing(dir.resolve("data"));
    // A's snapshot and B's fixed index are old (B's index keeps nothing); the packs are all new.
    age(dir.resolve("snapshots"), Duration.ofHours(3));
    age(dir.resolve("fixed"), Duration.ofHours(3));
    Pruner.Report spared;
    try (Repository r = open(new LocalBlobStore(dir))) {
      spared = prune(r, HOUR);
      assertValid(r, Map.of(a.id(), TestImages.sha256(dataA)), tmp);
    }
    assertThat(spared.packsDeleted() + spared.packsRepacked()).isZero();
    assertThat(spared.packsSpared()).isPositive();
    assertThat(spared.bytesSpared()).isPositive();
    assertThat(spared.fixedIndexesDeleted()).isEqualTo(1);
    assertThat(spared.itemIndexesSpared()).isZero();
    assertThat(listing(dir.resolve("data"))).as("no pack touched").isEqualTo(before);

    age(dir, Duration.ofHours(2));
    Pruner.Report freed;
    try (Repository r = open(new LocalBlobStore(dir))) {
      freed = prune(r, HOUR);
      assertValid(r, Map.of(a.id(), TestImages.sha256(dataA)), tmp);
    }
    assertThat(freed.packsSpared()).isZero();
    assertThat(freed.itemIndexesSpared()).isZero();
    assertThat(freed.packsDeleted()).isPositive();
    assertThat(freed.bytesFreed()).isPositive();
  }

  @Test
  void aSnapshotLandingAfterPruneRestoresBecauseItsDataWasSpared() throws Exception {
    Path control = tmp.resolve("control");
    copyTree(dir, control);
    var late = backupWhoseSnapshotLandsLate();
    try (Repository r = open(new LocalBlobStore(dir))) {
      Pruner.Report rep = prune(r, HOUR);
      assertThat(rep.packsDeleted() + rep.packsRepacked()).isZero();
      assertThat(rep.itemIndexesSpared()).isEqualTo(1);
    }
    new LocalBlobStore(dir).save(late.getKey(), late.getValue()); // the upload lands
    try (Repository r = open(new LocalBlobStore(dir))) {
      String b = r.snapshots().stream().filter(m -> !m.id().equals(a.id())).findFirst().get().id();
      assertValid(r, Map.of(a.id(), TestImages.sha256(dataA), b, TestImages.sha256(dataB)), tmp);
    }

    // Without the margin the same sequence damages the snapshot: what the margin is for.
    dir = control;
    late = backupWhoseSnapshotLandsLate();
    try (Repository r = open(new LocalBlobStore(dir))) {
      assertThat(prune(r, Duration.ZERO).fixedIndexesDeleted()).isEqualTo(1);
    }
    new LocalBlobStore(dir).save(late.getKey(), late.getValue());
    try (Repository r = open(new LocalBlobStore(dir))) {
      assertThat(r.verify(false, VerifyListener.NONE).ok()).isFalse();
    }
  }

  /**
   * A long backup: its packs are older than the margin, only its fixed index (written at the end)
   * is recent. And a backup that deduplicated against a snapshot forgotten before prune: it wrote
   * no pack at all. The recent fixed index no snapshot names keeps every chunk it uses.
   */
  @Test
  void chunksARecentUnnamedFixedIndexUsesStayWhateverPackHoldsThem() throws Exception {
    var late = backupWhoseSnapshotLandsLate();
    Path fixed = dir.resolve("fixed");
    age(dir, Duration.ofHours(3));
    String bFixed = fixedIndexOf(late);
    Files.setLastModifiedTime(fixed.resolve(bFixed), FileTime.from(Instant.now()));
    try (Repository r = open(new LocalBlobStore(dir))) {
      Pruner.Report rep = prune(r, HOUR);
      assertThat(rep.itemIndexesSpared()).isEqualTo(1);
      assertThat(rep.packsDeleted()).as("B's old packs are kept").isZero();
    }
    new LocalBlobStore(dir).save(late.getKey(), late.getValue());
    String b;
    try (Repository r = open(new LocalBlobStore(dir))) {
      b = r.snapshots().stream().filter(m -> !m.id().equals(a.id())).findFirst().get().id();
      assertValid(r, Map.of(a.id(), TestImages.sha256(dataA), b, TestImages.sha256(dataB)), tmp);
    }

    // Now B is the only snapshot using its chunks; back A up again with its snapshot held back
    // (it reuses every chunk of A), forget A, and prune with every blob old but the new index.
    try (Repository r = open(new LocalBlobStore(dir))) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(a.id()), false);
    }
    imageB = imageA; // the held-back backup reads A's data
    var again = backupWhoseSnapshotLandsLate();
    age(dir, Duration.ofHours(3));
    Files.setLastModifiedTime(fixed.resolve(fixedIndexOf(again)), FileTime.from(Instant.now()));
    try (Repository r = open(new LocalBlobStore(dir))) {
      prune(r, HOUR);
    }
    new LocalBlobStore(dir).save(again.getKey(), again.getValue());
    try (Repository r = open(new LocalBlobStore(dir))) {
      String a2 = r.snapshots().stream().filter(m -> !m.id().equals(b)).findFirst().get().id();
      assertValid(r, Map.of(b, TestImages.sha256(dataB), a2, TestImages.sha256(dataA)), tmp);
    }
  }

  /** The fixed index a held-back manifest blob (unencrypted) names for its disk. */
  static String fixedIndexOf(Map.Entry<BlobName, byte[]> manifest) {
    return io.granule.engine.internal.repo.snapshot.ManifestReader.read(
            manifest.getKey(), manifest.getValue())
        .disks()
        .get(0)
        .fixedIndex();
  }

  @Test
  void aSnapshotSavedWhilePruneRunsStopsItBeforeItDeletesAnything() throws Exception {
    var late = backupWhoseSnapshotLandsLate();
    AtomicBoolean armed = new AtomicBoolean();
    BlobStore landing =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public List<BlobInfo> listInfo(BlobType type) throws IOException {
            if (type == BlobType.PACK && armed.getAndSet(false)) {
              delegate.save(late.getKey(), late.getValue()); // lands after prune's mark
            }
            return delegate.listInfo(type);
          }
        };
    Map<String, String> before = listing(dir.resolve("data"));
    try (Repository r = open(landing)) {
      r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
      armed.set(true);
      assertThatThrownBy(
              () -> r.prune(new Pruner.Options(false, 1.0, Duration.ZERO), (p, d, t) -> {}))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining(late.getKey().name())
          .hasMessageContaining("prune stopped before deleting anything");
    }
    assertThat(armed).as("the snapshot landed mid-prune").isFalse();
    Map<String, String> after = listing(dir.resolve("data"));
    assertThat(after.keySet()).as("no pack deleted").containsAll(before.keySet());
    try (Repository r = open(new LocalBlobStore(dir))) {
      String b = r.snapshots().stream().filter(m -> !m.id().equals(a.id())).findFirst().get().id();
      assertValid(r, Map.of(a.id(), TestImages.sha256(dataA), b, TestImages.sha256(dataB)), tmp);
    }
  }

  /**
   * A prune that did not see a running backup's lock (a store whose listings leave blobs out)
   * deleted the packs it reused, and the backup saved a snapshot that did not restore, exit 0. A
   * backup now checks, before it saves its snapshot, that every pack holding its chunks is there.
   */
  @Test
  void aBackupWhosePacksWereDeletedWhileItRanSavesNoSnapshot() throws Exception {
    List<Path> packs;
    try (Stream<Path> s = Files.walk(dir.resolve("data"))) {
      packs = s.filter(Files::isRegularFile).toList();
    }
    assertThat(packs).isNotEmpty();
    io.granule.engine.internal.repo.backup.BackupRequest.AfterDisks prunedMeanwhile =
        () -> {
          for (Path p : packs) {
            try {
              Files.delete(p);
            } catch (IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          }
          return new io.granule.engine.internal.repo.backup.BackupRequest.Extras(
              List.of(), Map.of());
        };
    try (Repository r = open(new LocalBlobStore(dir));
        io.granule.engine.internal.image.RawDiskImage d =
            io.granule.engine.internal.image.RawDiskImage.open(imageA)) {
      int before = r.snapshots().size();
      // the same data as snapshot a: every chunk is reused from the packs deleted meanwhile
      assertThatThrownBy(
              () ->
                  r.backup(
                      new io.granule.engine.internal.repo.backup.BackupRequest(
                          List.of(
                              new io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk(
                                  "vda", d)),
                          List.of(),
                          "h",
                          List.of(),
                          null,
                          prunedMeanwhile),
                      io.granule.engine.internal.repo.backup.BackupListener.NONE))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("were deleted while it ran")
          .hasMessageContaining("no snapshot was saved");
      assertThat(r.snapshots()).hasSize(before);
    }
  }

  /**
   * The packs are deleted in the moment between the backup's check and its snapshot's save (a prune
   * that missed its lock): the check after the save finds them gone and removes the snapshot again,
   * exit code 9.
   */
  @Test
  void aBackupWhosePacksWereDeletedAsItSavedItsSnapshotRemovesIt() throws Exception {
    BlobStore deleting =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public void save(BlobName name, byte[] data) throws IOException {
            if (name.type() == BlobType.SNAPSHOT) {
              for (BlobName pack : delegate.list(BlobType.PACK)) {
                delegate.delete(pack);
              }
            }
            delegate.save(name, data);
          }
        };
    try (Repository r = open(deleting)) {
      int before = r.snapshots().size();
      assertThatThrownBy(() -> backup(r, "vda", imageA, "h"))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("were deleted as it saved its snapshot")
          .hasMessageContaining("the snapshot was removed again");
      assertThat(r.snapshots()).hasSize(before);
    }
  }

  /**
   * A snapshot lands while prune deletes (after its check before the deletes): prune says so and
   * exits 9 instead of reporting success over a snapshot that may not restore.
   */
  @Test
  void aSnapshotSavedWhilePruneDeletesIsReported() throws Exception {
    var late = backupWhoseSnapshotLandsLate();
    try (Repository r = open(new LocalBlobStore(dir))) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(a.id()), false); // a's packs become garbage: prune deletes them
    }
    AtomicBoolean armed = new AtomicBoolean(true);
    BlobStore landing =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public void delete(BlobName name) throws IOException {
            delegate.delete(name);
            if (name.type() == BlobType.PACK && armed.getAndSet(false)) {
              delegate.save(late.getKey(), late.getValue()); // lands after the first delete
            }
          }
        };
    try (Repository r = open(landing)) {
      r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
      assertThatThrownBy(
              () -> r.prune(new Pruner.Options(false, 1.0, Duration.ZERO), (p, d, t) -> {}))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("prune finished, but snapshot(s) " + late.getKey().name())
          .hasMessageContaining("granule verify");
    }
    assertThat(armed).as("the snapshot landed mid-delete").isFalse();
  }
}
