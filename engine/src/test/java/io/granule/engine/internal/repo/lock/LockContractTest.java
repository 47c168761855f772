package io.granule.engine.internal.repo.lock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The lock protocol on a blob store; each store runs it by subclassing. */
public abstract class LockContractTest {
  @TempDir Path tmp;
  protected BlobStore store;
  final MutableClock clock = new MutableClock(Instant.parse("2026-11-25T12:00:00Z"));
  static final LockOwner ALICE = new LockOwner("db1", 1111, "alice");
  static final LockOwner BOB = new LockOwner("db2", 2222, "bob");

  /** A new, empty store. */
  protected abstract BlobStore newStore(Path tmp) throws Exception;

  @BeforeEach
  void setUp() throws Exception {
    store = newStore(tmp);
  }

  /** A clock tests move by hand. */
  static final class MutableClock extends Clock {
    volatile Instant now;

    MutableClock(Instant now) {
      this.now = now;
    }

    void advance(Duration d) {
      now = now.plus(d);
    }

    @Override
    public ZoneOffset getZone() {
      return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(java.time.ZoneId zone) {
      return this;
    }

    @Override
    public Instant instant() {
      return now;
    }
  }

  /** A manager for {@code owner} whose processes all run (pids are not checked across hosts). */
  LockManager manager(LockOwner owner) {
    return new LockManager(
        store,
        BlobCodec.IDENTITY,
        clock,
        owner,
        Duration.ofMinutes(5),
        Duration.ofMinutes(30),
        pid -> true);
  }

  @Test
  void sharedLocksCoexist() throws Exception {
    try (Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
        Lock b = manager(BOB).acquire(LockKind.SHARED, "restore", Duration.ZERO)) {
      assertThat(store.list(BlobType.LOCK)).containsExactlyInAnyOrder(a.name(), b.name());
      assertThat(manager(BOB).list()).hasSize(2).noneMatch(LockManager.Status::stale);
    }
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }

