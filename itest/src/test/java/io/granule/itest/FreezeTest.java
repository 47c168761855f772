package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --freeze}: a real ext4 filesystem on a loop device, frozen with fsfreeze while granule
 * reads the device. The filesystem is thawed on every path: success, failed freeze, time limit, and
 * (by the next granule command) after kill -9.
 */
class FreezeTest {
  @TempDir Path tmp;
  Path mnt;
  String dev;

  static String sh(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError(String.join(" ", cmd) + " hung");
    }
    if (p.exitValue() != 0) {
      throw new AssertionError(String.join(" ", cmd) + " failed: " + out);
    }
    return out;
  }

  /** Whether a write to the mount finishes within two seconds (a frozen one blocks). */
  boolean writable() throws Exception {
    Process p =
        new ProcessBuilder(
                "sh",
                "-c",
                // a write blocks on a frozen filesystem (sb_start_write); no sync: under disk load
                // a flush alone took more than the 2 s (audit15)
                "echo probe > '" + mnt + "/probe.txt'")
            .start();
    boolean done = p.waitFor(2, TimeUnit.SECONDS);
    if (!done) {
      // still blocked: leave it, the thaw in @AfterEach releases it
      return false;
    }
    return p.exitValue() == 0;
  }

  /**
   * Stops backup {@code p} (SIGSTOP) once its filesystem is frozen and no fsfreeze child of it
   * runs: true then; false if its thaw began first ({@code fsfreeze -u}) or it ended (it is left
   * stopped only when true).
   */
  private boolean stoppedWhileFrozen(Process p) throws Exception {
    Path records = Path.of("/run/granule/frozen");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (!(Files.isDirectory(records) && Files.list(records).findAny().isPresent())) {
      assertThat(System.nanoTime()).as("the backup never froze").isLessThan(deadline);
      if (!p.isAlive()) {
        return false;
      }
      Thread.sleep(10);
    }
    String pid = Long.toString(p.pid());
    while (true) {
      assertThat(System.nanoTime()).as("the backup never froze").isLessThan(deadline);
      if (!p.isAlive()) {
        return false;
      }
      new ProcessBuilder("kill", "-STOP", pid).start().waitFor();
      Process ps = new ProcessBuilder("ps", "--ppid", pid, "-o", "stat=,args=").start();
      List<String> children =
          new String(ps.getInputStream().readAllBytes(), StandardCharsets.UTF_8)
              .lines()
              .map(String::trim)
              .filter(l -> !l.isEmpty())
              .toList();
      ps.waitFor();
      if (children.stream().anyMatch(l -> l.contains("fsfreeze") && l.contains(" -u"))) {
        return false; // thawing
      }
      // any child still alive, not only one named fsfreeze: a child being spawned shows as java
      // (jspawnhelper) until it runs fsfreeze, and ran fsfreeze -u once the backup was stopped
      // (CI: "still frozen after kill -9" found it thawed)
      boolean freezing = children.stream().anyMatch(l -> !l.startsWith("Z"));
      if (!freezing && !writable()) {
        return true;
      }
      new ProcessBuilder("kill", "-CONT", pid).start().waitFor();
      Thread.sleep(20);
    }
  }

  @BeforeEach
  void mount() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    String why = "needs root, losetup, mkfs.ext4 and fsfreeze";
    if (!root) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("FreezeTest " + why + " and CI runs as root");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
    Path img = tmp.resolve("disk.img");
    try (FileChannel ch =
        FileChannel.open(img, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.truncate(0);
      ch.write(ByteBuffer.wrap(new byte[1]), (768L << 20) - 1);
    }
    sh("mkfs.ext4", "-q", "-F", img.toString());
    dev = sh("losetup", "-f", "--show", img.toString());
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    sh("mount", dev, mnt.toString());
    // 512 MiB of random data, so that reading the device takes a while
    byte[] buf = new byte[1 << 20];
    Random rnd = new Random(11);
    try (FileChannel ch =
        FileChannel.open(
            mnt.resolve("data.bin"), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      for (int i = 0; i < 512; i++) {
        rnd.nextBytes(buf);
        ch.write(ByteBuffer.wrap(buf));
      }
    }
    Files.writeString(mnt.resolve("hello.txt"), "hello\n");
    sh("sync");
  }

  @AfterEach
  void unmount() throws Exception {
    if (dev == null) {
      return;
    }
    new ProcessBuilder("fsfreeze", "-u", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder("umount", "-l", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder("losetup", "-d", dev).start().waitFor(30, TimeUnit.SECONDS);
  }

  Granule.Result granule(String... args) throws Exception {
    return Granule.run(tmp, args);
  }

  @Test
  void frozenBackupIsConsistentAndTheFilesystemIsThawedAfter() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "data=" + dev,
            "--freeze",
            mnt.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(writable()).isTrue();

    Path out = tmp.resolve("restored.img");
    r = granule("restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    // the restored filesystem is clean: no journal replay, no errors
    sh("e2fsck", "-fn", out.toString());
    assertThat(sh("debugfs", "-R", "cat /hello.txt", out.toString())).contains("hello");
  }

  @Test
  void freezePastItsTimeLimitIsThawedAndTheBackupFailsWithoutASnapshot() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "data=" + dev,
            "--freeze",
            mnt.toString(),
            "--freeze-timeout",
            "20ms"); // far less than reading 768 MiB takes on any machine
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(11);
    assertThat(r.err()).contains("passed its 20 ms limit");
    assertThat(writable()).isTrue();
    assertThat(granule("snapshots", "--repo", repo.toString()).out()).contains("no snapshots");
  }

  /**
   * A freeze of the filesystem holding this process's own files (its log, temporary files, caches,
   * or the root filesystem) blocked the process's next write there, a log line written before the
   * watchdog started: frozen with no limit. It is refused before anything is frozen.
   */
  @Test
  void aFilesystemHoldingThisProcesssOwnFilesIsNeverFrozen() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Path own = Files.createDirectories(mnt.resolve("tmp"));
    // the mount point itself, and a bind mount of the same filesystem (another mount entry,
    // which the check by mount entry let through: frozen for the whole limit)
    Path bind = Files.createDirectories(tmp.resolve("bind"));
    sh("mount", "--bind", mnt.toString(), bind.toString());
    try {
      for (Path target : List.of(mnt, bind)) {
        Process p =
            Granule.command(
                    List.of("-Djava.io.tmpdir=" + own),
                    "backup",
                    "--repo",
                    repo.toString(),
                    "--disk",
                    "data=" + dev,
                    "--freeze",
                    target.toString(),
                    "--no-progress")
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(out).isEqualTo(11);
        assertThat(out)
            .contains("refusing to freeze " + target)
            .contains("this process's temporary files");
        assertThat(writable()).isTrue();
      }
    } finally {
      new ProcessBuilder("fsfreeze", "-u", bind.toString()).start().waitFor(30, TimeUnit.SECONDS);
      new ProcessBuilder("umount", "-l", bind.toString()).start().waitFor(30, TimeUnit.SECONDS);
    }
  }

  /**
   * A filesystem inside an image that lives on another one being frozen: its freeze must write its
   * journal through the loop device into the frozen one, and hung until someone thawed that by hand
   * (11 min with a 15 s limit), holding the lock the watchdog, cancels and the exit hook needed.
   * The freeze now gives up after 30 s, the limit's thaw goes through, and the inner filesystem,
   * frozen once the outer thaws, is thawed too.
   */
  @Test
  void aFreezeThatHangsOnAnotherFrozenFilesystemStillEndsThawed() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Path inner = mnt.resolve("inner.img");
    sh("truncate", "-s", "64M", inner.toString());
    sh("mkfs.ext4", "-q", "-F", inner.toString());
    String innerDev = sh("losetup", "-f", "--show", inner.toString());
    Path innerMnt = Files.createDirectories(tmp.resolve("inner"));
    sh("mount", innerDev, innerMnt.toString());
    try {
      // dirty pages for the inner freeze to flush through the loop device into the outer one
      byte[] dirty = new byte[20 << 20];
      new Random(3).nextBytes(dirty);
      Files.write(innerMnt.resolve("dirty.bin"), dirty);
      long started = System.nanoTime();
      Granule.Result r =
          granule(
              "backup",
              "--repo",
              repo.toString(),
              "--disk",
              "data=" + dev,
              "--freeze",
              mnt.toString(),
              "--freeze",
              innerMnt.toString(),
              "--freeze-timeout",
              "5",
              "--no-progress");
      long seconds = (System.nanoTime() - started) / 1_000_000_000L;
      assertThat(r.exitCode()).as(r.err()).isEqualTo(11);
      assertThat(seconds).as("bounded by fsfreeze's own 30 s limit, not by a hand").isLessThan(100);
      assertThat(writable()).isTrue();
      Process probe =
          new ProcessBuilder("sh", "-c", "echo probe > '" + innerMnt + "/probe.txt'").start();
      assertThat(probe.waitFor(5, TimeUnit.SECONDS)).as("the inner filesystem is thawed").isTrue();
    } finally {
      new ProcessBuilder("fsfreeze", "-u", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
      new ProcessBuilder("fsfreeze", "-u", innerMnt.toString())
          .start()
          .waitFor(30, TimeUnit.SECONDS);
      new ProcessBuilder("umount", "-l", innerMnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
      new ProcessBuilder("losetup", "-d", innerDev).start().waitFor(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void aFreezeThatCannotBeginFreezesNothing() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Path notAMount = Files.createDirectories(mnt.resolve("sub"));
    // a second target that does not exist: every target is resolved before the first freezes
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "data=" + dev,
            "--freeze",
            mnt.toString(),
            "--freeze",
            tmp.resolve("missing").toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(11);
    assertThat(r.err()).contains("unable to begin");
    assertThat(writable()).isTrue();
    // a directory below the mount point: fsfreeze froze the whole filesystem through it, and the
    // path (resolved again at each step) could be renamed meanwhile; refused, naming the mount
    r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "data=" + dev,
            "--freeze",
            notAMount.toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(11);
    assertThat(r.err())
        .contains(
            "unable to freeze '"
                + notAMount
                + "': it is not a mount point but a directory of the filesystem mounted at '"
                + mnt.toRealPath()
                + "'")
        .contains("name '" + mnt.toRealPath() + "' instead");
    assertThat(writable()).isTrue();
  }

  @Test
  void aMountLeftFrozenByAKilledBackupIsThawedByTheNextCommand() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    List<String> args =
        new ArrayList<>(
            List.of(
                "backup",
                "--repo",
                repo.toString(),
                "--disk",
                "data=" + dev,
                "--freeze",
                mnt.toString(),
                "--freeze-timeout",
                "120"));
    // killed while the filesystem is frozen: the backup reads the device in about a second, and
    // its freeze record is written before fsfreeze runs (CI once killed it 200 ms after the
    // record, before the freeze). Stopped (SIGSTOP) it cannot thaw, but a child it started runs
    // on: an fsfreeze -f still under way (an orphan once it is killed, which postpones the next
    // command's thaw), or its fsfreeze -u (the read was over). Missed: once more
    Process p;
    for (int attempt = 1; ; attempt++) {
      p =
          Granule.command(List.of(), args.toArray(String[]::new))
              .redirectErrorStream(true)
              .redirectOutput(tmp.resolve("killed.txt").toFile())
              .start();
      if (stoppedWhileFrozen(p)) {
        break;
      }
      new ProcessBuilder("kill", "-CONT", Long.toString(p.pid())).start().waitFor();
      assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("the backup ended").isTrue();
      assertThat(attempt).as("the backup was never stopped while frozen").isLessThan(5);
    }
    p.destroyForcibly();
    p.waitFor(30, TimeUnit.SECONDS);
    assertThat(writable()).as("still frozen after kill -9").isFalse();

    Granule.Result r = granule("--version");
    assertThat(r.exitCode()).isZero();
    assertThat(writable()).as("thawed by the next granule command").isTrue();
  }

  /**
   * A writer that holds the filesystem's write level (here a splice() from an idle pipe into a file
   * on it, which any user who can write there can do) keeps {@code fsfreeze -f} waiting in the
   * kernel; a thaw meanwhile is answered EINVAL. The freeze was given up on after 30 s, "thawed"
   * (EINVAL taken for "not frozen") and forgotten, and took effect once the writer ended: frozen
   * with nothing left to thaw it. It is now waited for and thawed once it has taken effect.
   */
  @Test
  void aFreezeThatTakesEffectAfterItWasGivenUpOnIsThawed() throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Path script = tmp.resolve("splice_hold.py");
    Files.writeString(
        script,
        String.join(
            "\n",
            "import os, sys, time",
            "r, w = os.pipe()",
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)",
            "if os.fork() == 0:",
            "    os.close(r); time.sleep(float(sys.argv[2])); os.write(w, b'x'); os._exit(0)",
            "os.close(w)",
            "print('holding', flush=True)",
            "os.splice(r, fd, 65536)",
            ""));
    Process holder =
        new ProcessBuilder("python3", script.toString(), mnt.resolve("held").toString(), "40")
            .redirectErrorStream(true)
            .start();
    try {
      assertThat(new String(holder.getInputStream().readNBytes(7), StandardCharsets.UTF_8))
          .isEqualTo("holding");
      Thread.sleep(500);
      Granule.Result r =
          granule(
              "backup",
              "--repo",
              repo.toString(),
              "--disk",
              "data=" + dev,
              "--freeze",
              mnt.toString(),
              "--freeze-timeout",
              "120",
              "--no-progress");
      assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(11);
      assertThat(r.err()).contains("did not finish in 30 s");
      assertThat(holder.waitFor(60, TimeUnit.SECONDS)).as("the writer ends").isTrue();
      assertThat(writable()).as("thawed once the freeze took effect").isTrue();
      Path records = Path.of("/run/granule/frozen");
      if (Files.isDirectory(records)) {
        try (var l = Files.list(records)) {
          for (Path rec : l.toList()) {
            assertThat(Files.readString(rec)).as("a record left").doesNotContain(mnt.toString());
          }
        }
      }
    } finally {
      holder.destroyForcibly();
    }
  }
}
