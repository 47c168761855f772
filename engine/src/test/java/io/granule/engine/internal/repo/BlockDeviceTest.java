package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.RepositoryTest.backup;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Backup from and restore to a real block device (a loop device). Needs root and losetup; skipped
 * otherwise.
 */
class BlockDeviceTest {
  @TempDir Path tmp;

  private static String run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out;
    try (InputStream in = p.getInputStream()) {
      out = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim();
    }
    assumeTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0, "command failed: " + out);
    return out;
  }

  @Test
  void restoreOverwritesEveryByteOfADeviceAndBackupReadsItsSize() throws Exception {
    assumeTrue("root".equals(System.getProperty("user.name")), "needs root");
    assumeTrue(Files.isExecutable(Path.of("/usr/sbin/losetup")), "needs losetup");
    byte[] data = TestImages.mixed(6 << 20, 41);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    Path backing = tmp.resolve("device.img");
    byte[] junk = new byte[8 << 20];
    Arrays.fill(junk, (byte) 0xa5);
    Files.write(backing, junk);
    String dev = run("losetup", "--find", "--show", backing.toString());
    try (Repository repo =
        Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(1 << 16))) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      repo.restoreDisk(m, "vda", Path.of(dev));
      Path bigger = TestImages.write(tmp.resolve("big.raw"), new byte[9 << 20]);
      Manifest tooBig = backup(repo, "big", bigger, "h").manifest();
      org.assertj.core.api.Assertions.assertThatThrownBy(
              () -> repo.restoreDisk(tooBig, "big", Path.of(dev)))
          .isInstanceOf(io.granule.engine.internal.repo.RestoreTargetException.class)
          .hasMessageStartingWith(
              "unable to restore to '"
                  + dev
                  + "': the device holds 8388608 bytes, the disk needs 9437184: restore to a"
                  + " device at least that large");
      try (RawDiskImage device = RawDiskImage.open(Path.of(dev))) {
        assertThat(device.size()).isEqualTo(8 << 20);
        ByteBuffer head = ByteBuffer.allocate(data.length);
        device.read(0, head);
        assertThat(head.array()).as("zeros written explicitly").isEqualTo(data);
        ByteBuffer tail = ByteBuffer.allocate(100);
        device.read(data.length, tail);
        assertThat(tail.array()).containsOnly((byte) 0xa5);
        Manifest fromDevice = backup(repo, "dev", Path.of(dev), "h").manifest();
        assertThat(fromDevice.disk("dev").size()).isEqualTo(8 << 20);
      }
    } finally {
      run("losetup", "-d", dev);
    }
  }
}
