package io.granule.engine.internal.app;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Which backed-up disk holds an application's data path, on real loop devices: a bare filesystem on
 * an image, and a partition of a partitioned image.
 */
class DiskCoverageTest {
  @TempDir Path tmp;
  String dev;
  Path mnt;

  static String sh(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(String.join(" ", cmd) + ": " + out).isZero();
    return out;
  }

  void requireRoot() {
    if (!"root".equals(System.getProperty("user.name"))) {
      String why = "needs root for losetup and mount";
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("DiskCoverageTest " + why + " and CI runs as root");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
  }

  @AfterEach
  void unmount() throws Exception {
    if (mnt != null) {
      new ProcessBuilder("umount", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    }
    if (dev != null) {
      new ProcessBuilder("losetup", "-d", dev).start().waitFor(30, TimeUnit.SECONDS);
    }
  }

  /**
   * A 32 MiB ext4 image at {@code img}, on a loop device ({@link #dev}) mounted at {@link #mnt};
   * returns its directory pg/data.
   */
  Path mountedImage(Path img) throws Exception {
    requireRoot();
    sh("truncate", "-s", "32M", img.toString());
    sh("mkfs.ext4", "-q", "-F", img.toString());
    dev = sh("losetup", "-f", "--show", img.toString());
    mnt = Files.createDirectories(tmp.resolve("m"));
    sh("mount", dev, mnt.toString());
    return Files.createDirectories(mnt.resolve("pg/data"));
  }

  @Test
  void aBareFilesystemIsHeldByItsImageAndItsLoopDevice() throws Exception {
    Path img = tmp.resolve("a.img");
    Path data = mountedImage(img);
    Path other = tmp.resolve("other.img");
    Files.write(other, new byte[4096]);

    DiskCoverage c = new DiskCoverage();
    assertThat(c.covers(List.of(img), data)).contains(true);
    assertThat(c.covers(List.of(other, Path.of(dev)), data)).contains(true);
    assertThat(c.covers(List.of(other), data)).contains(false);
    // not on any block device here, or not here at all: cannot tell
    assertThat(c.covers(List.of(img), Path.of("/proc/self"))).isEmpty();
    assertThat(c.covers(List.of(img), tmp.resolve("no/such/dir"))).isEmpty();
  }

  /**
   * An image whose name ends in a space, then renamed after its loop device was set up: sysfs shows
   * the old name (it was trimmed, then compared by name only, so the data was reported as not in
   * the backup). The file is matched by device and inode.
   */
  @Test
  void anImageIsFoundByIdentityWhateverTheNameItsLoopDeviceShows() throws Exception {
    Path img = tmp.resolve("vm disk.img ");
    Path data = mountedImage(img);
    Path trimmed = Files.write(tmp.resolve("vm disk.img"), new byte[4096]);

    DiskCoverage c = new DiskCoverage();
    assertThat(c.covers(List.of(img), data)).contains(true);
    assertThat(c.covers(List.of(trimmed), data))
        .as("the trimmed name is another file")
        .contains(false);
    Path renamed = Files.move(img, tmp.resolve("renamed.img"));
    assertThat(c.covers(List.of(renamed), data)).contains(true);
  }

  @Test
  void aPartitionAttachedAtItsOffsetIsHeldByTheImage() throws Exception {
    // this kernel's loop driver does not scan partitions (no loopNp1): attach the partition
    // itself at its offset, as a VM host does with kpartx-less setups
    requireRoot();
    Path img = tmp.resolve("p.img");
    sh("truncate", "-s", "48M", img.toString());
    sh("sgdisk", "-o", "-n", "1:2048:+30M", img.toString());
    dev =
        sh(
            "losetup",
            "-f",
            "--show",
            "-o",
            Long.toString(2048L * 512),
            "--sizelimit",
            Long.toString(30L << 20),
            img.toString());
    sh("mkfs.ext4", "-q", "-F", dev);
    mnt = Files.createDirectories(tmp.resolve("m"));
    sh("mount", dev, mnt.toString());
    Path data = Files.createDirectories(mnt.resolve("mysql"));

    DiskCoverage c = new DiskCoverage();
    assertThat(c.covers(List.of(img), data)).contains(true);
    assertThat(c.covers(List.of(Path.of(dev)), data)).contains(true);
    assertThat(c.covers(List.of(tmp.resolve("p.img.missing")), data)).contains(false);
  }

  @Test
  void mountinfoEscapesAndTheLongestMountPointWin() throws Exception {
    Path mi = tmp.resolve("mountinfo");
    Files.writeString(
        mi,
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
            + "2 1 7:3 / /srv/my\\040data rw - ext4 /dev/loop3 rw\n"
            + "3 1 7:4 / /srv rw - ext4 /dev/loop4 rw\n");
    DiskCoverage c = new DiskCoverage(mi, tmp.resolve("sys"));
    assertThat(c.deviceOf(Path.of("/srv/my data/pg"))).isEqualTo("7:3");
    assertThat(c.deviceOf(Path.of("/srv/other"))).isEqualTo("7:4");
    assertThat(c.deviceOf(Path.of("/home"))).isEqualTo("8:1");
    assertThat(Optional.ofNullable(c.deviceOf(Path.of("/srv/my")))).contains("7:4");
  }
}
