package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryStats;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * Prune time on a generated history. Not a test: run by hand like {@code RepositoryBench}.
 *
 * <p>Arguments: work directory, image size in MiB (default 1024), snapshots (default 8), percent of
 * 4 KiB blocks changed between snapshots (default 10), snapshots kept (default 2). Default
 * repository settings (512 KiB chunks, 16 MiB packs), unencrypted.
 */
public final class PruneBench {
  private PruneBench() {}

  public static void main(String[] args) throws Exception {
    Path work = Path.of(args[0]);
    int mib = args.length > 1 ? Integer.parseInt(args[1]) : 1024;
    int snaps = args.length > 2 ? Integer.parseInt(args[2]) : 8;
    double change = args.length > 3 ? Double.parseDouble(args[3]) : 10;
    int keep = args.length > 4 ? Integer.parseInt(args[4]) : 2;
    Files.createDirectories(work);
    byte[] data = TestImages.mixed(mib << 20, 1);
    Path image = work.resolve("vm.raw");
    Path dir = work.resolve("repo");
    long t0 = System.nanoTime();
    try (Repository repo = Repository.init(dir, RepositoryConfig.defaults())) {
      for (int i = 0; i < snaps; i++) {
        if (i > 0) {
          TestImages.modify(data, change, 16, 100 + i);
        }
        Files.write(image, data);
        PruneSupport.backup(repo, "vda", image, "h");
      }
    }
    System.out.printf(
        Locale.ROOT, "%d backups of %d MiB: %.1f s%n", snaps, mib, (System.nanoTime() - t0) / 1e9);
    try (Repository repo = Repository.open(dir)) {
      repo.lock(LockKind.SHARED, "forget", Duration.ZERO);
      List<Manifest> all = repo.snapshots();
      List<String> old = all.subList(0, all.size() - keep).stream().map(Manifest::id).toList();
      repo.forgetSnapshots(old, false);
      print("before", repo.stats());
    }
    for (boolean dry : new boolean[] {true, false}) {
      try (Repository repo = Repository.open(dir)) {
        repo.lock(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
        Pruner.Report r =
            repo.prune(new Pruner.Options(dry, 0.5, java.time.Duration.ZERO), (p, d, t) -> {});
        System.out.printf(
            Locale.ROOT,
            "prune%s: %.2f s; packs %d (%.1f MiB): deleted %d, repacked %d (%.1f MiB written),"
                + " kept %d; index blobs replaced %d, written %d; freed %.1f MiB%n",
            dry ? " --dry-run" : "",
            r.seconds(),
            r.packs(),
            r.packBytes() / 1048576.0,
            r.packsDeleted(),
            r.packsRepacked(),
            r.bytesRepacked() / 1048576.0,
            r.packsKept(),
            r.indexesDeleted(),
            r.indexesWritten(),
            r.bytesFreed() / 1048576.0);
        if (!dry) {
          print("after", repo.stats());
        }
      }
    }
    try (Repository repo = Repository.open(dir)) {
      long v = System.nanoTime();
      boolean ok = repo.verify(false, VerifyListener.NONE).ok();
      System.out.printf(
          Locale.ROOT,
          "verify: %s, %.1f s%n",
          ok ? "ok" : "DAMAGED",
          (System.nanoTime() - v) / 1e9);
    }
  }

  private static void print(String when, RepositoryStats s) {
    System.out.printf(
        Locale.ROOT,
        "%s: %d snapshots, %d chunks, %d packs, %.1f MiB stored%n",
        when,
        s.snapshots(),
        s.chunks(),
        s.packs(),
        s.storedBytes() / 1048576.0);
  }
}
