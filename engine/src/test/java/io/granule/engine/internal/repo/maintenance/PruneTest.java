package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.assertValid;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.backup;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.copyTree;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.indexedPacksExist;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.listing;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.live;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.packed;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryStats;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prune on real local repositories: it removes exactly what no snapshot uses, repacks by threshold,
 * changes nothing on a dry run, survives a crash at every save and delete, and a repository opened
 * before a prune does not deduplicate against what the prune removed.
 */
class PruneTest {
  static final RepositoryConfig SMALL =
      RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10);

  @TempDir Path tmp;
  Path base;
  byte[] dataA;
  byte[] dataB;
  byte[] dataC;
  Path imageA;
  Path imageB;
  Path imageC;
  Manifest a;
  Manifest b;
  Manifest c;

  @BeforeEach
  void history() throws Exception {
    dataA = TestImages.mixed(3 << 20, 11);
    dataB = dataA.clone();
    TestImages.modify(dataB, 30, 16, 12);
    dataC = TestImages.mixed(2 << 20, 13);
    imageA = TestImages.write(tmp.resolve("a.raw"), dataA);
    imageB = TestImages.write(tmp.resolve("b.raw"), dataB);
    imageC = TestImages.write(tmp.resolve("c.raw"), dataC);
    base = tmp.resolve("base");
    try (Repository r = Repository.init(base, SMALL)) {
      a = backup(r, "vda", imageA, "h").manifest();
      b = backup(r, "vda", imageB, "h").manifest();
      c = backup(r, "vda", imageC, "h").manifest();
    }
  }

  Path copy(String name) throws Exception {
    Path dir = tmp.resolve(name);
    copyTree(base, dir);
    return dir;
  }

  Repository open(Path dir) {
    return Repository.open(new LocalBlobStore(dir), Clock.systemUTC(), tmp.resolve("cache"));
  }

  static Pruner.Report prune(Repository r, double repackBelow, boolean dryRun) {
    r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    return r.prune(
        new Pruner.Options(dryRun, repackBelow, java.time.Duration.ZERO),
        (phase, done, total) -> {});
  }

  Map<String, String> expected(Manifest... snaps) throws Exception {
    Map<String, String> m = new HashMap<>();
    for (Manifest s : snaps) {
      byte[] d = s.id().equals(a.id()) ? dataA : s.id().equals(b.id()) ? dataB : dataC;
      m.put(s.id(), TestImages.sha256(d));
    }
    return m;
  }

  @Test
  void pruneRemovesExactlyWhatNoSnapshotUses() throws Exception {
    Path dir = copy("exact");
    RepositoryStats before;
    Pruner.Report rep;
    try (Repository r = open(dir)) {
      before = r.stats();
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      assertThat(r.forgetSnapshots(List.of(a.id().substring(0, 10), c.id()), false)).hasSize(2);
    }
    Set<ChunkId> liveB = live(dir);
    assertThat(packed(dir).keySet()).as("garbage before").hasSizeGreaterThan(liveB.size());
    try (Repository r = open(dir)) {
      rep = prune(r, 1.0, false);
      RepositoryStats after = r.stats();
      assertThat(after.packs()).isLessThan(before.packs());
      assertThat(after.storedBytes()).isLessThan(before.storedBytes());
      assertThat(before.storedBytes() - after.storedBytes()).isEqualTo(rep.bytesFreed());
      assertThat(after.chunks()).as("chunk index after reload").isEqualTo(liveB.size());
      assertValid(r, expected(b), tmp);
    }
    assertThat(rep.snapshots()).isEqualTo(1);
    assertThat(rep.liveChunks()).isEqualTo(liveB.size());
    assertThat(rep.packsDeleted() + rep.packsRepacked()).isPositive();
    assertThat(rep.fixedIndexesDeleted()).isEqualTo(2);
    Map<ChunkId, Integer> packed = packed(dir);
    assertThat(packed.keySet()).as("exactly the live chunks").isEqualTo(liveB);
    assertThat(packed.values()).as("each once").containsOnly(1);
    assertThat(indexedPacksExist(dir)).hasSize(new LocalBlobStore(dir).list(BlobType.PACK).size());
    assertThat(new LocalBlobStore(dir).list(BlobType.FIXED_INDEX))
        .containsExactly(new BlobName(BlobType.FIXED_INDEX, b.disks().get(0).fixedIndex()));

    try (Repository r = open(dir)) {
      Pruner.Report again = prune(r, 1.0, false);
      assertThat(again.packsDeleted() + again.packsRepacked() + again.indexesDeleted()).isZero();
      assertThat(again.bytesFreed()).isZero();
      // A new backup after prune works and dedups against what stayed.
      BackupResult more = backup(r, "vda", imageB, "h");
      assertThat(more.progress().bytesNew()).isZero();
    }
  }

  @Test
  void repackThresholdDecidesWhichPartlyLivePacksAreRewritten() throws Exception {
    Path dir = copy("threshold");
    try (Repository r = open(dir)) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(a.id()), false);
    }
    Set<ChunkId> liveBC = live(dir);
    Pruner.Report none;
    try (Repository r = open(dir)) {
      none = prune(r, 0.0, false);
      assertThat(none.packsRepacked()).isZero();
      assertValid(r, expected(b, c), tmp);
    }
    Map<ChunkId, Integer> afterNone = packed(dir);
    assertThat(afterNone.keySet()).containsAll(liveBC);
    assertThat(afterNone.keySet().size())
        .as("packs with some live data keep their garbage at threshold 0")
        .isGreaterThan(liveBC.size());

    Pruner.Report half;
    try (Repository r = open(dir)) {
      half = prune(r, 0.5, true);
    }
    Pruner.Report all;
    try (Repository r = open(dir)) {
      all = prune(r, 1.0, false);
      assertValid(r, expected(b, c), tmp);
    }
    assertThat(all.packsDeleted()).isZero();
    assertThat(all.packsRepacked()).isPositive().isGreaterThanOrEqualTo(half.packsRepacked());
    assertThat(all.packsKept() + all.packsRepacked()).isEqualTo(all.packs());
    assertThat(packed(dir).keySet()).isEqualTo(liveBC);
  }

  /**
   * Temporary files a writer killed mid-save left (up to a pack each) are deleted by the next prune
   * once a minute old; younger ones, and the lock directory, are left alone. They were never freed.
   */
  @Test
  void pruneDeletesTemporaryFilesKilledWritersLeft() throws Exception {
    Path dir = copy("leftovers");
    java.nio.file.attribute.FileTime old =
        java.nio.file.attribute.FileTime.from(java.time.Instant.now().minusSeconds(600));
    List<Path> stale = new java.util.ArrayList<>();
    try (var packDirs = java.nio.file.Files.list(dir.resolve("data"))) {
      Path fan = packDirs.findFirst().orElseThrow();
      stale.add(java.nio.file.Files.write(fan.resolve(".tmp-abcd-1"), new byte[300_000]));
    }
    stale.add(java.nio.file.Files.write(dir.resolve("index/.tmp-ef01-2"), new byte[1000]));
    stale.add(java.nio.file.Files.write(dir.resolve("snapshots/.tmp-ef02-3"), new byte[10]));
    for (Path p : stale) {
      java.nio.file.Files.setLastModifiedTime(p, old);
    }
    Path young = java.nio.file.Files.write(dir.resolve("index/.tmp-young-4"), new byte[5]);
    java.nio.file.Files.createDirectories(dir.resolve("locks"));
    Path lockTmp = java.nio.file.Files.write(dir.resolve("locks/.tmp-lock-5"), new byte[5]);
    java.nio.file.Files.setLastModifiedTime(lockTmp, old);
    Map<String, String> before = listing(dir);

    Pruner.Report dry;
    try (Repository r = open(dir)) {
      dry = prune(r, 0.5, true);
    }
    assertThat(listing(dir)).isEqualTo(before);
    assertThat(dry.leftoverBytesDeleted()).isZero();
    Pruner.Report real;
    try (Repository r = open(dir)) {
      real = prune(r, 0.5, false);
    }
    assertThat(real.leftoverBytesDeleted()).isEqualTo(301_010);
    assertThat(stale).allSatisfy(p -> assertThat(p).doesNotExist());
    assertThat(young).exists();
    assertThat(lockTmp).exists();
    try (Repository r = open(dir)) {
      assertValid(r, expected(a, b, c), tmp);
    }
  }

  @Test
  void dryRunChangesNothingAndPredictsTheRealRun() throws Exception {
    Path dir = copy("dry");
    try (Repository r = open(dir)) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(a.id()), false);
    }
    Map<String, String> before = listing(dir);
    Pruner.Report dry;
    try (Repository r = open(dir)) {
      dry = prune(r, 0.5, true);
    }
    assertThat(listing(dir)).isEqualTo(before);
    assertThat(dry.dryRun()).isTrue();
    assertThat(dry.packsDeleted() + dry.packsRepacked()).isPositive();
    Pruner.Report real;
    try (Repository r = open(dir)) {
      real = prune(r, 0.5, false);
    }
    assertThat(real.packsDeleted()).isEqualTo(dry.packsDeleted());
    assertThat(real.packsRepacked()).isEqualTo(dry.packsRepacked());
    assertThat(real.bytesDeleted()).isEqualTo(dry.bytesDeleted());
    assertThat(real.indexesDeleted()).isEqualTo(dry.indexesDeleted());
    assertThat(real.fixedIndexesDeleted()).isEqualTo(dry.fixedIndexesDeleted()).isEqualTo(1);
  }

  @Test
  void crashAtEveryDeleteOrSaveLeavesAValidRepositoryThatASecondPruneFinishes() throws Exception {
    Path ref = copy("reference");
    try (Repository r = open(ref)) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(a.id()), false);
    }
    Set<ChunkId> liveBC = live(ref);
    int crashes = 0;
    for (boolean deletes : new boolean[] {true, false}) {
      for (int k = 1; ; k++) {
        Path dir = tmp.resolve((deletes ? "del" : "save") + k);
        copyTree(ref, dir);
        CrashingBlobStore crashing =
            new CrashingBlobStore(new LocalBlobStore(dir), deletes ? k : 0, deletes ? 0 : k);
        try (Repository r = Repository.open(crashing, Clock.systemUTC(), tmp.resolve("cache"))) {
          prune(r, 1.0, false);
          assertThat(crashing.fired()).isFalse();
          break;
        } catch (RepositoryException e) {
          assertThat(crashing.fired()).as("fault %d: %s", k, e).isTrue();
          assertThat(e)
              .hasMessageContaining("injected fault")
              .hasMessageContaining("run prune again");
          crashes++;
        }
        try (Repository r = open(dir)) {
          assertValid(r, expected(b, c), tmp);
          indexedPacksExist(dir);
          Pruner.Report second = prune(r, 1.0, false);
          assertThat(second.snapshots()).isEqualTo(2);
          assertValid(r, expected(b, c), tmp);
        }
        assertThat(packed(dir).keySet()).as("fault %d", k).isEqualTo(liveBC);
        assertThat(packed(dir).values()).containsOnly(1);
      }
    }
    assertThat(crashes).as("faults injected").isGreaterThan(6);
  }

  @Test
  void repositoryOpenedBeforeAPruneDoesNotDedupAgainstRemovedChunks() throws Exception {
    Path dir = copy("stale-index");
    try (Repository early = open(dir)) {
      // Loaded A's chunks into its chunk index; now another process forgets A and prunes.
      try (Repository other = open(dir)) {
        other.lock(LockKind.SHARED, "forget", Duration.ZERO);
        other.forgetSnapshots(List.of(a.id(), b.id()), false);
      }
      try (Repository other = open(dir)) {
        prune(other, 1.0, false);
      }
      early.lock(LockKind.SHARED, "backup", Duration.ZERO);
      BackupResult again = backup(early, "vda", imageA, "h");
      assertThat(again.progress().bytesNew())
          .as("A's chunks were pruned: stored again")
          .isPositive();
      Map<String, String> exp = expected(c);
      exp.put(again.manifest().id(), TestImages.sha256(dataA));
      assertValid(early, exp, tmp);
    }
  }

  @Test
  void encryptedRepositoryIsRepackedUnderNewPackNames() throws Exception {
    Path dir = tmp.resolve("enc");
    char[] pw = "secret".toCharArray();
    Manifest ea;
    Manifest eb;
    try (Repository r = Repository.init(dir, SMALL, pw.clone())) {
      ea = backup(r, "vda", imageA, "h").manifest();
      eb = backup(r, "vda", imageB, "h").manifest();
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(ea.id()), false);
    }
    try (Repository r = Repository.open(dir, () -> pw.clone())) {
      Pruner.Report rep = prune(r, 1.0, false);
      assertThat(rep.packsRepacked()).isPositive();
      assertValid(r, Map.of(eb.id(), TestImages.sha256(dataB)), tmp);
    }
  }

  @Test
  void pruneNeedsTheExclusiveLockAndStopsOnDamageWithoutChangingAnything() throws Exception {
    Path dir = copy("damage");
    try (Repository r = open(dir)) {
      assertThatThrownBy(
              () ->
                  r.prune(new Pruner.Options(true, 0.5, java.time.Duration.ZERO), (p, d, t) -> {}))
          .isInstanceOf(IllegalStateException.class);
      r.lock(LockKind.SHARED, "verify", Duration.ZERO);
      assertThatThrownBy(
              () ->
                  r.prune(new Pruner.Options(true, 0.5, java.time.Duration.ZERO), (p, d, t) -> {}))
          .isInstanceOf(IllegalStateException.class);
    }
    Files.delete(
        new LocalBlobStore(dir)
            .path(new BlobName(BlobType.FIXED_INDEX, b.disks().get(0).fixedIndex())));
    Map<String, String> before = listing(dir);
    try (Repository r = open(dir)) {
      assertThatThrownBy(() -> prune(r, 1.0, false))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("fixed index of snapshot " + b.id())
          .hasMessageContaining("is missing: prune stopped without changing anything");
    }
    assertThat(listing(dir)).isEqualTo(before);
  }

  @Test
  void indexThatDisagreesWithAPackStopsPruneBeforeAnyDelete() throws Exception {
    Path dir = copy("disagree");
    try (Repository r = open(dir)) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(a.id()), false);
    }
    LocalBlobStore s = new LocalBlobStore(dir);
    // Shift the offsets of every entry of one index blob: the index now misplaces live chunks.
    BlobName idx = null;
    try (Repository r = open(dir)) {
      Pruner.Report dry = prune(r, 1.0, true);
      assertThat(dry.packsRepacked()).isPositive();
    }
    // The index blob of A's backup (A's packs, partly live through B, are repacked).
    for (BlobName n : s.list(BlobType.INDEX)) {
      if (idx == null || s.stat(n).orElseThrow().size() > s.stat(idx).orElseThrow().size()) {
        idx = n;
      }
    }
    List<io.granule.engine.internal.repo.index.IndexEntry> shifted = new java.util.ArrayList<>();
    for (var e : io.granule.engine.internal.repo.index.IndexReader.read(idx, s.load(idx))) {
      var l = e.location();
      shifted.add(
          new io.granule.engine.internal.repo.index.IndexEntry(
              e.id(),
              new io.granule.engine.internal.repo.index.ChunkLocation(
                  l.pack(), l.offset() + 1, l.storedLength(), l.rawLength(), l.flags())));
    }
    s.save(idx, io.granule.engine.internal.repo.index.IndexWriter.write(shifted));
    Map<String, String> before = listing(dir);
    try (Repository r = open(dir)) {
      assertThatThrownBy(() -> prune(r, 1.0, false))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("live chunks the index places in it")
          .hasMessageContaining("prune stopped before deleting anything");
    }
    Map<String, String> after = listing(dir);
    assertThat(after.keySet()).as("only additions").containsAll(before.keySet());
    before.forEach((k, v) -> assertThat(after.get(k)).as(k).isEqualTo(v));
  }

  @Test
  void forgetRemovesManifestsByPolicy() throws Exception {
    Path dir = copy("forget");
    try (Repository r = open(dir)) {
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      assertThatThrownBy(
              () ->
                  r.forget(
                      new ForgetPolicy(0, 0, 0, 0, 0, 0),
                      io.granule.engine.internal.repo.snapshot.SnapshotFilter.ANY,
                      java.time.ZoneOffset.UTC,
                      false))
          .isInstanceOf(IllegalArgumentException.class);
      var dry =
          r.forget(
              new ForgetPolicy(1, 0, 0, 0, 0, 0),
              io.granule.engine.internal.repo.snapshot.SnapshotFilter.ANY,
              java.time.ZoneOffset.UTC,
              true);
      assertThat(dry.get(0).decisions())
          .extracting(ForgetPolicy.Decision::keep)
          .containsExactly(true, false, false);
      assertThat(r.snapshots()).hasSize(3);
      r.forget(
          new ForgetPolicy(1, 0, 0, 0, 0, 0),
          io.granule.engine.internal.repo.snapshot.SnapshotFilter.ANY,
          java.time.ZoneOffset.UTC,
          false);
      assertThat(r.snapshots()).extracting(Manifest::id).containsExactly(c.id());
    }
  }

  /**
   * An index blob of a newer format (a newer granule shares the repository): prune deleted it as
   * damaged, losing what that version added. It now refuses, deleting nothing.
   */
  @Test
  void anIndexBlobOfANewerFormatStopsPruneBeforeAnythingIsDeleted() throws Exception {
    Path dir = copy("newer");
    Path index;
    try (var files = java.nio.file.Files.walk(dir.resolve("index"))) {
      index = files.filter(java.nio.file.Files::isRegularFile).findFirst().orElseThrow();
    }
    byte[] framed = java.nio.file.Files.readAllBytes(index);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(framed);
    io.granule.engine.internal.repo.BlobFrames.Framed f =
        io.granule.engine.internal.repo.BlobFrames.unframe(
            null, framed, b.getInt(0), Integer.MAX_VALUE);
    byte[] payload = new byte[f.payload().remaining()];
    f.payload().get(payload);
    java.nio.file.Files.write(
        index, io.granule.engine.internal.repo.BlobFrames.frame(b.getInt(0), 99, payload));
    long files;
    try (var all = java.nio.file.Files.walk(dir)) {
      files = all.count();
    }
    try (Repository r = Repository.open(dir)) {
      org.assertj.core.api.Assertions.assertThatThrownBy(() -> prune(r, 1.0, false))
          .isInstanceOf(io.granule.engine.internal.repo.UnsupportedRepositoryVersionException.class)
          .hasMessageContaining("nothing deleted")
          .hasMessageContaining("upgrade granule");
    }
    assertThat(index).exists();
    try (var all = java.nio.file.Files.walk(dir)) {
      assertThat(all.filter(p -> !p.toString().contains("locks")).count())
          .isLessThanOrEqualTo(files);
    }
  }
}
