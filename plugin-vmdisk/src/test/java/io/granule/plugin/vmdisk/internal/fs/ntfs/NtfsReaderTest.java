package io.granule.plugin.vmdisk.internal.fs.ntfs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.volume.PartitionTable;
import io.granule.engine.internal.volume.PartitionTableReader;
import io.granule.engine.internal.volume.Volume;
import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.plugin.vmdisk.internal.fs.FileDisk;
import io.granule.plugin.vmdisk.internal.fs.FixtureTree;
import io.granule.plugin.vmdisk.internal.fs.Fuzz;
import io.granule.plugin.vmdisk.internal.fs.MemoryDisk;
import io.granule.plugin.vmdisk.internal.fs.Tools;
import io.granule.plugin.vmdisk.internal.fs.TreeAssert;
import io.granule.plugin.vmdisk.internal.fs.ext4.Ext4FileSystemType;
import io.granule.plugin.vmdisk.internal.fs.xfs.XfsFileSystemType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NTFS images made by mkntfs and filled through an ntfs-3g FUSE mount (ntfscp cannot make
 * directories). Needs root and /dev/fuse; skipped without them.
 */
class NtfsReaderTest {
  private static final long MIB = 1 << 20;

  @TempDir static Path shared;
  static Path tree;
  static Path image;
  @TempDir Path dir;

  @BeforeAll
  static void buildImage() throws Exception {
    Tools.require("mkntfs", "ntfs-3g");
    Tools.require("ntfs-3g", "ntfs-3g");
    Tools.assume(FixtureTree.isRoot(), "ntfs-3g mounts need root");
    Tools.assume(Files.exists(Path.of("/dev/fuse")), "ntfs-3g mounts need /dev/fuse");
    tree = FixtureTree.build(shared.resolve("tree"), 2000, 1500, 3 * (int) MIB + 123, true);
    image = ntfs(shared, tree, 96 * MIB);
  }

  @Test
  void everyFileReadsAsItWasWritten() throws Exception {
    try (NtfsReader fs = NtfsReader.open(new FileDisk(image))) {
      assertThat(TreeAssert.assertSameTree(fs, tree, true, false)).isGreaterThan(2000);
      assertThat(fs.lookup("sub/hard-again.txt").id()).isEqualTo(fs.lookup("hard.txt").id());
      assertThat(fs.lookup("modes/fifo").kind()).isEqualTo(FileKind.OTHER);
      assertThat(fs.record(fs.lookup("fragments.bin").id()).attributes())
          .as("fragments.bin's runs spill into extension records through an attribute list")
          .anyMatch(a -> a.type() == 0x20);
      assertThat(fs.readLink(fs.lookup("link-500"))).isEqualTo(FixtureTree.LONG_TARGET);
      FileNode sparse = fs.lookup("sparse.bin");
      long allocated = fs.allocation(sparse).stream().mapToLong(Extent::length).sum();
      assertThat(allocated).isLessThan(sparse.size() / 4);
      assertThat(fs.lookup("modes/secret").modified()).isEqualTo(FixtureTree.MTIME);
      for (String path : List.of("/", "/many", "/ünïcödé-dir", "/d0")) {
        assertMatchesNtfsls(fs, path);
      }
    }
  }

  @Test
  void bareVolumeIsOneWholeDiskVolumeThatOnlyNtfsClaims() throws Exception {
    try (FileDisk disk = new FileDisk(image)) {
      PartitionTable table = PartitionTableReader.read(disk);
      assertThat(table.scheme()).isEqualTo(PartitionTable.Scheme.NONE);
      Volume whole = PartitionTable.volume(disk, table.partition("whole"));
      assertThat(new NtfsFileSystemType().probe(whole)).isEqualTo(100);
      assertThat(new Ext4FileSystemType().probe(whole)).isZero();
      assertThat(new XfsFileSystemType().probe(whole)).isZero();
      try (var fs = new NtfsFileSystemType().open(whole)) {
        assertThat(fs.list(fs.root())).extracting(DirectoryEntry::name).contains("big.bin");
      }
    }
  }

  @Test
  void damagedBootSectorAndRecordsAreClearErrors() throws Exception {
    Path img = dir.resolve("copy.img");
    Files.copy(image, img);
    long offset;
    long record;
    try (NtfsReader fs = NtfsReader.open(new FileDisk(img))) {
      record = fs.lookup("big.bin").id();
      offset = fs.record(record).offset();
    }
    poke(img, offset + 510, new byte[] {0x12, 0x34});
    try (NtfsReader fs = NtfsReader.open(new FileDisk(img))) {
      assertThatThrownBy(() -> fs.lookup("big.bin"))
          .isInstanceOf(IOException.class)
          .hasMessage(
              "ntfs: mft record "
                  + record
                  + " at offset 0x"
                  + Long.toHexString(offset)
                  + ": sector 0 fails its update sequence check (torn write)");
    }
    poke(img, 3, "XXXX".getBytes(StandardCharsets.US_ASCII));
    assertThatThrownBy(() -> NtfsReader.open(new FileDisk(img)))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith("ntfs: boot sector at offset 0x0: no \"NTFS    \" signature");
    try (FileDisk disk = new FileDisk(img)) {
      assertThat(new NtfsFileSystemType().probe(disk)).isZero();
    }
  }

