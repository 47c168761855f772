package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Audit11 F4: who can write a block device cannot be known (another node of it, a descriptor held
 * open), and a user wrote a qcow2 header naming root's file onto root's 0600 loop device through
 * his own node of it; the backup probed it, followed the header as root and stored root's file. A
 * block device is read as raw now unless {@code --format} names its format, and the backup says
 * what it looks like.
 */
class DeviceFormatTest {
  @TempDir Path tmp;

  @Test
  void aDeviceHoldingAQcow2IsReadAsRawUnlessItsFormatIsGiven() throws Exception {
    RepositoryCliTest.requireQemuImg();
    if (!"root".equals(System.getProperty("user.name"))) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("a loop device needs root (losetup) and CI runs as root");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, "a loop device needs root");
    }
    Path raw = RepositoryCliTest.image(tmp.resolve("base.img"), 4, 7);
    RepositoryCliTest.qemuImg(tmp, "convert", "-f", "raw", "-O", "qcow2", "base.img", "vm.qcow2");
    Path backing = Files.copy(tmp.resolve("vm.qcow2"), tmp.resolve("device.img"));
    try (RandomAccessFile f = new RandomAccessFile(backing.toFile(), "rw")) {
      f.setLength(16L << 20);
    }
    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    String dev = FreezeTest.sh("losetup", "--find", "--show", backing.toString());
    try {
      Granule.Result r =
          Granule.run(tmp, "backup", "--repo", repo.toString(), "--json", "--disk", "d=" + dev);
      assertThat(r.exitCode()).as(r.err()).isZero();
      JsonNode out = Api.JSON.readTree(r.out());
      JsonNode d = out.get("snapshot").get("disks").get(0);
      assertThat(d.get("format").asText()).isEqualTo("raw");
      assertThat(d.get("size").asLong()).as("the device's size").isEqualTo(16L << 20);
      assertThat(out.get("notes").toString())
          .contains(
              "disk d: "
                  + dev
                  + " looks like qcow2; read as raw: give --format qcow2 to read it as qcow2");
      Path restored = tmp.resolve("d.restored");
      r =
          Granule.run(
              tmp,
              "restore",
              "disk",
              "latest:d",
              "--repo",
              repo.toString(),
              "--to",
              restored.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(restored))
          .as("the device's bytes")
          .isEqualTo(RepositoryCliTest.sha256(backing));

      r =
          Granule.run(
              tmp,
              "backup",
              "--repo",
              repo.toString(),
              "--json",
              "--format",
              "qcow2",
              "--disk",
              "e=" + dev);
      assertThat(r.exitCode()).as(r.err()).isZero();
      out = Api.JSON.readTree(r.out());
      d = out.get("snapshot").get("disks").get(0);
      assertThat(d.get("format").asText()).isEqualTo("qcow2");
      assertThat(d.get("size").asLong()).as("the qcow2's virtual size").isEqualTo(4L << 20);
      assertThat(out.get("notes").toString()).doesNotContain("looks like");
      Path virtual = tmp.resolve("e.restored");
      r =
          Granule.run(
              tmp,
              "restore",
              "disk",
              "latest:e",
              "--repo",
              repo.toString(),
              "--to",
              virtual.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(virtual)).isEqualTo(RepositoryCliTest.sha256(raw));
    } finally {
      FreezeTest.sh("losetup", "--detach", dev);
    }
  }

  @Test
  void aPlainTextBackupSaysOnceWhatTheDeviceLooksLike() throws Exception {
    RepositoryCliTest.requireQemuImg();
    if (!"root".equals(System.getProperty("user.name"))) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("a loop device needs root (losetup) and CI runs as root");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, "a loop device needs root");
    }
    RepositoryCliTest.qemuImg(tmp, "create", "-q", "-f", "qcow2", "vm.qcow2", "1M");
    Path backing = Files.copy(tmp.resolve("vm.qcow2"), tmp.resolve("device.img"));
    try (RandomAccessFile f = new RandomAccessFile(backing.toFile(), "rw")) {
      f.setLength(1L << 20);
    }
    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    String dev = FreezeTest.sh("losetup", "--find", "--show", backing.toString());
    try {
      Granule.Result r =
          Granule.run(
              tmp, "backup", "--repo", repo.toString(), "--no-progress", "--disk", "d=" + dev);
      assertThat(r.exitCode()).as(r.err()).isZero();
      String all = r.out() + r.err();
      String note = "disk d: " + dev + " looks like qcow2; read as raw";
      assertThat(all).contains(note);
      assertThat(all.indexOf(note)).isEqualTo(all.lastIndexOf(note));
      assertThat(r.out()).containsPattern("disk d +1\\.0 MiB +raw");
    } finally {
      FreezeTest.sh("losetup", "--detach", dev);
    }
  }
}
