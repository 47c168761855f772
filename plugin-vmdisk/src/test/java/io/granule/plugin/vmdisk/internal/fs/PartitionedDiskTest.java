package io.granule.plugin.vmdisk.internal.fs;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.volume.Partition;
import io.granule.engine.internal.volume.PartitionTable;
import io.granule.engine.internal.volume.PartitionTableReader;
import io.granule.engine.internal.volume.Volume;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.FileSystemType;
import io.granule.plugin.vmdisk.internal.fs.ext4.Ext4FileSystemType;
import io.granule.plugin.vmdisk.internal.fs.ntfs.NtfsFileSystemType;
import io.granule.plugin.vmdisk.internal.fs.xfs.XfsFileSystemType;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Filesystems inside MBR (logical partitions) and GPT partition tables, found by the engine's
 * partition table reader and probed by every filesystem type, the way a restore finds them.
 */
class PartitionedDiskTest {
  private static final long MIB = 1 << 20;
  private static final List<FileSystemType> TYPES =
      List.of(new Ext4FileSystemType(), new XfsFileSystemType(), new NtfsFileSystemType());

  @TempDir static Path shared;
  static Path tree;
  static Path ext4;
  static Path xfs;
  @TempDir Path dir;

  @BeforeAll
  static void buildFilesystems() throws Exception {
    Tools.require("mkfs.ext4", "e2fsprogs");
    Tools.require("mkfs.xfs", "xfsprogs");
    tree = FixtureTree.build(shared.resolve("tree"), 50, 0, 300_000, false);
    ext4 = shared.resolve("ext4.img");
    Tools.run(null, "mkfs.ext4", "-q", "-F", "-d", tree.toString(), ext4.toString(), "16M");
    xfs = shared.resolve("xfs.img");
    sparse(xfs, 64 * MIB);
    Path proto = shared.resolve("proto");
    Files.writeString(proto, Protofile.of(tree), StandardCharsets.UTF_8);
    Tools.run(
        null,
        "env",
        "TEST_DIR=1",
        "TEST_DEV=1",
        "QA_CHECK_FS=1",
        "mkfs.xfs",
        "-q",
        "-f",
        "-p",
        proto.toString(),
        xfs.toString());
  }

  @Test
  void filesystemsInLogicalMbrPartitions() throws Exception {
    Tools.require("sfdisk", "fdisk");
    Path img = dir.resolve("mbr.img");
    sparse(img, 128 * MIB);
    Tools.run(
        "label: dos\nunit: sectors\nstart=2048, size=8192, type=83\n"
            + "start=10240, size=200000, type=5\nstart=12288, size=32768, type=83\n"
            + "start=47104, size=131072, type=83\n",
        "sfdisk",
        "-q",
        img.toString());
    dd(ext4, img, 12288 * 512L);
    dd(xfs, img, 47104 * 512L);
    try (FileDisk disk = new FileDisk(img)) {
      PartitionTable table = PartitionTableReader.read(disk);
      assertThat(table.partitions()).extracting(Partition::name).containsExactly("p1", "p5", "p6");
      assertThat(probe(PartitionTable.volume(disk, table.partition("p1")))).isNull();
      assertTree(PartitionTable.volume(disk, table.partition("p5")), "ext4");
      assertTree(PartitionTable.volume(disk, table.partition("p6")), "xfs");
    }
  }

  @Test
  void filesystemsInGptPartitions() throws Exception {
    Tools.require("sgdisk", "gdisk");
    Path img = dir.resolve("gpt.img");
    sparse(img, 128 * MIB);
    Tools.run(
        null,
        "sgdisk",
        "-n",
        "1:2048:+16M",
        "-t",
        "1:8300",
        "-n",
        "2:0:+64M",
        "-t",
        "2:8300",
        img.toString());
    dd(ext4, img, 2048 * 512L);
    dd(xfs, img, (2048 + 32768) * 512L);
    try (FileDisk disk = new FileDisk(img)) {
      PartitionTable table = PartitionTableReader.read(disk);
      assertTree(PartitionTable.volume(disk, table.partition("p1")), "ext4");
      assertTree(PartitionTable.volume(disk, table.partition("p2")), "xfs");
    }
  }

  @Test
  void bareFilesystemWithoutPartitionTable() throws Exception {
    try (FileDisk disk = new FileDisk(xfs)) {
      PartitionTable table = PartitionTableReader.read(disk);
      assertThat(table.scheme()).isEqualTo(PartitionTable.Scheme.NONE);
      assertTree(PartitionTable.volume(disk, table.partition("whole")), "xfs");
    }
    try (FileDisk disk = new FileDisk(ext4)) {
      assertTree(
          PartitionTable.volume(disk, PartitionTableReader.read(disk).partition("whole")), "ext4");
    }
  }

  private static void assertTree(Volume volume, String expectedType) throws Exception {
    FileSystemType type = probe(volume);
    assertThat(type).isNotNull();
    assertThat(type.name()).isEqualTo(expectedType);
    try (FileSystem fs = type.open(volume)) {
      TreeAssert.assertSameTree(fs, tree, expectedType.equals("ext4"), "lost+found");
    }
  }

  private static FileSystemType probe(Volume volume) throws Exception {
    FileSystemType best = null;
    int bestScore = 0;
    for (FileSystemType t : TYPES) {
      int score = t.probe(volume);
      if (score > bestScore) {
        best = t;
        bestScore = score;
      }
    }
    return best;
  }

  private static void sparse(Path img, long size) throws Exception {
    try (FileChannel ch =
        FileChannel.open(img, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.allocate(1), size - 1);
    }
  }

  private static void dd(Path from, Path to, long offset) throws Exception {
    Tools.run(
        null,
        "dd",
        "if=" + from,
        "of=" + to,
        "bs=64k",
        "seek=" + offset,
        "oflag=seek_bytes",
        "conv=notrunc,sparse",
        "status=none");
  }
}
