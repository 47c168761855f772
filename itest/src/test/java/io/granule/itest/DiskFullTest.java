package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A repository whose filesystem fills up mid-backup: clear error, exit code 3, nothing lost. */
class DiskFullTest {
  @TempDir Path tmp;
  Path mnt;

  @AfterEach
  void unmount() throws Exception {
    if (mnt != null) {
      new ProcessBuilder("umount", "-l", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void fullRepositoryFilesystemFailsTheBackupAndKeepsTheRepositoryValid() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    if (!root && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("DiskFullTest mounts a tmpfs and needs root, which CI has");
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(root, "mounting a small tmpfs needs root");
    mnt = Files.createDirectories(tmp.resolve("small"));
    FreezeTest.sh("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt.toString());
    Path repo = mnt.resolve("repo");
    Path small = RepositoryCliTest.image(tmp.resolve("small.img"), 8, 1);
    Path big = tmp.resolve("big.img");
    byte[] b = new byte[64 << 20];
    new java.util.Random(2).nextBytes(b);
    Files.write(big, b);

    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    assertThat(
            Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", small.toString())
                .exitCode())
        .isZero();
    Granule.Result r =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", big.toString());
    assertThat(r.exitCode()).isEqualTo(3);
    assertThat(r.err()).contains("No space left on device").contains("still valid");

    r = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(r.exitCode()).as(r.out()).isZero();
    Path out = tmp.resolve("out.img");
    r =
        Granule.run(
            tmp, "restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(RepositoryCliTest.sha256(out)).isEqualTo(RepositoryCliTest.sha256(small));

    // Not a byte left (not even for a lock), then mounted read-only: what only reads still works
    // (it used to fail with exit 3: no lock could be written); a backup fails clearly.
    Path filler = mnt.resolve("filler");
    try (var ch =
        java.nio.channels.FileChannel.open(
            filler,
            java.nio.file.StandardOpenOption.CREATE,
            java.nio.file.StandardOpenOption.WRITE)) {
      java.nio.ByteBuffer zeros = java.nio.ByteBuffer.allocate(64 << 10);
      try {
        while (true) {
          ch.write(zeros.clear());
        }
      } catch (java.io.IOException full) {
        assertThat(full).hasMessageContaining("No space left on device");
      }
    }
    for (String mode : List.of("full", "read-only")) {
      if (mode.equals("read-only")) {
        FreezeTest.sh("mount", "-o", "remount,ro", mnt.toString());
      }
      r = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
      assertThat(r.exitCode()).as(mode + ": " + r.err()).isZero();
      assertThat(r.err()).contains("continuing without a lock");
      // a repair's dry run only reads too (audit K6: it took the exclusive lock, exit 3); the
      // repair itself needs its lock
      r = Granule.run(tmp, "repair", "--dry-run", "--repo", repo.toString(), "--no-progress");
      assertThat(r.exitCode()).as(mode + ": " + r.err()).isZero();
      assertThat(r.err()).contains("continuing without a lock");
      assertThat(r.out()).contains("no damaged packs found");
      r = Granule.run(tmp, "repair", "--repo", repo.toString(), "--no-progress");
      assertThat(r.exitCode()).as(mode + ": " + r.err()).isEqualTo(3);
      assertThat(r.err()).contains("unable to lock the repository");
      Path again = tmp.resolve("again-" + mode + ".img");
      r =
          Granule.run(
              tmp,
              "restore",
              "disk",
              "latest",
              "--repo",
              repo.toString(),
              "--to",
              again.toString());
      assertThat(r.exitCode()).as(mode + ": " + r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(again)).isEqualTo(RepositoryCliTest.sha256(small));
      r = Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", small.toString());
      assertThat(r.exitCode()).as(mode).isEqualTo(3);
      assertThat(r.err()).contains("unable to lock the repository");
    }
  }

  /**
   * A restore target whose filesystem fills up: exit code 7 (the target's fault), naming it, and
   * nothing left behind. A stream restore said exit code 3, as if the repository had failed.
   */
  @Test
  void fullTargetFilesystemFailsTheRestoreWithTheTargetsExitCode() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    if (!root && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("DiskFullTest mounts a tmpfs and needs root, which CI has");
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(root, "mounting a small tmpfs needs root");
    Path repo = tmp.resolve("repo");
    Path data = tmp.resolve("dump.bin");
    byte[] b = new byte[8 << 20];
    new java.util.Random(3).nextBytes(b);
    Files.write(data, b);
    Granule.Result r =
        Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    r =
        Granule.run(
            tmp,
            "backup",
            "--repo",
            repo.toString(),
            "--stream",
            "dump=" + data,
            "--disk",
            "vda=" + data,
            "--no-progress");
    assertThat(r.exitCode()).as(r.err()).isZero();
    mnt = Files.createDirectories(tmp.resolve("target"));
    FreezeTest.sh("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt.toString());
    Path out = mnt.resolve("dump.out");
    r =
        Granule.run(
            tmp,
            "restore",
            "stream",
            "latest:dump",
            "--repo",
            repo.toString(),
            "--to",
            out.toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(7);
    assertThat(r.err()).contains("No space left on device").contains(out.toString());
    Path disk = mnt.resolve("vda.img");
    r =
        Granule.run(
            tmp,
            "restore",
            "disk",
            "latest:vda",
            "--repo",
            repo.toString(),
            "--to",
            disk.toString(),
            "--no-progress");
    assertThat(r.exitCode()).as(r.err()).isEqualTo(7);
    try (var left = Files.list(mnt)) {
      assertThat(left.toList()).as("nothing left on the full filesystem").isEmpty();
    }
  }

  /**
   * A temporary directory mounted noexec (a common hardening of /tmp): zstd-jni cannot load its
   * library there. The backup's worker threads died with that error and the backup waited for them
   * forever, holding its locks; it now fails at once naming the cause.
   */
  @Test
  void aNoexecTemporaryDirectoryFailsTheBackupClearlyInsteadOfHanging() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    if (!root && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("mounting a noexec tmpfs needs root, which CI has");
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(root, "mounting a noexec tmpfs needs root");
    mnt = Files.createDirectories(tmp.resolve("noexec"));
    FreezeTest.sh("mount", "-t", "tmpfs", "-o", "size=64m,noexec", "tmpfs", mnt.toString());
    Path repo = tmp.resolve("repo");
    Path disk = RepositoryCliTest.image(tmp.resolve("d.img"), 8, 3);
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    long started = System.nanoTime();
    Granule.Result r =
        Granule.run(
            tmp,
            java.util.Map.of("JAVA_TOOL_OPTIONS", "-Djava.io.tmpdir=" + mnt),
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            disk.toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(3);
    assertThat(r.err()).contains("zstd's native library could not be loaded").contains("noexec");
    assertThat(System.nanoTime() - started).isLessThan(java.time.Duration.ofSeconds(50).toNanos());
    assertThat(
            Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", disk.toString())
                .exitCode())
        .isZero();
  }
}
