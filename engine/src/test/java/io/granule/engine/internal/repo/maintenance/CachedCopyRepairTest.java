package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.copyTree;
import static io.granule.engine.internal.repo.maintenance.RepairTest.damage;
import static io.granule.engine.internal.repo.maintenance.RepairTest.largestPack;
import static io.granule.engine.internal.repo.maintenance.RepairTest.listingWithoutLocks;
import static io.granule.engine.internal.repo.maintenance.RepairTest.repair;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.cli.Cli;
import io.granule.engine.internal.cli.ExitCodes;
import io.granule.engine.internal.cli.RepairCommand;
import io.granule.engine.internal.repo.PasswordSource;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.backup.Damage;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.lock.LockKind;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Repair on the host whose metadata cache holds the last intact copy of metadata the storage has
 * damaged or lost (audit Z-M1): it puts that copy back first, reads it back from the storage, and
 * then repairs with it. Without it, prune on that host (reading the copy) never replaced the blob,
 * repair left it for prune, and a cut pack whose records only that blob located was lost to every
 * other host.
 */
class CachedCopyRepairTest {
  @TempDir Path tmp;
  RepairTest h;

  /** Three snapshots as {@link RepairTest#history} makes them, in {@code tmp}. */
  private Path history(boolean encrypted) throws Exception {
    h = new RepairTest();
    h.tmp = tmp;
    return h.history(encrypted);
  }

  private static PasswordSource password(boolean encrypted) {
    return encrypted ? () -> RepairTest.PASSWORD.clone() : PasswordSource.NONE;
  }

  /** {@code dir} opened on a host whose metadata cache is {@code host} (a directory). */
  private Repository onHost(BlobStore store, Path host, boolean encrypted) {
    return Repository.open(
        store, Clock.systemUTC(), host.resolve("cache"), password(encrypted), host.resolve("meta"));
  }

  /** Restores every snapshot on a host whose cache is {@code host}: their metadata is cached. */
  private void warm(Path dir, Path host, boolean encrypted) throws Exception {
    try (Repository r = onHost(new LocalBlobStore(dir), host, encrypted)) {
      h.restores(r, h.expected());
    }
  }

  /** A repository of three snapshots in {@code tmp/repo}, restored on the host {@code tmp/host}. */
  private Path warmed(boolean encrypted) throws Exception {
    Path dir = tmp.resolve("repo");
    copyTree(history(encrypted), dir);
    warm(dir, tmp.resolve("host"), encrypted);
    return dir;
  }

  /** On a host with no cache, {@code dir} verifies clean and every snapshot restores. */
  private void wholeOnAnotherHost(Path dir, boolean encrypted, boolean readData) throws Exception {
    try (Repository r = onHost(new LocalBlobStore(dir), tmp.resolve("other-host"), encrypted)) {
      assertThat(r.verify(readData, VerifyListener.NONE).damages()).isEmpty();
      h.restores(r, h.expected());
    }
  }