  @Test
  void compressedFilesAreListedButTheirDataIsRefused() throws Exception {
    Path img = dir.resolve("compressed.img");
    Files.copy(image, img);
    long offset;
    try (NtfsReader fs = NtfsReader.open(new FileDisk(img))) {
      offset = fs.record(fs.lookup("size-4096.bin").id()).offset();
    }
    ByteBuffer record = ByteBuffer.allocate(1024).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    try (FileDisk disk = new FileDisk(img)) {
      disk.read(offset, record);
    }
    int at = record.getShort(20);
    while (record.getInt(at) != 0x80) {
      at += record.getInt(at + 4);
    }
    poke(img, offset + at + 12, new byte[] {1, 0}); // ATTR_IS_COMPRESSED
    try (NtfsReader fs = NtfsReader.open(new FileDisk(img))) {
      FileNode file = fs.lookup("size-4096.bin");
      assertThat(file.size()).isEqualTo(4096);
      assertThat(fs.list(fs.root())).extracting(DirectoryEntry::name).contains("size-4096.bin");
      assertThatThrownBy(() -> fs.read(file, 0, ByteBuffer.allocate(10)))
          .isInstanceOf(IOException.class)
          .hasMessageEndingWith(": $DATA is compressed; compressed files are not supported");
    }
  }

  @Test
  void mutatedMetadataGivesIoExceptionsNeverHangsOrOtherErrors() throws Exception {
    Path small = FixtureTree.build(dir.resolve("small"), 300, 20, 100_000, true);
    Path img = ntfs(dir, small, 16 * MIB);
    byte[] bytes = Files.readAllBytes(img);
    Set<Long> data = new HashSet<>();
    try (NtfsReader fs = NtfsReader.open(new MemoryDisk(bytes))) {
      collectData(fs, fs.root(), data, new HashSet<>());
    }
    List<Long> metadata = new ArrayList<>();
    for (long b = 0; b < bytes.length / 4096; b++) {
      if (!data.contains(b) && !isZero(bytes, b * 4096, 4096)) {
        metadata.add(b * 4096);
      }
    }
    int[] result = Fuzz.run(bytes, metadata, 4096, NtfsReader::open, Duration.ofSeconds(8));
    assertThat(result[0]).as("rounds").isGreaterThan(10);
    assertThat(result[1]).as("rounds that ended in an IOException").isPositive();
  }

  // --- helpers ---

  /** Clusters (4 KiB) holding file data, found through the allocation of every file. */
  private static void collectData(NtfsReader fs, FileNode dir, Set<Long> data, Set<Long> seen)
      throws IOException {
    if (!seen.add(dir.id())) {
      return;
    }
    for (DirectoryEntry e : fs.list(dir)) {
      FileNode n = e.node();
      if (n.kind() == FileKind.DIRECTORY) {
        collectData(fs, n, data, seen);
      } else if (n.kind() == FileKind.FILE) {
        for (Extent x : fs.allocation(n)) {
          for (long at = x.offset(); at < x.end(); at += 4096) {
            long physical = fs.physicalOf(n.id(), at);
            if (physical >= 0) {
              data.add(physical / 4096);
            }
          }
        }
      }
    }
  }

  private static boolean isZero(byte[] b, long from, int length) {
    for (int i = 0; i < length; i++) {
      if (b[(int) from + i] != 0) {
        return false;
      }
    }
    return true;
  }

  private static void assertMatchesNtfsls(NtfsReader fs, String path) throws Exception {
    String out = Tools.run(null, "ntfsls", "-p", path, image.toString());
    Set<String> expected = new HashSet<>(List.of(out.split("\n")));
    expected.removeAll(List.of("", ".", ".."));
    if (path.equals("/")) {
      expected.remove("lost+found");
    }
    Set<String> actual = new HashSet<>();
    for (DirectoryEntry e : fs.list(fs.lookup(path))) {
      actual.add(e.name());
    }
    assertThat(actual).as("ntfsls -p %s", path).isEqualTo(expected).isNotEmpty();
  }

  /** mkntfs, then copy {@code source} in through an ntfs-3g mount. */
  private static Path ntfs(Path workDir, Path source, long size) throws Exception {
    Path img = workDir.resolve("ntfs.img");
    try (FileChannel ch =
        FileChannel.open(img, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.allocate(1), size - 1);
    }
    Tools.run(null, "mkntfs", "-F", "-Q", "-q", "-c", "4096", img.toString());
    Path mnt = Files.createDirectories(workDir.resolve("mnt"));
    Process daemon =
        new ProcessBuilder("ntfs-3g", "-o", "no_detach", img.toString(), mnt.toString())
            .redirectErrorStream(true)
            .redirectOutput(workDir.resolve("ntfs-3g.log").toFile())
            .start();
    try {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (!mounted(mnt)) {
        Tools.assume(
            daemon.isAlive(),
            "ntfs-3g did not mount: "
                + Files.readString(workDir.resolve("ntfs-3g.log"), StandardCharsets.UTF_8));
        assertThat(System.nanoTime()).as("ntfs-3g mounted in time").isLessThan(deadline);
        daemon.waitFor(50, TimeUnit.MILLISECONDS);
      }
      Tools.run(
          null,
          "cp",
          "-R",
          "--preserve=timestamps,links",
          "--sparse=always",
          source + "/.",
          mnt.toString());
    } finally {
      if (mounted(mnt)) {
        Tools.run(null, "umount", mnt.toString());
      }
      assertThat(daemon.waitFor(60, TimeUnit.SECONDS)).as("ntfs-3g exited").isTrue();
    }
    return img;
  }

  private static boolean mounted(Path mnt) throws IOException {
    String target = mnt.toAbsolutePath().toString();
    for (String line : Files.readAllLines(Path.of("/proc/self/mounts"), StandardCharsets.UTF_8)) {
      String[] f = line.split(" ");
      if (f.length > 1 && f[1].equals(target)) {
        return true;
      }
    }
    return false;
  }

  private static void poke(Path img, long offset, byte[] bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(bytes), offset);
    }
  }
}
