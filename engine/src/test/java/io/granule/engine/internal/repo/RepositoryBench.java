package io.granule.engine.internal.repo;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.VerifyListener;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * End-to-end throughput of backup, incremental backup, restore and verify on a generated image. Not
 * a test: run by hand, see docs/formats.md for the command and the latest figures.
 *
 * <p>Arguments: work directory, image size in MiB (default 256), chunk size in KiB (default 1024).
 */
public final class RepositoryBench {
  private RepositoryBench() {}

  public static void main(String[] args) throws Exception {
    Path work = Path.of(args[0]);
    int mib = args.length > 1 ? Integer.parseInt(args[1]) : 256;
    int chunkKib = args.length > 2 ? Integer.parseInt(args[2]) : 1024;
    Files.createDirectories(work);
    byte[] data = TestImages.mixed(mib << 20, 1);
    Path image = TestImages.write(work.resolve("vm.raw"), data);
    RepositoryConfig cfg = RepositoryConfig.defaults().withChunkSize(chunkKib << 10);
    Path dir = work.resolve("repo-" + chunkKib);
    try (Repository repo = Repository.init(dir, cfg)) {
      BackupResult full = timed("full backup", data.length, () -> run(repo, image));
      long changed = TestImages.modify(data, 1.0, 16, 2);
      Files.write(image, data);
      BackupResult inc = timed("incremental", data.length, () -> run(repo, image));
      System.out.printf(
          java.util.Locale.ROOT,
          "chunk %d KiB: full stored %.1f MiB, incremental stored %.2f MiB for %.2f MiB changed"
              + " (%.2fx)%n",
          chunkKib,
          full.progress().bytesNew() / 1048576.0,
          inc.progress().bytesNew() / 1048576.0,
          changed / 1048576.0,
          (double) inc.progress().bytesNew() / changed);
      Path out = work.resolve("restored.raw");
      Files.deleteIfExists(out);
      timed("restore", data.length, () -> repo.restoreDisk(inc.manifest(), "vda", out));
      timed("verify --read-data", data.length, () -> repo.verify(true, VerifyListener.NONE));
    }
  }

  private static BackupResult run(Repository repo, Path image) throws Exception {
    try (RawDiskImage img = RawDiskImage.open(image)) {
      return repo.backup(
          new BackupRequest(List.of(new BackupRequest.NamedDisk("vda", img)), "bench", null, null),
          BackupListener.NONE);
    }
  }

  private interface Step<T> {
    T run() throws Exception;
  }

  private static <T> T timed(String what, long bytes, Step<T> step) throws Exception {
    long t0 = System.nanoTime();
    T r = step.run();
    double s = (System.nanoTime() - t0) / 1e9;
    System.out.printf(
        java.util.Locale.ROOT, "%-20s %7.2f s %8.1f MB/s%n", what, s, bytes / s / 1e6);
    return r;
  }
}