  private static List<Path> files(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).sorted().toList();
    }
  }

  private static void flip(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    bytes[bytes.length / 2] ^= 0x40;
    Files.write(file, bytes);
  }

  /**
   * The case of audit Z-M1 (and Y-H1): the largest pack's trailer cut and every index blob damaged
   * in the storage; only this host's cache locates the pack's records. The dry run says what it
   * would put back and changes nothing; the repair puts the blobs back, salvages every record, and
   * every snapshot restores on a host with no cache.
   */
  @ParameterizedTest(name = "encrypted={0}")
  @ValueSource(booleans = {false, true})
  void repairPutsBackTheIndexBlobsOnlyThisHostsCacheHoldsIntact(boolean encrypted)
      throws Exception {
    Path dir = warmed(encrypted);
    Path host = tmp.resolve("host");
    damage(dir, "trailer");
    Path pack = largestPack(dir);
    List<Path> blobs = files(dir.resolve("index"));
    for (Path b : blobs) {
      flip(b);
    }
    Map<String, String> before = listingWithoutLocks(dir);
    try (Repository r = onHost(new LocalBlobStore(dir), host, encrypted)) {
      VerifyReport v = r.verify(false, VerifyListener.NONE);
      for (Path b : blobs) {
        String name = "index/" + b.getFileName();
        Damage d = v.damages().stream().filter(x -> x.file().equals(name)).findFirst().get();
        assertThat(d.problems().get(d.problems().size() - 1))
            .startsWith("this host's cache holds a copy of it that reads whole")
            .contains("run 'granule repair' on this host to put it back");
      }
      r.lock(LockKind.SHARED, RepairCommand.DRY_RUN, Duration.ZERO);
      Repository.RepairResult dry = r.repair(true, (phase, done, total) -> {});
      assertThat(dry.putBack()).hasSize(blobs.size());
      assertThat(dry.repair().chunksLost()).as("dry run: every record located").isZero();
      assertThat(dry.repair().damaged()).hasSize(1);
      assertThat(dry.otherDamage()).isEmpty();
      assertThat(RepairCommand.damaged(dry)).as("a dry run that finds damage: exit 5").isTrue();
    }
    assertThat(listingWithoutLocks(dir)).as("the dry run changed nothing").isEqualTo(before);
    try (Repository r = onHost(new LocalBlobStore(dir), host, encrypted)) {
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack())
          .containsExactlyInAnyOrderElementsOf(
              blobs.stream().map(b -> "index/" + b.getFileName()).toList());
      assertThat(res.repair().chunksLost()).isZero();
      assertThat(res.repair().damaged()).hasSize(1);
      assertThat(res.otherDamage()).isEmpty();
      assertThat(RepairCommand.damaged(res)).isFalse();
    }
    assertThat(pack).as("the cut pack, salvaged, is deleted").doesNotExist();
    Path other = tmp.resolve("other-host");
    try (Repository r = onHost(new LocalBlobStore(dir), other, encrypted)) {
      assertThat(r.verify(true, VerifyListener.NONE).damages()).isEmpty();
      h.restores(r, h.expected());
    }
  }

  /**
   * audit BB-M1: an index blob lost by the storage, and the trailer of a pack it lists cut: only
   * this host's copy of the blob locates that pack's records. The listing of the next command (a
   * restore) deleted that copy, and the records were lost for good. The copy is kept aside, verify
   * names it beside the pack, and repair puts it back and salvages the pack.
   */
  @Test
  void aLostIndexBlobsCopyThisHostKeptLocatesACutPacksRecords() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    Path pack = largestPack(dir);
    String packName = pack.getFileName().toString();
    BlobName lost = RepairTest.listingBlobs(dir, packName).iterator().next();
    Files.delete(dir.resolve(lost.toString()));
    damage(dir, "trailer");
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      try {
        h.restores(r, h.expected()); // as the advice said: lists index/ through the cache
      } catch (Exception | AssertionError expected) {
        // a snapshot using the pack's chunks fails
      }
    }
    Path kept;
    try (Stream<Path> s = Files.walk(host)) {
      kept =
          s.filter(
                  p ->
                      p.getFileName().toString().equals(lost.name())
                          && p.getParent().getFileName().toString().equals("gone-index"))
              .findFirst()
              .orElseThrow(() -> new AssertionError("no copy of " + lost + " kept"));
    }
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      VerifyReport v = r.verify(false, VerifyListener.NONE);
      Damage d =
          v.damages().stream()
              .filter(x -> x.file().equals("data/" + packName))
              .findFirst()
              .orElseThrow();
      assertThat(d.problems()).anyMatch(p -> p.contains(kept.toString()));
      r.lock(LockKind.SHARED, RepairCommand.DRY_RUN, Duration.ZERO);
      Repository.RepairResult dry = r.repair(true, (phase, done, total) -> {});
      assertThat(dry.putBack()).isEmpty();
      assertThat(dry.keptIndexed()).singleElement().asString().contains(lost.toString());
      assertThat(dry.repair().chunksLost()).isZero();
      assertThat(RepairCommand.damaged(dry)).isTrue();
    }
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack()).isEmpty();
      assertThat(res.keptIndexed()).singleElement().asString().contains(lost.toString());
      assertThat(res.repair().chunksLost()).isZero();
      assertThat(RepairCommand.damaged(res)).isFalse();
    }
    assertThat(dir.resolve(lost.toString())).as("never put back itself").doesNotExist();
    wholeOnAnotherHost(dir, false, true);
  }

  /**
   * audit CC-H1: a kept copy of an index blob that a repair elsewhere replaced (its damaged pack's
   * file still there) was put back whole, and listed again the record that repair took out for not
   * reading: a backup deduplicated against it and saved a snapshot that did not restore. Only the
   * records such a copy locates that read are indexed.
   */
  @Test
  void aKeptCopyIndexesOnlyTheRecordsThatRead() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    Path pack = largestPack(dir);
    String packName = pack.getFileName().toString();
    BlobName replaced = RepairTest.listingBlobs(dir, packName).iterator().next();
    var bad = RepairTest.damageRecord(dir, pack, 1);
    // a repair elsewhere: its delete of the damaged pack fails, the index blob is replaced
    BlobStore keepsPack =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public void delete(BlobName n) throws IOException {
            if (n.type() == BlobType.PACK) {
              throw new IOException("refused");
            }
            super.delete(n);
          }
        };
    try (Repository r = onHost(keepsPack, tmp.resolve("elsewhere"), false)) {
      try {
        repair(r, false);
      } catch (RuntimeException stopped) {
        // the pack could not be deleted
      }
    }
    assertThat(dir.resolve(replaced.toString())).doesNotExist();
    assertThat(pack).exists();
    damage(dir, "trailer"); // and its trailer cut: only the kept copy locates its records
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      try {
        h.restores(r, h.expected()); // lists index/ through the cache: the copy is kept aside
      } catch (Exception | AssertionError lost) {
        // a snapshot using the lost chunk
      }
    }
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      repair(r, false);
    }
    for (var e : RepairTest.indexBlobs(dir).entrySet()) {
      for (var entry :
          io.granule.engine.internal.repo.index.IndexReader.read(
              e.getKey(), new LocalBlobStore(dir).load(e.getKey()))) {
        assertThat(entry.id().equals(bad) && entry.location().pack().toString().equals(packName))
            .as("%s lists the record that does not read", e.getKey())
            .isFalse();
      }
    }
  }

  /**
   * An index blob this host's repair replaced leaves no copy in its cache, kept aside or not: a
   * copy of it would be put back by the next repair, listing again what the first took out.
   */
  @Test
  void anIndexBlobThisHostsRepairReplacedLeavesNoCopy() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    String packName = largestPack(dir).getFileName().toString();
    Set<BlobName> replaced = RepairTest.listingBlobs(dir, packName);
    damage(dir, "record");
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      Repository.RepairResult res = repair(r, false);
      assertThat(res.repair().indexesReplaced()).isPositive();
    }
    for (BlobName b : replaced) {
      assertThat(dir.resolve(b.toString())).doesNotExist();
    }
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      try {
        h.restores(r, h.expected()); // lists index/ through the cache
      } catch (Exception | AssertionError lost) {
        // a snapshot using the lost chunk
      }
    }
    try (Stream<Path> s = Files.walk(host)) {
      List<String> names = s.map(p -> p.getFileName().toString()).toList();
      for (BlobName b : replaced) {
        assertThat(names).doesNotContain(b.name());
      }
    }
  }

  /**
   * A copy kept of an index blob a prune elsewhere deleted with its packs is never put back: the
   * packs it lists are gone.
   */
  @Test
  void aKeptCopyOfABlobWhosePacksAreGoneIsNotPutBack() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    Path pack = largestPack(dir);
    String packName = pack.getFileName().toString();
    BlobName blob = RepairTest.listingBlobs(dir, packName).iterator().next();
    // as a prune elsewhere: the blob goes, and a pack it lists
    Files.delete(dir.resolve(blob.toString()));
    Files.delete(pack);
    damage(dir, "trailer"); // another pack damaged
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      try {
        h.restores(r, h.expected());
      } catch (Exception | AssertionError expected) {
        // the pack is gone
      }
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack()).isEmpty();
    }
    assertThat(dir.resolve(blob.toString())).doesNotExist();
  }

  /** A snapshot's fixed index lost by the storage is put back from the cache. */
  @Test
  void aFixedIndexTheStorageLostIsPutBack() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    Path fixed = files(dir.resolve("fixed")).get(0);
    Files.delete(fixed);
    String name = "fixed/" + fixed.getFileName();
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack()).containsExactly(name);
      assertThat(res.otherDamage()).isEmpty();
      assertThat(RepairCommand.damaged(res)).isFalse();
    }
    assertThat(fixed).exists();
    wholeOnAnotherHost(dir, false, false);
  }

  /**
   * A damaged manifest whose fixed index is lost too: put back, the manifest names the index, which
   * is put back in the next round of the same repair (audit BB-L1: it took a second repair).
   */
  @Test
  void aManifestPutBackNamesItsLostIndexWhichIsPutBackToo() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    var victim = h.snaps.get(0);
    Path manifest = dir.resolve("snapshots/" + victim.id());
    flip(manifest);
    Path fixed = dir.resolve("fixed/" + victim.disks().get(0).fixedIndex());
    Files.delete(fixed);
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      r.lock(LockKind.SHARED, RepairCommand.DRY_RUN, Duration.ZERO);
      Repository.RepairResult dry = r.repair(true, (phase, done, total) -> {});
      assertThat(dry.putBack())
          .containsExactly("snapshots/" + victim.id(), "fixed/" + fixed.getFileName());
      assertThat(dry.otherDamage()).isEmpty();
    }
    assertThat(fixed).doesNotExist();
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack())
          .containsExactly("snapshots/" + victim.id(), "fixed/" + fixed.getFileName());
      assertThat(res.otherDamage()).isEmpty();
      assertThat(RepairCommand.damaged(res)).isFalse();
    }
    wholeOnAnotherHost(dir, false, false);
  }

  /**
   * A manifest the storage still lists but does not find is never put back: a forget on another
   * host deletes manifests, and a listing that lags behind it would have the forget undone.
   */
  @Test
  void aManifestTheStorageListsAndDoesNotFindIsNotPutBack() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    Path manifest = files(dir.resolve("snapshots")).get(0);
    BlobName name = new BlobName(BlobType.SNAPSHOT, manifest.getFileName().toString());
    Files.delete(manifest); // forgotten elsewhere
    BlobStore lagging =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public List<BlobName> list(BlobType type) throws IOException {
            List<BlobName> l = new ArrayList<>(super.list(type));
            if (type == BlobType.SNAPSHOT) {
              l.add(name); // the listing still shows it
            }
            return l;
          }
        };
    try (Repository r = onHost(lagging, host, false)) {
      VerifyReport v = r.verify(false, VerifyListener.NONE);
      assertThat(v.damages()).extracting(Damage::file).contains(name.toString());
      for (Damage d : v.damages()) {
        assertThat(d.problems()).noneMatch(p -> p.startsWith("this host's cache holds"));
      }
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack()).isEmpty();
    }
    assertThat(manifest).doesNotExist();
  }

  /**
   * A cached copy that does not read is not put back, nor named; nor is one of a blob the storage
   * holds intact, which verify names for what it refers to (a fixed index using lost chunks).
   */
  @Test
  void onlyACopyThatReadsWholeOfABlobTheStorageDamagedIsPutBack() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    Path blob = files(dir.resolve("index")).get(0);
    flip(blob);
    Path cached;
    try (Stream<Path> s = Files.walk(host)) {
      cached =
          s.filter(p -> p.getFileName().toString().equals(blob.getFileName().toString()))
              .findFirst()
              .orElseThrow();
    }
    flip(cached); // damaged on this host too
    Files.delete(files(dir.resolve("data")).get(0)); // and a pack lost: fixed indexes use it
    String name = "index/" + blob.getFileName();
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      VerifyReport v = r.verify(false, VerifyListener.NONE);
      assertThat(v.damages()).extracting(Damage::file).contains(name);
      for (Damage d : v.damages()) {
        assertThat(d.problems()).noneMatch(p -> p.startsWith("this host's cache holds"));
      }
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack()).isEmpty();
      assertThat(res.otherDamage()).contains(name);
    }
  }

  /**
   * Storage that answers "saved" for the blob put back and keeps half of it: the repair stops (exit
   * 3) before it deletes anything, and the cached copy stays.
   */
  @Test
  void aPutBackThatDoesNotReadBackStopsTheRepair() throws Exception {
    Path dir = warmed(false);
    Path host = tmp.resolve("host");
    damage(dir, "trailer");
    Path pack = largestPack(dir);
    List<Path> blobs = files(dir.resolve("index"));
    for (Path b : blobs) {
      flip(b);
    }
    List<BlobName> written = new ArrayList<>();
    BlobStore halfKept =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public void save(BlobName n, java.nio.channels.FileChannel file, long length)
              throws IOException {
            written.add(n);
            super.save(n, file, length / 2); // answered "saved"
          }
        };
    try (Repository r = onHost(halfKept, host, false)) {
      assertThatThrownBy(() -> repair(r, false))
          .isInstanceOf(RepositoryException.class)
          .hasMessageContaining("put back from this host's cache, then")
          .hasMessageContaining("nothing was deleted")
          .satisfies(e -> assertThat(Cli.exitCode(e)).isEqualTo(ExitCodes.REPOSITORY));
    }
    assertThat(written).hasSize(1).allMatch(n -> n.type() == BlobType.INDEX);
    assertThat(pack).as("the cut pack stays").exists();
    assertThat(files(dir.resolve("index"))).hasSameSizeAs(blobs);
    // on healthy storage the next repair puts them back and salvages the pack
    try (Repository r = onHost(new LocalBlobStore(dir), host, false)) {
      Repository.RepairResult res = repair(r, false);
      assertThat(res.putBack()).hasSize(blobs.size());
      assertThat(res.repair().chunksLost()).isZero();
    }
    try (Repository r = onHost(new LocalBlobStore(dir), tmp.resolve("other-host"), false)) {
      h.restores(r, h.expected());
    }
  }
}
