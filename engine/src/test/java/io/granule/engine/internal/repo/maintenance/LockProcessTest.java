package io.granule.engine.internal.repo.maintenance;

import static io.granule.engine.internal.repo.maintenance.PruneSupport.assertValid;
import static io.granule.engine.internal.repo.maintenance.PruneSupport.backup;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.lock.LockManager;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Locks between real processes: concurrent backup and prune processes both finish and lose nothing;
 * SIGTERM releases a lock (shutdown hook); after SIGKILL the lock is stale because its pid is gone,
 * and unlock clears it.
 */
class LockProcessTest {
  static final RepositoryConfig SMALL =
      RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10);

  @TempDir Path tmp;

  /**
   * Child JVM: {@code DIR backup IMAGE | DIR prune | DIR hold}; waits up to 120 s for the lock,
   * prints "locked" once it holds it, then "done" and the snapshot id.
   */
  public static void main(String[] args) throws Exception {
    try (Repository repo = Repository.open(Path.of(args[0]))) {
      String mode = args[1];
      LockKind kind = mode.equals("prune") ? LockKind.EXCLUSIVE : LockKind.SHARED;
      repo.lock(kind, mode, Duration.ofSeconds(120));
      System.out.println("locked");
      System.out.flush();
      switch (mode) {
        case "backup" ->
            System.out.println(
                "done " + backup(repo, "vda", Path.of(args[2]), "child").manifest().id());
        case "prune" -> {
          Pruner.Report r =
              repo.prune(new Pruner.Options(false, 1.0, java.time.Duration.ZERO), (p, d, t) -> {});
          System.out.println("done " + (r.packsDeleted() + r.packsRepacked()));
        }
        default -> Thread.sleep(600_000);
      }
      System.out.flush();
    }
  }

  static Process child(String... args) throws Exception {
    String java = ProcessHandle.current().info().command().orElse("java");
    List<String> cmd =
        new ArrayList<>(
            List.of(
                java,
                "-Xmx128m",
                "-cp",
                System.getProperty("java.class.path"),
                LockProcessTest.class.getName()));
    cmd.addAll(List.of(args));
    return new ProcessBuilder(cmd).redirectErrorStream(true).start();
  }

  /** Reads the child's output until a line starting with {@code prefix}; returns that line. */
  static String await(Process p, String prefix) throws Exception {
    BufferedReader out =
        new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
    StringBuilder all = new StringBuilder();
    String line;
    while ((line = out.readLine()) != null) {
      all.append(line).append('\n');
      if (line.startsWith(prefix)) {
        return line;
      }
    }
    throw new AssertionError("child ended without '" + prefix + "':\n" + all);
  }

  @Test
  void backupAndPruneProcessesAtTheSameTimeBothFinishAndLoseNothing() throws Exception {
    Path dir = tmp.resolve("repo");
    Map<String, String> expected = new HashMap<>();
    byte[] data = TestImages.mixed(8 << 20, 3);
    Manifest old;
    try (Repository r = Repository.init(dir, SMALL)) {
      old = backup(r, "vda", TestImages.write(tmp.resolve("old.raw"), data), "h").manifest();
      TestImages.modify(data, 30, 16, 4);
      Manifest keep =
          backup(r, "vda", TestImages.write(tmp.resolve("keep.raw"), data), "h").manifest();
      expected.put(keep.id(), TestImages.sha256(data));
      r.lock(LockKind.SHARED, "forget", Duration.ZERO);
      r.forgetSnapshots(List.of(old.id()), false);
    }
    TestImages.modify(data, 30, 16, 5);
    Path next = TestImages.write(tmp.resolve("next.raw"), data);
    byte[] other = TestImages.mixed(8 << 20, 6);
    Path otherImage = TestImages.write(tmp.resolve("other.raw"), other);
    Process b1 = child(dir.toString(), "backup", next.toString());
    Process pr = child(dir.toString(), "prune");
    Process b2 = child(dir.toString(), "backup", otherImage.toString());
    String id1 = await(b1, "done").substring(5);
    String pruned = await(pr, "done").substring(5);
    String id2 = await(b2, "done").substring(5);
    for (Process p : List.of(b1, pr, b2)) {
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).isZero();
    }
    assertThat(Integer.parseInt(pruned)).as("packs pruned").isPositive();
    expected.put(id1, TestImages.sha256(data));
    expected.put(id2, TestImages.sha256(other));
    assertThat(new LocalBlobStore(dir).list(BlobType.LOCK)).isEmpty();
    try (Repository r = Repository.open(dir)) {
      assertValid(r, expected, tmp);
    }
  }

  /**
   * SIGTERM releases the lock; SIGKILL leaves it, stale (its process is gone), and in a directory
   * repository the next taker it conflicts with removes it (a killed prune used to block every
   * later command until 'granule unlock', audit12), while a taker it does not conflict with leaves
   * it for 'granule unlock' to list and remove.
   */
  @Test
  void sigtermReleasesTheLockAndTheNextTakerRemovesWhatSigkillLeft() throws Exception {
    Path dir = tmp.resolve("repo");
    Repository.init(dir, SMALL).close();
    LocalBlobStore store = new LocalBlobStore(dir);

    Process held = child(dir.toString(), "hold");
    await(held, "locked");
    assertThat(store.list(BlobType.LOCK)).hasSize(1);
    held.destroy(); // SIGTERM: the shutdown hook deletes the lock
    assertThat(held.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(store.list(BlobType.LOCK)).as("released on SIGTERM").isEmpty();

    Process killed = child(dir.toString(), "hold");
    await(killed, "locked");
    long pid = killed.pid();
    killed.destroyForcibly(); // SIGKILL: nothing runs
    assertThat(killed.waitFor(30, TimeUnit.SECONDS)).isTrue();
    try (Repository r = Repository.open(dir)) {
      List<LockManager.Status> locks = r.locks().list();
      assertThat(locks)
          .singleElement()
          .satisfies(
              s -> {
                assertThat(s.stale()).isTrue();
                assertThat(s.why()).contains("process " + pid + " no longer runs on this host");
              });
      assertThat(locks.get(0).holderGone()).as("proven gone: this boot, this namespace").isTrue();
      // A shared lock does not conflict with the stale shared one, which stays.
      r.release(r.lock(LockKind.SHARED, "ls", Duration.ZERO));
      assertThat(r.locks().list()).hasSize(1);
      // A prune conflicts with it: removed, not a refusal
      r.release(r.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO));
    }
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }
}
