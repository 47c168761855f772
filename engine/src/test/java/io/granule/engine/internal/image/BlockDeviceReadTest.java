package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A block device holding a mounted filesystem, read twice: the second read must see what the
 * filesystem wrote in between. Buffered reads of the device would return the first read's pages
 * (the filesystem writes file data through its own cache, not the device's), so a second backup
 * would store stale blocks; {@link RawDiskImage} reads block devices with O_DIRECT.
 */
class BlockDeviceReadTest {
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

  @BeforeEach
  void mount() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    String why = "needs root for losetup and mount";
    if (!root) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("BlockDeviceReadTest " + why + " and CI runs as root");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
    Path img = tmp.resolve("d.img");
    sh("truncate", "-s", "64M", img.toString());
    // 4 KiB blocks; inode tables and journal initialised now, not by a background thread that
    // would change the device while the test reads it
    sh(
        "mkfs.ext4",
        "-q",
        "-F",
        "-b",
        "4096",
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        img.toString());
    dev = sh("losetup", "-f", "--show", img.toString());
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    sh("mount", dev, mnt.toString());
  }

  @AfterEach
  void unmount() throws Exception {
    if (dev != null) {
      new ProcessBuilder("umount", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
      new ProcessBuilder("losetup", "-d", dev).start().waitFor(30, TimeUnit.SECONDS);
    }
  }

  static boolean contains(RawDiskImage d, byte[] needle) throws Exception {
    ByteBuffer buf = ByteBuffer.allocate(1 << 20);
    for (long off = 0; off < d.size(); off += buf.capacity()) {
      buf.clear().limit((int) Math.min(buf.capacity(), d.size() - off));
      d.read(off, buf);
      byte[] a = buf.array();
      for (int i = 0; i + needle.length <= buf.limit(); i += 4096) {
        if (java.util.Arrays.equals(a, i, i + needle.length, needle, 0, needle.length)) {
          return true;
        }
      }
    }
    return false;
  }

  @Test
  void aSecondReadSeesWhatTheFilesystemWroteMeanwhile() throws Exception {
    byte[] block = new byte[4096];
    new Random(5).nextBytes(block);
    try (RawDiskImage d = RawDiskImage.open(Path.of(dev))) {
      assertThat(d.direct()).isTrue();
      assertThat(d.size()).isEqualTo(64L << 20);
      assertThat(contains(d, block)).isFalse();
    }
    Files.write(mnt.resolve("new.bin"), block);
    sh("sync", "-f", mnt.resolve("new.bin").toString());
    try (RawDiskImage d = RawDiskImage.open(Path.of(dev))) {
      assertThat(contains(d, block)).as("the block the filesystem wrote").isTrue();
    }
  }

  @Test
  void unalignedDirectReadsReturnTheSameBytesAsBufferedOnes() throws Exception {
    byte[] data = new byte[3 << 20];
    new Random(9).nextBytes(data);
    Files.write(mnt.resolve("r.bin"), data);
    sh("sync", "-f", mnt.resolve("r.bin").toString());
    sh("blockdev", "--flushbufs", dev);
    Random rnd = new Random(1);
    try (RawDiskImage d = RawDiskImage.open(Path.of(dev));
        var ch = java.nio.channels.FileChannel.open(Path.of(dev))) {
      for (int i = 0; i < 200; i++) {
        long off = rnd.nextLong(d.size() - 1);
        int len = (int) Math.min(d.size() - off, 1 + rnd.nextInt(3 << 20));
        ByteBuffer a = ByteBuffer.allocate(len);
        d.read(off, a);
        ByteBuffer b = ByteBuffer.allocate(len);
        while (b.hasRemaining()) {
          ch.read(b, off + b.position());
        }
        assertThat(java.util.Arrays.mismatch(a.array(), b.array()))
            .as("first differing byte of offset %d length %d", off, len)
            .isEqualTo(-1);
      }
      // the last byte of the device
      ByteBuffer last = ByteBuffer.allocate(1);
      d.read(d.size() - 1, last);
    }
  }
}
