package io.granule.itest;

import static io.granule.itest.RepositoryCliTest.qemuImg;
import static io.granule.itest.RepositoryCliTest.requireQemuImg;
import static io.granule.itest.RepositoryCliTest.sha256;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Physical-to-virtual through the real executable jar: a raw "physical" disk is backed up, then
 * restored as qcow2, VMDK and VHDX images that {@code qemu-img check} accepts and {@code qemu-img
 * convert} reads back byte-identical; a killed restore leaves no image that looks complete.
 */
class VmImageRestoreTest {
  private static final Map<String, String> ENV = Map.of("GRANULE_PASSWORD", "itest-password");

  @TempDir Path tmp;

  /** A raw disk of {@code mib} MiB plus three sectors of random data at the end. */
  private static Path physicalDisk(Path p, int mib) throws Exception {
    RepositoryCliTest.image(p, mib, 9);
    byte[] tail = new byte[3 * 512];
    new Random(3).nextBytes(tail);
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(tail), (long) mib << 20);
    }
    return p;
  }

  private Granule.Result granule(String... args) throws Exception {
    return Granule.run(tmp, ENV, args);
  }

  private Path backup(int mib) throws Exception {
    Path repo = tmp.resolve("repo");
    Path disk = physicalDisk(tmp.resolve("sda.raw"), mib);
    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    r = granule("backup", "--repo", repo.toString(), "--disk", disk.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    return repo;
  }

  @Test
  void physicalDiskRestoresAsQcow2VmdkAndVhdxThatQemuAccepts() throws Exception {
    requireQemuImg();
    Path repo = backup(20);
    String expected = sha256(tmp.resolve("sda.raw"));
    for (String fmt : List.of("qcow2", "vmdk", "vhdx")) {
      Path vm = tmp.resolve("vm." + fmt);
      Granule.Result r =
          granule("restore", "disk", "latest", "--repo", repo.toString(), "--to", vm.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(r.out())
          .contains("writing a " + fmt + " image (from the extension ." + fmt + ")")
          .contains("(" + fmt + "): ");
      assertThat(Files.exists(tmp.resolve("vm." + fmt + ".partial"))).isFalse();
      // a disk holds everything on it: the owner's alone, whatever the umask
      assertThat(
              java.nio.file.attribute.PosixFilePermissions.toString(
                  Files.getPosixFilePermissions(vm)))
          .as(fmt)
          .isEqualTo("rw-------");
      assertThat(qemu("check", "-f", fmt, vm.toString())).contains("No errors were found");
      Path back = tmp.resolve("back-" + fmt + ".raw");
      qemuImg(tmp, "convert", "-f", fmt, "-O", "raw", vm.toString(), back.toString());
      assertThat(sha256(back)).as(fmt).isEqualTo(expected);
    }

    // --format wins over the extension; the output says which was chosen.
    Path img = tmp.resolve("vm.img");
    Granule.Result r =
        granule(
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            img.toString(),
            "--format",
            "qcow2");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("writing a qcow2 image (from --format)");
    assertThat(qemu("info", "--output=json", img.toString())).contains("\"format\": \"qcow2\"");

    // A format that cannot be written, and a device, are refused clearly.
    r =
        granule(
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            tmp.resolve("vm.vhd").toString(),
            "--format",
            "vhd");
    assertThat(r.exitCode()).isEqualTo(2);
    assertThat(r.err())
        .contains("disk image format 'vhd' cannot be restored to (formats that can: raw, qcow2");
    assertThat(Files.exists(tmp.resolve("vm.vhd"))).isFalse();
    // a character device swallows what is written: refused, whatever the format
    r =
        granule(
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            "/dev/null",
            "--force",
            "--format",
            "vmdk");
    assertThat(r.exitCode()).isEqualTo(7);
    assertThat(r.err()).contains("'/dev/null' is a character device, not a file or a block device");
    if (!"root".equals(System.getProperty("user.name"))) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("a block device target needs root (losetup) and CI runs as root");
      }
      return; // a developer's laptop: the block device case needs root
    }
    Path backing = tmp.resolve("loop-backing.img");
    try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
      f.setLength(64L << 20);
    }
    String dev = FreezeTest.sh("losetup", "-f", "--show", backing.toString());
    try {
      r =
          granule(
              "restore",
              "disk",
              "latest",
              "--repo",
              repo.toString(),
              "--to",
              dev,
              "--force",
              "--format",
              "vmdk");
      assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
      assertThat(r.err()).contains("'" + dev + "' is a block device, which is written raw");
    } finally {
      FreezeTest.sh("losetup", "-d", dev);
    }
  }

  /** The size of {@code f}, 0 if it is not there (a restore that finished renamed it meanwhile). */
  private static long sizeOrZero(Path f) throws java.io.IOException {
    try {
      return Files.size(f);
    } catch (java.nio.file.NoSuchFileException e) {
      return 0;
    }
  }

  @Test
  void aKilledRestoreLeavesNoImageThatLooksComplete() throws Exception {
    requireQemuImg();
    Path repo = backup(48);
    Path vm = tmp.resolve("vm.qcow2");
    Path partial = tmp.resolve("vm.qcow2.partial");
    boolean caught = false;
    for (int attempt = 0; attempt < 5 && !caught; attempt++) {
      ProcessBuilder pb =
          Granule.command(
              List.of(),
              "restore",
              "disk",
              "latest",
              "--repo",
              repo.toString(),
              "--to",
              vm.toString());
      pb.environment().putAll(ENV);
      Process p =
          pb.directory(tmp.toFile())
              .redirectOutput(ProcessBuilder.Redirect.DISCARD)
              .redirectError(ProcessBuilder.Redirect.DISCARD)
              .start();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      // Kill as soon as data reaches the partial file: mid-restore.
      while (p.isAlive() && System.nanoTime() < deadline) {
        if (sizeOrZero(partial) > (1 << 20)) {
          p.destroyForcibly();
          caught = true;
          break;
        }
        Thread.onSpinWait();
      }
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
      if (!caught) {
        Files.deleteIfExists(vm);
      }
    }
    assertThat(caught).as("the restore was killed while it wrote").isTrue();
    assertThat(Files.exists(vm)).isFalse();
    assertThat(Files.exists(partial)).isTrue();
    Process info =
        new ProcessBuilder("qemu-img", "info", "-f", "qcow2", partial.toString())
            .redirectErrorStream(true)
            .start();
    String out = new String(info.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(info.waitFor()).as("qemu-img info of the killed restore's file: " + out).isNotZero();
  }

  /**
   * A backup of a qcow2 image locks its backing file too: while a restore holds the write lock on
   * the backing file (this test, in its place), the backup does not start and says which file.
   */
  @Test
  void aBackupOfAQcow2LocksItsBackingFile() throws Exception {
    requireQemuImg();
    Path base = physicalDisk(tmp.resolve("base.raw"), 8);
    Path top = tmp.resolve("top.qcow2");
    qemu("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "raw", top.toString());
    Path repo = tmp.resolve("repo");
    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    byte[] before = Files.readAllBytes(base);
    try (FileChannel ch = FileChannel.open(base, StandardOpenOption.WRITE);
        java.nio.channels.FileLock writing = ch.lock(1L << 62, 1, false)) {
      r = granule("backup", "--repo", repo.toString(), "--disk", top.toString());
      assertThat(r.exitCode()).as(r.err()).isEqualTo(6);
      assertThat(r.err()).contains("is writing '" + base + "'");
    }
    r = granule("snapshots", "--repo", repo.toString(), "--json");
    assertThat(Api.JSON.readTree(r.out())).as("no snapshot").isEmpty();
    r = granule("backup", "--repo", repo.toString(), "--disk", top.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    Path restored = tmp.resolve("restored.raw");
    r =
        granule(
            "restore", "disk", "latest", "--repo", repo.toString(), "--to", restored.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(Files.readAllBytes(restored)).isEqualTo(before);
  }

  private static String qemu(String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("qemu-img"));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor()).as("qemu-img " + String.join(" ", args) + ": " + out).isZero();
    return out;
  }
}
