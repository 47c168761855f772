package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.assertValid;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.backup;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.listing;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Backups, forgets and prunes at the same time against one real local repository, each through its
 * own {@link Repository} instance (as separate processes would: own chunk index, own locks), then
 * every snapshot verified with read-data and restored bit-exact.
 */
class ConcurrentPruneTest {
  static final RepositoryConfig SMALL =
      RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10);

  @TempDir Path tmp;
  final ExecutorService pool = Executors.newFixedThreadPool(2);

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  Repository open(Path dir, String cache) {
    return Repository.open(new LocalBlobStore(dir), Clock.systemUTC(), tmp.resolve(cache));
  }

  @Test
  void twoConcurrentBackupsBothSucceedUnderSharedLocks() throws Exception {
    Path dir = tmp.resolve("repo");
    Repository.init(dir, SMALL).close();
    Map<String, String> expected = new HashMap<>();
    for (int round = 0; round < 3; round++) {
      byte[] x = TestImages.mixed(6 << 20, 100 + round);
      byte[] y = x.clone();
      TestImages.modify(y, 40, 16, 200 + round); // 60 % shared: both race to store it
      Path ix = TestImages.write(tmp.resolve("x" + round + ".raw"), x);
      Path iy = TestImages.write(tmp.resolve("y" + round + ".raw"), y);
      CyclicBarrier bothLocked = new CyclicBarrier(2);
      AtomicInteger locksSeen = new AtomicInteger();
      List<Future<BackupResult>> runs = new ArrayList<>();
      for (Path image : List.of(ix, iy)) {
        runs.add(
            pool.submit(
                () -> {
                  try (Repository r = open(dir, "cache-" + image.getFileName())) {
                    r.lock(LockKind.SHARED, "backup", Duration.ZERO);
                    bothLocked.await(30, TimeUnit.SECONDS);
                    locksSeen.accumulateAndGet(
                        new LocalBlobStore(dir).list(BlobType.LOCK).size(), Math::max);
                    return backup(r, "vda", image, "h");
                  }
                }));
      }
      expected.put(runs.get(0).get().manifest().id(), TestImages.sha256(x));
      expected.put(runs.get(1).get().manifest().id(), TestImages.sha256(y));
      assertThat(locksSeen.get()).as("both shared locks held at once").isEqualTo(2);
      assertThat(new LocalBlobStore(dir).list(BlobType.LOCK)).as("released").isEmpty();
      try (Repository r = open(dir, "check")) {
        assertValid(r, expected, tmp);
      }
    }
  }

  @Test
  void backupAndPruneAtTheSameTimeLoseNothing() throws Exception {
    Path dir = tmp.resolve("repo");
    Map<String, String> expected = new HashMap<>();
    List<String> order = new ArrayList<>();
    byte[] data = TestImages.mixed(6 << 20, 1);
    try (Repository r = Repository.init(dir, SMALL)) {
      for (int i = 0; i < 2; i++) {
        TestImages.modify(data, 25, 16, 50 + i);
        Path img = TestImages.write(tmp.resolve("base" + i + ".raw"), data);
        Manifest m = backup(r, "vda", img, "h").manifest();
        expected.put(m.id(), TestImages.sha256(data));
        order.add(m.id());
      }
    }
    long[][] delays = {{0, 0}, {0, 40}, {40, 0}, {0, 120}, {120, 0}, {0, 0}};
    AtomicInteger conflicts = new AtomicInteger();
    int prunedPacks = 0;
    for (int round = 0; round < delays.length; round++) {
      TestImages.modify(data, 25, 16, 60 + round);
      Path img = TestImages.write(tmp.resolve("round" + round + ".raw"), data);
      String sha = TestImages.sha256(data);
      String victim = order.remove(0);
      long backupDelay = delays[round][0];
      long pruneDelay = delays[round][1];
      Callable<BackupResult> backupRun =
          () -> {
            Thread.sleep(backupDelay);
            try (Repository r = open(dir, "cache-backup")) {
              lockOrWait(r, LockKind.SHARED, "backup", conflicts);
              return backup(r, "vda", img, "h");
            }
          };
      Callable<Pruner.Report> pruneRun =
          () -> {
            Thread.sleep(pruneDelay);
            try (Repository r = open(dir, "cache-prune")) {
              var shared = r.lock(LockKind.SHARED, "forget", Duration.ofSeconds(60));
              r.forgetSnapshots(List.of(victim), false);
              r.release(shared);
              lockOrWait(r, LockKind.EXCLUSIVE, "prune", conflicts);
              return r.prune(
                  new Pruner.Options(false, 1.0, java.time.Duration.ZERO), (p, d, t) -> {});
            }
          };
      Future<BackupResult> b = pool.submit(backupRun);
      Future<Pruner.Report> p = pool.submit(pruneRun);
      BackupResult br = b.get(120, TimeUnit.SECONDS);
      Pruner.Report pr = p.get(120, TimeUnit.SECONDS);
      prunedPacks += pr.packsDeleted() + pr.packsRepacked();
      expected.remove(victim);
      expected.put(br.manifest().id(), sha);
      order.add(br.manifest().id());
      try (Repository r = open(dir, "check")) {
        assertValid(r, expected, tmp);
      }
      assertThat(new LocalBlobStore(dir).list(BlobType.LOCK)).isEmpty();
    }
    assertThat(prunedPacks).as("prune really removed data").isPositive();
    assertThat(conflicts.get()).as("the two really collided at least once").isPositive();
  }

  /**
   * Tries once; on a conflict checks the error names the other side, counts it, then waits for the
   * lock (as --retry-lock does).
   */
  static void lockOrWait(Repository r, LockKind kind, String op, AtomicInteger conflicts) {
    try {
      r.lock(kind, op, Duration.ZERO);
    } catch (RepositoryLockedException e) {
      assertThat(e)
          .hasMessageContaining(kind == LockKind.SHARED ? "exclusive lock of prune" : "lock of ");
      conflicts.incrementAndGet();
      r.lock(kind, op, Duration.ofSeconds(90));
    }
  }

  @Test
  void withoutRetryTheLoserFailsCleanlyAndNothingIsLost() throws Exception {
    Path dir = tmp.resolve("repo");
    byte[] data = TestImages.mixed(4 << 20, 7);
    Path img = TestImages.write(tmp.resolve("a.raw"), data);
    Manifest first;
    try (Repository r = Repository.init(dir, SMALL)) {
      first = backup(r, "vda", img, "h").manifest();
    }
    Map<String, String> expected = new HashMap<>(Map.of(first.id(), TestImages.sha256(data)));
    // A prune holds the exclusive lock: a backup fails at once, having written nothing.
    try (Repository pruner = open(dir, "p")) {
      pruner.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
      Map<String, String> before = listing(dir.resolve("data"));
      try (Repository r = open(dir, "b")) {
        assertThatThrownBy(() -> r.lock(LockKind.SHARED, "backup", Duration.ZERO))
            .isInstanceOf(RepositoryLockedException.class)
            .hasMessageContaining("exclusive lock of prune by ")
            .hasMessageContaining("since ");
      }
      assertThat(listing(dir.resolve("data"))).isEqualTo(before);
    }
    // A backup holds a shared lock: prune fails at once, having deleted nothing.
    try (Repository backer = open(dir, "b")) {
      backer.lock(LockKind.SHARED, "backup", Duration.ZERO);
      try (Repository r = open(dir, "p")) {
        assertThatThrownBy(() -> r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO))
            .isInstanceOf(RepositoryLockedException.class)
            .hasMessageContaining("shared lock of backup by ");
      }
      TestImages.modify(data, 50, 16, 8);
      Path img2 = TestImages.write(tmp.resolve("b.raw"), data);
      expected.put(backup(backer, "vda", img2, "h").manifest().id(), TestImages.sha256(data));
    }
    try (Repository r = open(dir, "check")) {
      assertValid(r, expected, tmp);
    }
  }

  /**
   * {@code unlock --remove-all} while a backup runs (documented as unsafe), then a prune that
   * deletes the packs the backup has written so far: the backup notices its lock is gone when it
   * commits, fails, and saves no snapshot naming the deleted data (it used to exit 0 with a
   * snapshot verify then called damaged).
   */
  @Test
  void backupWhoseLockWasRemovedFailsInsteadOfCommitting() throws Exception {
    Path dir = tmp.resolve("repo");
    byte[] base = TestImages.mixed(4 << 20, 11);
    Path baseImg = TestImages.write(tmp.resolve("base.raw"), base);
    Manifest first;
    try (Repository r = Repository.init(dir, SMALL)) {
      first = backup(r, "vda", baseImg, "h").manifest();
    }
    Path img = TestImages.write(tmp.resolve("new.raw"), TestImages.mixed(8 << 20, 12));
    AtomicInteger prunes = new AtomicInteger();
    // After the backup's first pack is saved: unlock --remove-all, then a prune from elsewhere.
    var store =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public void save(
              io.granule.engine.internal.repo.blob.BlobName name,
              java.nio.ByteBuffer data,
              Runnable released)
              throws java.io.IOException {
            super.save(name, data, released);
            if (name.type() == BlobType.PACK && prunes.getAndIncrement() == 0) {
              try (Repository other = open(dir, "cache-prune")) {
                assertThat(other.locks().remove(true)).hasSize(1);
                other.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
                assertThat(
                        other
                            .prune(
                                new Pruner.Options(false, 1.0, java.time.Duration.ZERO),
                                (x, y, z) -> {})
                            .packsDeleted())
                    .isPositive();
              }
            }
          }
        };
    try (Repository r = Repository.open(store, Clock.systemUTC(), tmp.resolve("cache-backup"));
        io.granule.engine.internal.image.RawDiskImage d =
            io.granule.engine.internal.image.RawDiskImage.open(img)) {
      r.lock(LockKind.SHARED, "backup", Duration.ZERO);
      var request =
          new io.granule.engine.internal.repo.backup.BackupRequest(
              List.of(new io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk("vdb", d)),
              "h",
              List.of(),
              null);
      assertThatThrownBy(
              () -> r.backup(request, io.granule.engine.internal.repo.backup.BackupListener.NONE))
          .isInstanceOf(RepositoryLockedException.class)
          .hasMessageContaining("was removed by someone else");
    }
    assertThat(prunes.get()).as("the prune ran during the backup").isPositive();
    assertThat(new LocalBlobStore(dir).list(BlobType.SNAPSHOT)).hasSize(1);
    try (Repository r = open(dir, "check")) {
      assertValid(r, Map.of(first.id(), TestImages.sha256(base)), tmp);
    }
  }
}