  @Test
  void exclusiveLockExcludesEveryOtherAndTheErrorNamesTheHolder() throws Exception {
    try (Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      assertThatThrownBy(() -> manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("unable to take an exclusive lock for prune")
          .hasMessageContaining("shared lock of backup by alice@db1 (pid 1111)")
          .hasMessageContaining("since 2026-11-25T12:00:00Z")
          .hasMessageContaining("--retry-lock");
      assertThat(store.list(BlobType.LOCK))
          .as("the loser removed its lock")
          .containsExactly(a.name());
    }
    try (Lock p = manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO)) {
      assertThatThrownBy(() -> manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("exclusive lock of prune by bob@db2 (pid 2222)");
      assertThatThrownBy(() -> manager(ALICE).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
          .isInstanceOf(RepositoryLockedException.class);
      assertThat(store.list(BlobType.LOCK)).containsExactly(p.name());
    }
  }

  @Test
  void lockRecordsWhoAndIsRefreshed() throws Exception {
    try (Lock a = manager(ALICE).acquire(LockKind.SHARED, "verify", Duration.ZERO)) {
      LockInfo info = manager(BOB).list().get(0).info();
      assertThat(info.kind()).isEqualTo("shared");
      assertThat(info.operation()).isEqualTo("verify");
      assertThat(info.host()).isEqualTo("db1");
      assertThat(info.pid()).isEqualTo(1111);
      assertThat(info.user()).isEqualTo("alice");
      assertThat(info.created()).isEqualTo("2026-11-25T12:00:00Z");
      clock.advance(Duration.ofMinutes(25));
      a.refresh();
      clock.advance(Duration.ofMinutes(25));
      LockManager.Status s = manager(BOB).list().get(0);
      assertThat(s.info().refreshed()).isEqualTo("2026-11-25T12:25:00Z");
      assertThat(s.info().created()).isEqualTo("2026-11-25T12:00:00Z");
      assertThat(s.stale()).as("refreshed 25 min ago").isFalse();
    }
  }

  @Test
  void refresherThreadRewritesTheLock() throws Exception {
    LockManager m =
        new LockManager(
            store,
            BlobCodec.IDENTITY,
            clock,
            ALICE,
            Duration.ofMillis(50),
            Duration.ofMinutes(30),
            pid -> true);
    try (Lock a = m.acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      clock.advance(Duration.ofMinutes(10));
      long deadline = System.nanoTime() + 10_000_000_000L;
      // s3proxy's file backend lists an object being overwritten as absent for a moment
      while (manager(BOB).list().stream()
          .noneMatch(l -> l.info().refreshed().equals("2026-11-25T12:10:00Z"))) {
        assertThat(System.nanoTime()).as("refreshed within 10 s").isLessThan(deadline);
        Thread.sleep(20);
      }
    }
  }

  /**
   * A lock from a host whose clock is two hours ahead is not stale by time until two and a half
   * hours from now: the conflict and {@code unlock} say why, and what to do if its holder is gone.
   */
  @Test
  void aLockFromAHostWhoseClockIsAheadSaysSo() throws Exception {
    MutableClock ahead = new MutableClock(clock.instant().plus(Duration.ofHours(2)));
    LockManager fast =
        new LockManager(
            store,
            BlobCodec.IDENTITY,
            ahead,
            ALICE,
            Duration.ofMinutes(5),
            Duration.ofMinutes(30),
            pid -> true);
    try (Lock held = fast.acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      clock.advance(Duration.ofMinutes(40)); // its holder died 40 min ago, by this host's clock
      LockManager.Status s = manager(BOB).list().get(0);
      assertThat(s.stale()).isFalse();
      assertThat(s.describe())
          .contains("refreshed 80 min ahead of this host's clock")
          .contains("'granule unlock --remove-all'");
      assertThatThrownBy(() -> manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("80 min ahead of this host's clock");
      assertThat(manager(BOB).remove(false)).isEmpty();
      clock.advance(Duration.ofMinutes(111));
      assertThat(manager(BOB).list().get(0).stale()).as("31 min after its time").isTrue();
      assertThat(held.name()).isNotNull();
    }
  }

  @Test
  void unrefreshedLockIsStaleAndUnlockRemovesOnlyStaleLocks() throws Exception {
    Lock old = manager(ALICE).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    clock.advance(Duration.ofMinutes(31));
    try (Lock fresh = manager(BOB).acquire(LockKind.SHARED, "backup", Duration.ofMillis(1))) {
      throw new AssertionError("a stale exclusive lock must still conflict: " + fresh.name());
    } catch (RepositoryLockedException e) {
      assertThat(e)
          .hasMessageContaining("locked by a stale lock: exclusive lock of prune by alice@db1")
          .hasMessageContaining("not refreshed for 31 min")
          .hasMessageContaining("'granule unlock'");
    }
    // A stale shared lock does not conflict with a shared one; 'unlock' removes it, not the fresh.
    old.close();
    LockInfo i = old.info();
    LockInfo staleShared =
        new LockInfo("shared", "backup", i.host(), i.pid(), i.user(), i.created(), i.refreshed());
    store.save(old.name(), BlobCodec.IDENTITY.encode(old.name(), staleShared.toBytes()));
    try (Lock fresh = manager(BOB).acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      List<LockManager.Status> removed = manager(BOB).remove(false);
      assertThat(removed).extracting(LockManager.Status::name).containsExactly(old.name());
      assertThat(store.list(BlobType.LOCK)).containsExactly(fresh.name());
      assertThat(manager(BOB).remove(true))
          .extracting(LockManager.Status::name)
          .containsExactly(fresh.name());
      assertThat(store.list(BlobType.LOCK)).isEmpty();
    }
  }

  @Test
  void lockOfAProcessGoneFromThisHostIsStale() throws Exception {
    Process p = new ProcessBuilder("true").start();
    p.waitFor();
    long dead = p.pid();
    LockOwner ghost = new LockOwner("db1", dead, "alice");
    try (Lock l = manager(ghost).acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      LockManager sameHost =
          new LockManager(
              store,
              BlobCodec.IDENTITY,
              clock,
              ALICE,
              Duration.ofMinutes(5),
              Duration.ofMinutes(30));
      LockManager.Status s = sameHost.list().get(0);
      assertThat(s.stale()).isTrue();
      assertThat(s.why()).contains("process " + dead + " no longer runs on this host");
      LockManager otherHost =
          new LockManager(
              store, BlobCodec.IDENTITY, clock, BOB, Duration.ofMinutes(5), Duration.ofMinutes(30));
      assertThat(otherHost.list().get(0).stale()).as("another host cannot tell").isFalse();
      assertThat(sameHost.remove(false)).hasSize(1);
    }
  }

  /**
   * A pid is judged only in the holder's boot and PID namespace: a container or a cloned VM sharing
   * the host name runs its own pids (its live backup's lock was called stale, so plain 'unlock'
   * removed it and a prune deleted its data).
   */
  @Test
  void pidIsJudgedOnlyInTheHoldersBootAndPidNamespace() throws Exception {
    Process p = new ProcessBuilder("true").start();
    p.waitFor();
    long dead = p.pid();
    LockOwner here = new LockOwner("db1", 1, "alice", "m1", "boot1", "pid:[1]");
    Map<String, LockOwner> holders = new LinkedHashMap<>();
    holders.put("same namespace", new LockOwner("db1", dead, "alice", "m1", "boot1", "pid:[1]"));
    holders.put("container", new LockOwner("db1", dead, "alice", "m2", "boot1", "pid:[2]"));
    holders.put("cloned VM", new LockOwner("db1", dead, "alice", "m1b", "boot2", "pid:[1]"));
    holders.put("other boot", new LockOwner("db1", dead, "alice", "m1", "boot0", "pid:[1]"));
    holders.put("older version", new LockOwner("db1", dead, "alice"));
    // a holder that could not read its boot id (a hardened container), in another namespace
    holders.put(
        "no boot id, container", new LockOwner("db1", dead, "alice", "m2", null, "pid:[2]"));
    holders.put("no boot id, here", new LockOwner("db1", dead, "alice", "m1", null, "pid:[1]"));
    Map<String, String> why = new LinkedHashMap<>();
    for (var h : holders.entrySet()) {
      try (Lock l = manager(h.getValue()).acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
        LockManager.Status s =
            new LockManager(
                    store,
                    BlobCodec.IDENTITY,
                    clock,
                    here,
                    Duration.ofMinutes(5),
                    Duration.ofMinutes(30),
                    pid -> pid != dead)
                .list()
                .get(0);
        why.put(h.getKey(), s.stale() ? s.why() : "live");
      }
    }
    assertThat(why)
        .containsEntry("same namespace", "process " + dead + " no longer runs on this host")
        .containsEntry("container", "live")
        .containsEntry("cloned VM", "live")
        .containsEntry("other boot", "live") // see the next test
        .containsEntry("older version", "process " + dead + " no longer runs on this host")
        .containsEntry("no boot id, container", "live")
        .containsEntry("no boot id, here", "process " + dead + " no longer runs on this host");
    // the ids are in the blob (and omitted when unknown, as earlier versions wrote it)
    try (Lock l =
        manager(holders.get("container")).acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      LockInfo read = manager(ALICE).list().get(0).info();
      assertThat(read.machineId()).isEqualTo("m2");
      assertThat(read.bootId()).isEqualTo("boot1");
      assertThat(read.pidNamespace()).isEqualTo("pid:[2]");
    }
    LockOwner me = LockOwner.current();
    if (java.nio.file.Files.exists(java.nio.file.Path.of("/proc/self/ns/pid"))) {
      assertThat(me.bootId()).isNotBlank();
      assertThat(me.pidNamespace()).startsWith("pid:[");
    }
  }

  @Test
  void unreadableLockIsStaleAndConflicts() throws Exception {
    BlobName junk = new BlobName(BlobType.LOCK, "00ff");
    store.save(junk, new byte[] {1, 2, 3});
    assertUnreadableLock(junk);
  }

  /**
   * Lock blob {@code name}, the only one, cannot be read: it is listed as stale without its fields,
   * a lock taken meanwhile conflicts with it naming it, and a plain unlock removes it, after which
   * locks are taken again.
   */
  protected void assertUnreadableLock(BlobName name) throws Exception {
    assertThat(manager(ALICE).list())
        .singleElement()
        .satisfies(
            s -> {
              assertThat(s.stale()).isTrue();
              assertThat(s.info()).isNull();
            });
    assertThatThrownBy(() -> manager(ALICE).acquire(LockKind.SHARED, "ls", Duration.ZERO))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("unreadable lock locks/" + name.name());
    assertThat(manager(ALICE).remove(false)).hasSize(1);
    assertThat(store.stat(name)).isEmpty();
    manager(ALICE).acquire(LockKind.SHARED, "ls", Duration.ZERO).close();
  }

  @Test
  void lostLockStopsWriters() throws Exception {
    Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobStore guarded = new LockCheckingBlobStore(store, a);
    guarded.save(new BlobName(BlobType.INDEX, "aa"), new byte[] {1});
    manager(BOB).remove(true);
    a.refresh();
    assertThatThrownBy(() -> guarded.save(new BlobName(BlobType.SNAPSHOT, "bb"), new byte[] {1}))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("was removed by someone else");
    assertThat(store.stat(new BlobName(BlobType.SNAPSHOT, "bb"))).isEmpty();
    a.close();
  }

  /**
   * A commit (snapshot or index blob) asks the store whether the lock is still there, so a lock
   * removed since the last refresh (refreshes come every 5 minutes) stops it at once; pack saves
   * only check what is known; deletes ask at most every 10 s.
   */
  @Test
  void removedLockStopsTheNextCommitWithoutWaitingForARefresh() throws Exception {
    Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobStore guarded = new LockCheckingBlobStore(store, a);
    guarded.save(new BlobName(BlobType.INDEX, "aa"), new byte[] {1});
    manager(BOB).remove(true);
    guarded.save(new BlobName(BlobType.PACK, "cc"), new byte[] {1});
    guarded.delete(new BlobName(BlobType.PACK, "cc"));
    assertThatThrownBy(() -> guarded.save(new BlobName(BlobType.SNAPSHOT, "bb"), new byte[] {1}))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("was removed by someone else");
    assertThat(store.stat(new BlobName(BlobType.SNAPSHOT, "bb"))).isEmpty();
    assertThatThrownBy(() -> guarded.save(new BlobName(BlobType.PACK, "dd"), new byte[] {1}))
        .isInstanceOf(RepositoryLockedException.class);
    a.close();

    Lock p = manager(ALICE).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    BlobStore pruning = new LockCheckingBlobStore(store, p);
    store.save(new BlobName(BlobType.PACK, "ee"), new byte[] {1});
    store.save(new BlobName(BlobType.PACK, "ff"), new byte[] {1});
    manager(BOB).remove(true);
    pruning.delete(new BlobName(BlobType.PACK, "ee"));
    clock.advance(Duration.ofSeconds(11));
    assertThatThrownBy(() -> pruning.delete(new BlobName(BlobType.PACK, "ff")))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("was removed by someone else");
    assertThat(store.stat(new BlobName(BlobType.PACK, "ff"))).isPresent();
    p.close();
  }

  @Test
  void unrefreshedHeldLockStopsWriters() throws Exception {
    Lock a = manager(ALICE).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    a.check();
    clock.advance(Duration.ofMinutes(26));
    assertThatThrownBy(a::check)
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("could not be refreshed");
    // others may have judged it stale by now: a late refresh does not bring it back
    a.refresh();
    assertThatThrownBy(a::check)
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("was not refreshed for 1560 s");
    assertThat(manager(BOB).list())
        .singleElement()
        .extracting(s -> s.info().refreshed())
        .isEqualTo("2026-11-25T12:00:00Z");
    a.close();
    assertThatThrownBy(a::check).isInstanceOf(RepositoryLockedException.class);
    assertThat(store.list(BlobType.LOCK)).isEmpty();

    Lock b = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    clock.advance(Duration.ofMinutes(24));
    b.refresh();
    b.check();
    b.close();
  }

  /**
   * A store that runs {@code onLockSave} once, after the next lock blob other than {@code skip} is
   * saved.
   */
  static final class InterleavingStore
      extends io.granule.engine.internal.repo.blob.ForwardingBlobStore {
    volatile Runnable afterLockSave;

    InterleavingStore(BlobStore delegate) {
      super(delegate);
    }

    volatile Runnable afterLockStat;
    volatile Runnable afterLockList;

    @Override
    public List<BlobName> list(BlobType type) throws IOException {
      List<BlobName> names = delegate.list(type);
      Runnable r = afterLockList;
      if (r != null && type == BlobType.LOCK) {
        afterLockList = null;
        r.run();
      }
      return names;
    }

    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      delegate.save(name, data);
      Runnable r = afterLockSave;
      if (r != null && name.type() == BlobType.LOCK) {
        afterLockSave = null;
        r.run();
      }
    }

    @Override
    public java.util.Optional<io.granule.engine.internal.repo.blob.BlobInfo> stat(BlobName name)
        throws IOException {
      java.util.Optional<io.granule.engine.internal.repo.blob.BlobInfo> found = delegate.stat(name);
      Runnable r = afterLockStat;
      if (r != null && name.type() == BlobType.LOCK) {
        afterLockStat = null;
        r.run();
      }
      return found;
    }
  }

  /**
   * A refresh never brings back a lock removed while it runs ({@code unlock --remove-all}): it used
   * to check the blob, then rewrite it, so a removal between the two was undone, and a prune that
   * started in the gap deleted data the backup then committed a snapshot of (its confirm found the
   * lock back). Now the refresh saves a new blob and keeps it only if the old one is still there.
   */
  @Test
  void refreshNeverBringsBackARemovedLock() throws Exception {
    InterleavingStore racing = new InterleavingStore(store);
    LockManager alice =
        new LockManager(
            racing,
            BlobCodec.IDENTITY,
            clock,
            ALICE,
            Duration.ofMinutes(5),
            Duration.ofMinutes(30),
            pid -> true);
    // removed before the new blob is listed: the refresh sees it and the lock is lost
    Lock a = alice.acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobName first = a.name();
    clock.advance(Duration.ofMinutes(5));
    racing.afterLockSave =
        () -> {
          try {
            store.delete(first); // an 'unlock --remove-all' that listed before the new blob
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        };
    a.refresh();
    assertThat(store.list(BlobType.LOCK)).as("nothing brought back").isEmpty();
    BlobStore guarded = new LockCheckingBlobStore(racing, a);
    assertThatThrownBy(() -> guarded.save(new BlobName(BlobType.SNAPSHOT, "bb"), new byte[] {1}))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("was removed by someone else");
    assertThat(store.stat(new BlobName(BlobType.SNAPSHOT, "bb"))).isEmpty();
    a.close();

    // removed after the new blob is saved: the new one stays listed, so a prune cannot start
    Lock b = alice.acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobName old = b.name();
    clock.advance(Duration.ofMinutes(5));
    List<LockManager.Status> seen = new ArrayList<>();
    racing.afterLockSave = () -> seen.addAll(manager(BOB).remove(true));
    b.refresh();
    assertThat(seen).extracting(LockManager.Status::name).contains(old);
    assertThat(store.list(BlobType.LOCK)).as("every blob was removed").isEmpty();
    assertThatThrownBy(b::check).hasMessageContaining("was removed by someone else");
    b.close();

    // removed just after the refresh found it there (where the old refresh rewrote it): a prune
    // started then still sees the lock
    Lock d = alice.acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobName checked = d.name();
    clock.advance(Duration.ofMinutes(5));
    List<String> pruneSaw = new ArrayList<>();
    racing.afterLockStat =
        () -> {
          try {
            store.delete(checked); // an 'unlock --remove-all' that listed before the refresh
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
          try (Lock p = manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO)) {
            pruneSaw.add("no lock: the prune ran");
          } catch (RepositoryLockedException e) {
            pruneSaw.add(e.getMessage());
          }
        };
    d.refresh();
    assertThat(pruneSaw).singleElement().asString().contains("shared lock of backup");
    assertThat(store.list(BlobType.LOCK)).containsExactly(d.name());
    d.confirm();
    d.close();

    // an ordinary refresh: one blob, a new name, the new time
    Lock c = alice.acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobName before = c.name();
    clock.advance(Duration.ofMinutes(5));
    c.refresh();
    assertThat(c.name()).isNotEqualTo(before);
    assertThat(store.list(BlobType.LOCK)).containsExactly(c.name());
    assertThat(manager(BOB).list().get(0).info().refreshed()).isEqualTo(clock.instant().toString());
    assertThatThrownBy(() -> manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
        .isInstanceOf(RepositoryLockedException.class);
    c.confirm();
    c.close();
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }

  /**
   * A lock removed while a snapshot is being saved (a slow upload; `unlock --remove-all`, then a
   * prune deleting the data it names): the backup reported the snapshot saved, and verify then
   * found it damaged. The lock is confirmed again after the save: the snapshot is removed again and
   * the save fails.
   */
  @Test
  void aLockRemovedWhileASnapshotIsSavedFailsTheSaveAndRemovesTheSnapshot() throws Exception {
    Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobStore slow =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(store) {
          @Override
          public void save(BlobName name, byte[] data) throws IOException {
            if (name.type() == BlobType.SNAPSHOT) {
              store.delete(a.name()); // removed by someone else while the upload runs
            }
            delegate.save(name, data);
          }
        };
    LockCheckingBlobStore checked = new LockCheckingBlobStore(slow, a);
    BlobName index = new BlobName(BlobType.INDEX, "1".repeat(64));
    checked.save(index, new byte[] {1});
    BlobName snapshot = new BlobName(BlobType.SNAPSHOT, "2".repeat(64));
    assertThatThrownBy(() -> checked.save(snapshot, new byte[] {2}))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("was removed by someone else")
        .hasMessageContaining("saved meanwhile and removed again");
    assertThat(store.stat(snapshot)).isEmpty();
    assertThat(store.stat(index)).isPresent();
    a.close();
  }

  /**
   * The store cannot be asked after a snapshot save whether the lock held (an outage right after
   * the upload): the backup failed with the snapshot left saved, unchecked. It is removed again
   * now.
   */
  @Test
  void aLockThatCannotBeConfirmedAfterASnapshotSaveFailsTheSaveAndRemovesTheSnapshot()
      throws Exception {
    BlobStore real = store;
    java.util.concurrent.atomic.AtomicBoolean outage =
        new java.util.concurrent.atomic.AtomicBoolean();
    store =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(real) {
          @Override
          public java.util.Optional<io.granule.engine.internal.repo.blob.BlobInfo> stat(
              BlobName name) throws IOException {
            if (outage.get() && name.type() == BlobType.LOCK) {
              throw new IOException("connection reset");
            }
            return delegate.stat(name);
          }
        };
    try {
      Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
      BlobStore failing =
          new io.granule.engine.internal.repo.blob.ForwardingBlobStore(real) {
            @Override
            public void save(BlobName name, byte[] data) throws IOException {
              delegate.save(name, data);
              if (name.type() == BlobType.SNAPSHOT) {
                outage.set(true);
              }
            }
          };
      LockCheckingBlobStore checked = new LockCheckingBlobStore(failing, a);
      BlobName snapshot = new BlobName(BlobType.SNAPSHOT, "3".repeat(64));
      assertThatThrownBy(() -> checked.save(snapshot, new byte[] {3}))
          .isInstanceOf(IOException.class)
          .isNotInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("connection reset")
          .hasMessageContaining("removed again");
      assertThat(real.stat(snapshot)).isEmpty();
      outage.set(false);
      a.close();
    } finally {
      store = real;
    }
  }

  /**
   * s3proxy's file backend answers a lock listing that races a delete with nothing at all, now and
   * then twice in a row: a taker saw no conflict in both of its listings, and a prune ran beside a
   * live backup. A listing that leaves out the taker's own lock is incomplete and is taken again.
   */
  @Test
  void listingsThatLeaveOutTheTakersOwnLockAreNotTrusted() throws Exception {
    Lock backup = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    BlobStore real = store;
    AtomicInteger emptyListings = new AtomicInteger(3);
    store =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(real) {
          @Override
          public List<BlobName> list(BlobType type) throws IOException {
            List<BlobName> names = delegate.list(type);
            return type == BlobType.LOCK && emptyListings.getAndDecrement() > 0 ? List.of() : names;
          }
        };
    try {
      assertThatThrownBy(() -> manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
          .isInstanceOf(RepositoryLockedException.class);
      assertThat(emptyListings.get()).isNegative();
      // a store that never lists the taker's own lock is reported, never trusted
      emptyListings.set(Integer.MAX_VALUE);
      assertThatThrownBy(() -> manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
          .isInstanceOf(io.granule.engine.internal.repo.RepositoryException.class)
          .hasMessageContaining("left out this process's own lock");
    } finally {
      store = real;
    }
    backup.close();
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }

  /**
   * A reader that cannot write a lock (a repository this user may not write) went on beside a prune
   * holding the exclusive lock, and reported the packs the prune deleted as damage. It waits for
   * the prune now, and fails as locked if the prune outlasts its wait.
   */
  @Test
  void aReaderWithoutALockOfItsOwnWaitsForAPrune() throws Exception {
    manager(ALICE).awaitNoExclusive("restore", Duration.ZERO, false); // nothing held
    Lock shared = manager(BOB).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    manager(ALICE).awaitNoExclusive("restore", Duration.ZERO, false); // a backup: no harm
    shared.close();
    Lock prune = manager(BOB).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    assertThatThrownBy(() -> manager(ALICE).awaitNoExclusive("restore", Duration.ZERO, false))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("exclusive lock of prune");
    // a read-only copy made while a prune ran: its lock is a leftover, no prune runs there
    manager(ALICE).awaitNoExclusive("restore", Duration.ZERO, true);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<?> waiting =
          pool.submit(
              () -> {
                manager(ALICE).awaitNoExclusive("restore", Duration.ofSeconds(30), false);
                return null;
              });
      Thread.sleep(300);
      assertThat(waiting.isDone()).as("waits while the prune runs").isFalse();
      prune.close();
      waiting.get(10, java.util.concurrent.TimeUnit.SECONDS);
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * A taker that lists the locks just before a holder's refresh replaces its blob finds the listed
   * blob gone when it reads it: it lists again and sees the new one. It took the gone blob for a
   * released lock, so a prune ran beside a live backup (which then saved a damaged snapshot).
   */
  @Test
  void aTakerListingDuringARefreshStillSeesTheLock() throws Exception {
    Lock a = manager(ALICE).acquire(LockKind.SHARED, "backup", Duration.ZERO);
    clock.advance(Duration.ofMinutes(5));
    InterleavingStore racing = new InterleavingStore(store);
    racing.afterLockList = a::refresh;
    LockManager bob =
        new LockManager(
            racing,
            BlobCodec.IDENTITY,
            clock,
            BOB,
            Duration.ofMinutes(5),
            Duration.ofMinutes(30),
            pid -> true);
    BlobName before = a.name();
    assertThatThrownBy(() -> bob.acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
        .isInstanceOf(RepositoryLockedException.class)
        .hasMessageContaining("shared lock of backup by alice@db1");
    assertThat(a.name())
        .as("the refresh ran between the listing and the reads")
        .isNotEqualTo(before);
    a.close();
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }

  /**
   * A lock left by a killed process (a prune killed by the OOM killer) blocked every later backup,
   * restore and verify until someone ran 'granule unlock', although its holder was proven gone
   * (audit12). In a directory the next taker removes such a leftover, with a warning; on S3, where
   * a request the holder sent may still land, it stays stale and conflicts; so does a lock whose
   * holder is not proven gone (an older version's, judged by its pid alone; a live pid).
   */
  @Test
  void aLockLeftByAProcessProvenGoneIsRemovedByTheNextTakerInADirectory() throws Exception {
    Process p = new ProcessBuilder("true").start();
    p.waitFor();
    long dead = p.pid();
    LockOwner here = new LockOwner("db1", 1, "alice", "m1", "boot1", "pid:[1]");
    java.util.function.Supplier<LockManager> taker =
        () ->
            new LockManager(
                store,
                BlobCodec.IDENTITY,
                clock,
                here,
                Duration.ofMinutes(5),
                Duration.ofMinutes(30),
                pid -> pid != dead);
    boolean s3 =
        store.location().startsWith(io.granule.engine.internal.repo.blob.S3Location.SCHEME);
    LockOwner killed = new LockOwner("db1", dead, "alice", "m1", "boot1", "pid:[1]");
    try (Lock left = manager(killed).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO)) {
      if (s3) {
        assertThatThrownBy(() -> taker.get().acquire(LockKind.SHARED, "backup", Duration.ZERO))
            .isInstanceOf(RepositoryLockedException.class)
            .hasMessageContaining("stale: process " + dead + " no longer runs on this host");
        assertThat(store.list(BlobType.LOCK)).containsExactly(left.name());
      } else {
        try (Lock b = taker.get().acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
          assertThat(store.list(BlobType.LOCK)).containsExactly(b.name());
        }
      }
    }
    // a lock of an earlier boot of this machine: removed only once stale by time as well (a clone
    // whose clock runs behind looks as if it last refreshed before this boot)
    if (!s3) {
      LockOwner earlier = new LockOwner("db1", 7, "alice", "m1", "boot0", "pid:[1]");
      java.util.function.Supplier<LockManager> booted =
          () ->
              new LockManager(
                  store,
                  BlobCodec.IDENTITY,
                  clock,
                  new LockOwner(
                      "db1", 1, "alice", "m1", "boot1", "pid:[1]", clock.instant().plusSeconds(1)),
                  Duration.ofMinutes(5),
                  Duration.ofMinutes(30),
                  pid -> false);
      try (Lock old = manager(earlier).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO)) {
        clock.advance(Duration.ofMinutes(11));
        assertThatThrownBy(() -> booted.get().acquire(LockKind.SHARED, "backup", Duration.ZERO))
            .as("stale (taken before this boot), not yet removed")
            .isInstanceOf(RepositoryLockedException.class);
        clock.advance(Duration.ofMinutes(25));
        try (Lock b = booted.get().acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
          assertThat(store.list(BlobType.LOCK)).containsExactly(b.name());
        }
      }
    }
    for (LockOwner unproven :
        List.of(
            new LockOwner("db1", dead, "alice"), // an older version's: its pid alone
            new LockOwner("db1", 1, "alice", "m1", "boot1", "pid:[1]"))) { // pid 1 runs
      try (Lock l = manager(unproven).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO)) {
        assertThatThrownBy(() -> taker.get().acquire(LockKind.SHARED, "backup", Duration.ZERO))
            .isInstanceOf(RepositoryLockedException.class);
        assertThat(store.list(BlobType.LOCK)).containsExactly(l.name());
      }
    }
  }

  /**
   * A lock of this machine (same machine id) from another boot is stale only if it was last
   * refreshed before this boot and not for two refresh intervals: a cloned or restored VM running
   * beside the original has the same machine id and refreshes its live lock every 5 minutes.
   */
  @Test
  void lockOfAnotherBootIsStaleOnlyWhenNotRefreshedSinceThisBoot() throws Exception {
    Instant t0 = clock.instant();
    LockOwner earlier = new LockOwner("db1", 7, "alice", "m1", "boot0", "pid:[1]");
    try (Lock l = manager(earlier).acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      java.util.function.Function<Instant, LockManager.Status> judgedBy =
          booted ->
              new LockManager(
                      store,
                      BlobCodec.IDENTITY,
                      clock,
                      new LockOwner("db1", 1, "alice", "m1", "boot1", "pid:[1]", booted),
                      Duration.ofMinutes(5),
                      Duration.ofMinutes(30),
                      pid -> false)
                  .list()
                  .get(0);
      clock.advance(Duration.ofMinutes(3));
      assertThat(judgedBy.apply(t0.plusSeconds(60)).stale())
          .as("booted after its last refresh, but a live clone refreshes only every 5 min")
          .isFalse();
      clock.advance(Duration.ofMinutes(8));
      assertThat(judgedBy.apply(t0.plusSeconds(60)).why())
          .isEqualTo("taken before this host last started (process 7) and not refreshed since");
      assertThat(judgedBy.apply(t0.minusSeconds(60)).stale())
          .as("a clone: refreshed after this machine booted")
          .isFalse();
      assertThat(judgedBy.apply(null).stale()).as("boot time unknown").isFalse();
    }
  }

  @Test
  void waiterGetsTheLockOnceReleased() throws Exception {
    Lock a = manager(ALICE).acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    Thread t =
        new Thread(
            () -> {
              try {
                Thread.sleep(700);
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              a.close();
            });
    t.start();
    long t0 = System.nanoTime();
    try (Lock b = manager(BOB).acquire(LockKind.SHARED, "backup", Duration.ofSeconds(30))) {
      assertThat(System.nanoTime() - t0).isGreaterThan(600_000_000L);
      assertThat(store.list(BlobType.LOCK)).containsExactly(b.name());
    }
    t.join();
  }

  @Test
  void racingExclusiveLocksNeverOverlap() throws Exception {
    AtomicInteger holders = new AtomicInteger();
    AtomicInteger maxHolders = new AtomicInteger();
    AtomicInteger taken = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<?>> all = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        LockOwner o = new LockOwner("h" + t, 10 + t, "u");
        all.add(
            pool.submit(
                () -> {
                  for (int i = 0; i < 3; i++) {
                    try (Lock l =
                        manager(o).acquire(LockKind.EXCLUSIVE, "prune", Duration.ofSeconds(60))) {
                      int n = holders.incrementAndGet();
                      maxHolders.accumulateAndGet(n, Math::max);
                      Thread.sleep(5);
                      holders.decrementAndGet();
                      taken.incrementAndGet();
                    }
                  }
                  return null;
                }));
      }
      for (Future<?> f : all) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
    assertThat(taken.get()).isEqualTo(12);
    assertThat(maxHolders.get()).isEqualTo(1);
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }
}
