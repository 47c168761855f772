package io.granule.plugin.vmdisk.internal.fs.xfs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.plugin.vmdisk.internal.fs.FileDisk;
import io.granule.plugin.vmdisk.internal.fs.FixtureTree;
import io.granule.plugin.vmdisk.internal.fs.Fuzz;
import io.granule.plugin.vmdisk.internal.fs.MemoryDisk;
import io.granule.plugin.vmdisk.internal.fs.Protofile;
import io.granule.plugin.vmdisk.internal.fs.Tools;
import io.granule.plugin.vmdisk.internal.fs.TreeAssert;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class XfsReaderTest {
  @TempDir static Path shared;
  static Path tree;
  @TempDir Path dir;

  @BeforeAll
  static void buildTree() throws Exception {
    Tools.require("mkfs.xfs", "xfsprogs");
    tree = FixtureTree.build(shared.resolve("tree"), 2000, 0, 3 * (1 << 20) + 123, false);
  }

  @Test
  void xfsWithFourKibBlocksAndEveryDirectoryForm() throws Exception {
    Instant before = Instant.now().minusSeconds(2);
    Path img = mkfs(tree, "-b", "size=4096");
    Instant after = Instant.now().plusSeconds(2);
    try (XfsReader fs = open(img)) {
      assertThat(TreeAssert.assertSameTree(fs, tree, false)).isGreaterThan(2000);
      assertThat(formOf(fs, "sub")).isEqualTo("short form");
      assertThat(formOf(fs, "modes")).isEqualTo("short form");
      assertThat(formOf(fs, "d0/d1")).isEqualTo("short form");
      assertThat(formOf(fs, "")).isEqualTo("block");
      assertThat(formOf(fs, "medium")).isEqualTo("leaf");
      assertThat(formOf(fs, "many")).isEqualTo("node");
      assertThat(fs.inode(fs.lookup("link-short").id()).format()).isEqualTo(XfsInode.FORMAT_LOCAL);
      FileNode secret = fs.lookup("modes/secret");
      assertThat(secret.modified()).isBetween(before, after);
      assertThat(secret.modified().getNano()).isEqualTo(xfsDbNanos(img, secret.id()));
      for (String path : List.of("/", "/many", "/medium", "/modes", "/ünïcödé-dir")) {
        assertMatchesXfsDb(fs, img, path);
      }
    }
  }

  @Test
  void xfsWithOneKibBlocksAndEightKibDirectoryBlocks() throws Exception {
    Path img = mkfs(tree, "-b", "size=1024", "-n", "size=8192");
    try (XfsReader fs = open(img)) {
      TreeAssert.assertSameTree(fs, tree, false);
      assertThat(formOf(fs, "many")).isEqualTo("node");
      assertMatchesXfsDb(fs, img, "/many");
    }
  }

  /**
   * The full fixture tree (hard links, sticky bits, times, holes, a file of 300 extents in a B+tree
   * fork) written by the kernel through a loop mount: protofiles cannot express these. Needs root
   * and loop devices; skipped without them.
   */
  @Test
  void xfsWrittenByTheKernelWithBtreeForksHolesHardLinksAndTimes() throws Exception {
    Tools.require("mkfs.xfs", "xfsprogs");
    Tools.assume(FixtureTree.isRoot(), "loop mounts need root");
    Path full = FixtureTree.build(dir.resolve("full"), 500, 300, 1 << 20, true);
    Path img = dir.resolve("kernel.img");
    try (FileChannel ch =
        FileChannel.open(img, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.allocate(1), 96L * (1 << 20) - 1);
    }
    Tools.run(
        null,
        "env",
        "TEST_DIR=1",
        "TEST_DEV=1",
        "QA_CHECK_FS=1",
        "mkfs.xfs",
        "-q",
        "-f",
        img.toString());
    Path mnt = Files.createDirectories(dir.resolve("mnt"));
    Process mount =
        new ProcessBuilder("mount", "-o", "loop", img.toString(), mnt.toString())
            .redirectErrorStream(true)
            .start();
    String why = new String(mount.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    Tools.assume(mount.waitFor() == 0, "loop mount failed: " + why);
    try {
      Tools.run(null, "cp", "-a", "--sparse=always", full + "/.", mnt.toString());
    } finally {
      Tools.run(null, "umount", mnt.toString());
    }
    try (XfsReader fs = open(img)) {
      TreeAssert.assertSameTree(fs, full);
      assertThat(fs.inode(fs.lookup("fragments.bin").id()).format())
          .isEqualTo(XfsInode.FORMAT_BTREE);
      assertThat(fs.mappings(fs.inode(fs.lookup("fragments.bin").id()))).hasSizeGreaterThan(250);
      assertThat(fs.allocation(fs.lookup("sparse.bin")).stream().mapToLong(e -> e.length()).sum())
          .isLessThan(64 * 1024);
      assertThat(fs.lookup("sub/hard-again.txt").id()).isEqualTo(fs.lookup("hard.txt").id());
      assertThat(fs.lookup("modes/secret").modified()).isEqualTo(FixtureTree.MTIME);
    }
  }

  @Test
  void lookupsAndErrors() throws Exception {
    Path img = mkfs(tree, "-b", "size=4096");
    try (XfsReader fs = open(img)) {
      assertThat(fs.lookup("/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/leaf.txt").size())
          .isEqualTo(12345);
      assertThat(fs.lookup("many/entry-1999-" + "x".repeat(1999 % 40)).kind())
          .isEqualTo(FileKind.FILE);
      assertThat(fs.lookup("日本.txt").size()).isEqualTo(333);
      assertThatThrownBy(() -> fs.lookup("many/nope")).isInstanceOf(NoSuchFileException.class);
      assertThat(fs.readLink(fs.lookup("link-abs"))).isEqualTo("/etc/passwd");
      assertThat(fs.lookup("modes/tool").mode()).isEqualTo(04755);
    }
  }

  /**
   * mkfs.xfs 6.1 -p writes a remote symbolic link's block without the v5 header (xfs_repair -n
   * reports "bad symlink header"): the reader refuses it clearly, and reads the block once it is
   * rewritten as the kernel writes it.
   */
  @Test
  void remoteSymbolicLinks() throws Exception {
    Path small = Files.createDirectories(dir.resolve("links"));
    Files.createSymbolicLink(small.resolve("link-500"), Path.of(FixtureTree.LONG_TARGET));
    Path img = mkfs(small, "-b", "size=4096");
    long inode;
    long block;
    try (XfsReader fs = open(img)) {
      FileNode link = fs.lookup("link-500");
      inode = link.id();
      assertThat(fs.inode(inode).format()).isEqualTo(XfsInode.FORMAT_EXTENTS);
      block = fs.mappings(fs.inode(inode)).get(0).offset();
      assertThatThrownBy(() -> fs.readLink(link))
          .isInstanceOf(IOException.class)
          .hasMessageMatching(
              "xfs: inode \\d+ at offset 0x[0-9a-f]+: symbolic link block at offset 0x"
                  + Long.toHexString(block)
                  + ": magic 0x782f782f \\(expected 0x58534c4d\\)");
    }
    ByteBuffer fixed = ByteBuffer.allocate(56 + 500);
    fixed.putInt(0x58534c4d).putInt(0).putInt(500).putInt(0).put(new byte[16]).putLong(inode);
    fixed.putLong(block / 512).putLong(0);
    fixed.put(FixtureTree.LONG_TARGET.getBytes(StandardCharsets.UTF_8));
    poke(img, block, fixed.array());
    try (XfsReader fs = open(img)) {
      assertThat(fs.readLink(fs.lookup("link-500"))).isEqualTo(FixtureTree.LONG_TARGET);
    }
  }

  @Test
  void damagedSuperblockAndInodeAreClearErrors() throws Exception {
    Path img = mkfs(tree, "-b", "size=4096");
    long inode;
    long offset;
    try (XfsReader fs = open(img)) {
      inode = fs.lookup("big.bin").id();
      offset = fs.inode(inode).offset();
    }
    poke(img, offset, new byte[] {0, 0});
    try (XfsReader fs = open(img)) {
      assertThatThrownBy(() -> fs.lookup("big.bin"))
          .isInstanceOf(IOException.class)
          .hasMessage(
              "xfs: inode "
                  + inode
                  + " at offset 0x"
                  + Long.toHexString(offset)
                  + ": magic 0x0 (expected 0x494e \"IN\")");
    }
    poke(img, 0, "XFSC".getBytes(StandardCharsets.US_ASCII));
    assertThatThrownBy(() -> open(img))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "xfs: superblock at offset 0x0: magic 0x58465343 (expected 0x58465342 \"XFSB\"): not"
                + " an xfs filesystem");
    poke(img, 0, "XFSB".getBytes(StandardCharsets.US_ASCII));
    poke(img, 216, new byte[] {0, 0, 1, 0});
    assertThatThrownBy(() -> open(img))
        .isInstanceOf(IOException.class)
        .hasMessage(
            "xfs: superblock at offset 0x0: unsupported incompatible features 0x100; this reader"
                + " supports 0xef");
    try (FileDisk disk = new FileDisk(img)) {
      assertThat(new XfsFileSystemType().probe(disk)).isEqualTo(60);
    }
  }

  @Test
  void mutatedMetadataGivesIoExceptionsNeverHangsOrOtherErrors() throws Exception {
    Path small = FixtureTree.build(dir.resolve("small"), 300, 0, 100_000, false);
    Path img = mkfs(small, "-b", "size=1024", "-n", "size=4096");
    byte[] image = Files.readAllBytes(img);
    List<Long> metadata = new ArrayList<>();
    Set<Long> data = new HashSet<>();
    try (XfsReader fs = XfsReader.open(new MemoryDisk(image))) {
      collectData(fs, fs.root(), data, new HashSet<>());
    }
    for (long b = 0; b < image.length / 1024; b++) {
      if (!data.contains(b) && !isZero(image, b * 1024, 1024)) {
        metadata.add(b * 1024);
      }
    }
    int[] result = Fuzz.run(image, metadata, 1024, XfsReader::open, Duration.ofSeconds(8));
    assertThat(result[0]).as("rounds").isGreaterThan(10);
    assertThat(result[1]).as("rounds that ended in an IOException").isPositive();
  }

  // --- helpers ---

  private static void collectData(XfsReader fs, FileNode dir, Set<Long> data, Set<Long> seen)
      throws IOException {
    if (!seen.add(dir.id())) {
      return;
    }
    for (DirectoryEntry e : fs.list(dir)) {
      FileNode n = e.node();
      if (n.kind() == FileKind.DIRECTORY) {
        collectData(fs, n, data, seen);
      } else if (n.kind() == FileKind.FILE) {
        for (XfsReader.Mapping m : fs.mappings(fs.inode(n.id()))) {
          for (long i = 0; i < m.count(); i++) {
            data.add(m.offset() / 1024 + i);
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

  /** Which of the four XFS directory forms {@code path} is stored in. */
  private static String formOf(XfsReader fs, String path) throws IOException {
    XfsInode inode = fs.inode(fs.lookup(path).id());
    if (inode.format() == XfsInode.FORMAT_LOCAL) {
      return "short form";
    }
    long bs = fs.mappings(inode).get(0).count() > 0 ? blockSize(fs) : 0;
    boolean leaf = false;
    boolean free = false;
    for (XfsReader.Mapping m : fs.mappings(inode)) {
      leaf |= m.logical() * bs >= 1L << 35;
      free |= m.logical() * bs >= 1L << 36;
    }
    return free ? "node" : leaf ? "leaf" : "block";
  }

  private static long blockSize(XfsReader fs) throws IOException {
    return fs.cacheBlockSize();
  }

  private static int xfsDbNanos(Path img, long inode) throws Exception {
    String out =
        Tools.run(
            null,
            "xfs_db",
            "-r",
            "-c",
            "inode " + inode,
            "-c",
            "print core.mtime.nsec",
            img.toString());
    return Integer.parseInt(out.substring(out.indexOf('=') + 1).trim());
  }

  /** {@code xfs_db ls} lists the same names with the same inode numbers. */
  private static void assertMatchesXfsDb(FileSystem fs, Path img, String path) throws Exception {
    String out = Tools.run(null, "xfs_db", "-r", "-c", "ls " + path, img.toString());
    Set<String> expected = new HashSet<>();
    for (String line : out.split("\n")) {
      String[] f = line.trim().split("\\s+", 6);
      if (f.length < 6) {
        continue;
      }
      String name = f[5].substring(0, f[5].lastIndexOf(" ("));
      if (!name.equals(".") && !name.equals("..")) {
        expected.add(f[1] + " " + name);
      }
    }
    Set<String> actual = new HashSet<>();
    for (DirectoryEntry e : fs.list(fs.lookup(path))) {
      actual.add(e.node().id() + " " + e.name());
    }
    assertThat(actual).as("xfs_db ls %s", path).isEqualTo(expected).isNotEmpty();
  }

  private Path mkfs(Path source, String... options) throws Exception {
    Tools.require("mkfs.xfs", "xfsprogs");
    Path proto = dir.resolve("proto");
    Files.writeString(proto, Protofile.of(source), StandardCharsets.UTF_8);
    Path img = dir.resolve("xfs.img");
    Files.deleteIfExists(img);
    try (FileChannel ch =
        FileChannel.open(img, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.allocate(1), 64L * (1 << 20) - 1);
    }
    List<String> cmd =
        new ArrayList<>(
            List.of(
                "env",
                "TEST_DIR=1",
                "TEST_DEV=1",
                "QA_CHECK_FS=1",
                "mkfs.xfs",
                "-q",
                "-f",
                "-p",
                proto.toString()));
    cmd.addAll(List.of(options));
    cmd.add(img.toString());
    Tools.run(null, cmd.toArray(String[]::new));
    return img;
  }

  private static XfsReader open(Path img) throws IOException {
    return XfsReader.open(new FileDisk(img));
  }

  private static void poke(Path img, long offset, byte[] bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(bytes), offset);
    }
  }
}
