package io.granule.plugin.vmdisk.internal.fs.ext4;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.plugin.vmdisk.internal.fs.FileDisk;
import io.granule.plugin.vmdisk.internal.fs.FixtureTree;
import io.granule.plugin.vmdisk.internal.fs.Fuzz;
import io.granule.plugin.vmdisk.internal.fs.MemoryDisk;
import io.granule.plugin.vmdisk.internal.fs.Tools;
import io.granule.plugin.vmdisk.internal.fs.TreeAssert;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
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

class Ext4ReaderTest {
  @TempDir static Path shared;
  static Path tree;
  @TempDir Path dir;

  @BeforeAll
  static void buildTree() throws Exception {
    Tools.require("mkfs.ext4", "e2fsprogs");
    tree = FixtureTree.build(shared.resolve("tree"), 2000, 600, 3 * (1 << 20) + 123);
  }

  @Test
  void ext4WithFourKibBlocksHtreeAndExtents() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    // mke2fs -d writes linear directories; e2fsck -D rebuilds large ones as hashed trees.
    Tools.run(null, "sh", "-c", "e2fsck -fyD \"$0\" >/dev/null; test $? -le 1", img.toString());
    try (Ext4Reader fs = open(img)) {
      assertThat(TreeAssert.assertSameTree(fs, tree, "lost+found")).isGreaterThan(2000);
      assertThat(fs.inode(fs.lookup("many").id()).flags() & 0x1000).as("htree").isNotZero();
      assertThat(extentDepth(fs, "fragments.bin")).isEqualTo(1);
      assertSparse(fs, 4096);
      assertMatchesDebugfs(fs, img, "/");
      assertMatchesDebugfs(fs, img, "/many");
      assertMatchesDebugfs(fs, img, "/ünïcödé-dir");
    }
  }

  @Test
  void ext4WithOneKibBlocksAnd32BitDescriptorsAndADepthTwoExtentTree() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "1024", "-O", "^64bit");
    try (Ext4Reader fs = open(img)) {
      TreeAssert.assertSameTree(fs, tree, "lost+found");
      assertThat(extentDepth(fs, "fragments.bin")).isEqualTo(2);
      assertSparse(fs, 1024);
      assertMatchesDebugfs(fs, img, "/many");
    }
  }

  @Test
  void ext4WithInlineData() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096", "-O", "inline_data");
    try (Ext4Reader fs = open(img)) {
      TreeAssert.assertSameTree(fs, tree, "lost+found");
      for (String inline : List.of("size-59.bin", "size-61.bin", "sub", "modes")) {
        assertThat(fs.inode(fs.lookup(inline).id()).hasFlag(Inode.FLAG_INLINE_DATA))
            .as("%s is inline", inline)
            .isTrue();
      }
      assertMatchesDebugfs(fs, img, "/sub");
    }
  }

  @Test
  void ext3WithBlockMapsAnd128ByteInodes() throws Exception {
    Path img = mkfs("mkfs.ext3", "-b", "1024", "-I", "128");
    try (Ext4Reader fs = open(img)) {
      TreeAssert.assertSameTree(fs, tree, "lost+found");
      assertThat(fs.inode(fs.lookup("big.bin").id()).hasFlag(Inode.FLAG_EXTENTS)).isFalse();
      assertThat(fs.lookup("big.bin").accessed()).isNotNull();
      assertThat(fs.lookup("big.bin").created()).isNull();
      assertSparse(fs, 1024);
      assertMatchesDebugfs(fs, img, "/many");
    }
  }

  @Test
  void ext2WithoutFileTypesInDirectoryEntries() throws Exception {
    Path img = mkfs("mkfs.ext2", "-b", "4096", "-O", "^filetype");
    try (Ext4Reader fs = open(img)) {
      TreeAssert.assertSameTree(fs, tree, "lost+found");
    }
  }

  @Test
  void ext4WithMetaBlockGroups() throws Exception {
    Path img =
        mkfs("mkfs.ext4", "-b", "1024", "-g", "1024", "-N", "2400", "-O", "meta_bg,^resize_inode");
    try (Ext4Reader fs = open(img)) {
      TreeAssert.assertSameTree(fs, tree, "lost+found");
      long highest = 0;
      for (DirectoryEntry e : fs.list(fs.lookup("many"))) {
        highest = Math.max(highest, e.node().id());
      }
      assertThat((highest - 1) / inodesPerGroup(img))
          .as("inodes beyond the first meta group are read")
          .isGreaterThanOrEqualTo(16);
    }
  }

  @Test
  void pathsAreResolvedWithoutFollowingLinks() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    try (Ext4Reader fs = open(img)) {
      FileNode leaf = fs.lookup("/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/leaf.txt");
      assertThat(leaf.size()).isEqualTo(12345);
      assertThat(fs.lookup("sub/hard-again.txt").id()).isEqualTo(fs.lookup("hard.txt").id());
      assertThat(fs.lookup("hard.txt").linkCount()).isEqualTo(2);
      assertThat(fs.lookup("link-short").kind()).isEqualTo(FileKind.SYMLINK);
      assertThatThrownBy(() -> fs.lookup("link-short/x")).isInstanceOf(NotDirectoryException.class);
      assertThatThrownBy(() -> fs.lookup("sub/missing"))
          .isInstanceOf(NoSuchFileException.class)
          .hasMessage("/sub/missing");
      assertThatThrownBy(() -> fs.lookup("sub/../hard.txt"))
          .isInstanceOf(IOException.class)
          .hasMessage(
              "ext4: path 'sub/../hard.txt': component '..' is not allowed; use a plain path");
      assertThat(fs.read(fs.lookup("size-0.bin"), 0, ByteBuffer.allocate(10))).isEqualTo(-1);
      ByteBuffer tail = ByteBuffer.allocate(100);
      assertThat(fs.read(fs.lookup("size-4097.bin"), 4090, tail)).isEqualTo(7);
      assertThat(fs.readLink(fs.lookup("link-abs"))).isEqualTo("/etc/passwd");
      assertThat(fs.lookup("modes/fifo").kind()).isEqualTo(FileKind.OTHER);
      assertThat(fs.lookup("modes/tool").mode()).isEqualTo(04755);
      assertThat(fs.lookup("modes/sticky").mode()).isEqualTo(01777);
      assertThat(fs.readLink(fs.lookup("link-500"))).hasSize(500);
    }
  }

  @Test
  void timestampsPast2038UseTheEpochBits() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    long offset;
    try (Ext4Reader fs = open(img)) {
      offset = fs.inode(fs.lookup("size-1.bin").id()).offset();
      assertThat(fs.lookup("size-1.bin").modified()).isEqualTo(Instant.EPOCH);
    }
    // i_mtime_extra: epoch bits 01 and 5 ns; the seconds field holds 0
    poke(
        img,
        offset + 0x88,
        ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(1 | 5 << 2).array());
    try (Ext4Reader fs = open(img)) {
      assertThat(fs.lookup("size-1.bin").modified()).isEqualTo(Instant.ofEpochSecond(1L << 32, 5));
    }
    String stat = Tools.run(null, "debugfs", "-n", "-R", "stat /size-1.bin", img.toString());
    assertThat(stat).contains("mtime: 0x00000000:00000015 -- Sun Feb  7 06:28:16 2106");
  }

  @Test
  void damagedSuperblockIsAClearError() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    poke(img, 1024 + 0x38, new byte[] {0, 0});
    assertThatThrownBy(() -> open(img))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "ext4: superblock at offset 0x400: magic 0x0 (expected 0xef53): not an ext2/3/4"
                + " filesystem, or its superblock is damaged");
    try (FileDisk disk = new FileDisk(img)) {
      assertThat(new Ext4FileSystemType().probe(disk)).isZero();
    }
  }

  @Test
  void unknownIncompatibleFeaturesAreRefused() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    ByteBuffer sb = read(img, 1024 + 0x60, 4);
    int incompat = sb.getInt(0) | 0x1 | 0x100000;
    poke(
        img,
        1024 + 0x60,
        ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(incompat).array());
    assertThatThrownBy(() -> open(img))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "ext4: superblock at offset 0x400: unsupported incompatible features 0x100001"
                + " (compression unknown 0x100000); this reader supports 0x");
    try (FileDisk disk = new FileDisk(img)) {
      assertThat(new Ext4FileSystemType().probe(disk)).isEqualTo(60);
    }
  }

  @Test
  void damagedExtentHeaderIsAClearError() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    long inode;
    long offset;
    try (Ext4Reader fs = open(img)) {
      inode = fs.lookup("big.bin").id();
      offset = fs.inode(inode).offset();
    }
    poke(img, offset + 0x28, new byte[] {0, 0});
    try (Ext4Reader fs = open(img)) {
      FileNode big = fs.lookup("big.bin");
      assertThatThrownBy(() -> fs.read(big, 0, ByteBuffer.allocate(10)))
          .isInstanceOf(IOException.class)
          .hasMessage(
              "ext4: inode "
                  + inode
                  + " at offset 0x"
                  + Long.toHexString(offset)
                  + ": extent header magic 0x0 (expected 0xf30a)");
    }
  }

  @Test
  void extentTreeNodePointingBackAtItselfIsAClearError() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    long leaf;
    try (Ext4Reader fs = open(img)) {
      ByteBuffer root = fs.inode(fs.lookup("fragments.bin").id()).iblock();
      assertThat(root.getShort(6)).as("root depth").isEqualTo((short) 1);
      leaf = Integer.toUnsignedLong(root.getInt(12 + 4));
    }
    // The leaf claims depth 1 and an index entry that points at itself.
    ByteBuffer loop = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
    loop.putShort((short) 0xf30a).putShort((short) 1).putShort((short) 340).putShort((short) 1);
    loop.putInt(0).putInt(0).putInt((int) leaf).putShort((short) 0).putShort((short) 0);
    poke(img, leaf * 4096, loop.array());
    try (Ext4Reader fs = open(img)) {
      FileNode fragments = fs.lookup("fragments.bin");
      assertThatThrownBy(
              () ->
                  assertTimeoutPreemptively(
                      Duration.ofSeconds(5), () -> fs.read(fragments, 0, ByteBuffer.allocate(10))))
          .isInstanceOf(IOException.class)
          .hasMessage(
              "ext4: inode "
                  + fragments.id()
                  + " extent tree node at offset 0x"
                  + Long.toHexString(leaf * 4096)
                  + ": extent tree depth 1 (expected 0)");
    }
  }

  @Test
  void directoryEntryNamingAMissingInodeIsAClearError() throws Exception {
    Path img = mkfs("mkfs.ext4", "-b", "4096");
    long dirBlockOffset;
    try (Ext4Reader fs = open(img)) {
      dirBlockOffset = firstBlockOffset(fs, fs.lookup("sub").id());
    }
    // the entry after "." and "..": its inode field set to a number past the inode count
    poke(img, dirBlockOffset + 12 + 12, new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f});
    try (Ext4Reader fs = open(img)) {
      assertThatThrownBy(() -> fs.list(fs.lookup("sub")))
          .isInstanceOf(IOException.class)
          .hasMessageMatching(
              "ext4: directory inode \\d+ block 0 at offset 0x[0-9a-f]+: entry at \\+24 names"
                  + " inode 2147483647 \\(the filesystem has \\d+\\)");
    }
  }

  @Test
  void mutatedMetadataGivesIoExceptionsNeverHangsOrOtherErrors() throws Exception {
    Path small = dir.resolve("small-tree");
    Files.createDirectories(small);
    FixtureTree.build(small, 150, 40, 100_000);
    for (String[] variant :
        List.of(
            new String[] {"mkfs.ext4", "-b", "1024"},
            new String[] {"mkfs.ext4", "-b", "4096", "-O", "inline_data"},
            new String[] {"mkfs.ext3", "-b", "1024"})) {
      Path img = dir.resolve("fuzz.img");
      Files.deleteIfExists(img);
      List<String> cmd = new ArrayList<>(List.of(variant));
      cmd.addAll(List.of("-q", "-F", "-d", small.toString(), "-N", "512", img.toString(), "8M"));
      Tools.run(null, cmd.toArray(String[]::new));
      byte[] image = Files.readAllBytes(img);
      int bs = Integer.parseInt(variant[2]);
      List<Long> metadata = metadataBlocks(image, bs);
      int[] result = Fuzz.run(image, metadata, bs, Ext4Reader::open, Duration.ofSeconds(4));
      assertThat(result[0]).as("rounds").isGreaterThan(10);
      assertThat(result[1]).as("rounds that ended in an IOException").isPositive();
    }
  }

  // --- helpers ---

  /**
   * Blocks that hold metadata: those neither zero nor part of a regular file's data (superblocks,
   * descriptors, bitmaps, inode tables, directory, extent-tree and indirect blocks, the journal).
   */
  private static List<Long> metadataBlocks(byte[] image, int bs) throws Exception {
    Set<Long> data = new HashSet<>();
    try (Ext4Reader fs = Ext4Reader.open(new MemoryDisk(image))) {
      collectData(fs, fs.root(), data, bs, new HashSet<>());
    }
    List<Long> out = new ArrayList<>();
    for (long b = 0; b < image.length / bs; b++) {
      if (data.contains(b)) {
        continue;
      }
      boolean zero = true;
      for (int i = 0; i < bs && zero; i++) {
        zero = image[(int) (b * bs + i)] == 0;
      }
      if (!zero) {
        out.add(b * bs);
      }
    }
    return out;
  }

  private static void collectData(
      Ext4Reader fs, FileNode dir, Set<Long> data, int bs, Set<Long> seen) throws IOException {
    if (!seen.add(dir.id())) {
      return;
    }
    for (DirectoryEntry e : fs.list(dir)) {
      FileNode n = e.node();
      if (n.kind() == FileKind.DIRECTORY) {
        collectData(fs, n, data, bs, seen);
      } else if (n.kind() == FileKind.FILE) {
        Inode inode = fs.inode(n.id());
        if (inode.hasFlag(Inode.FLAG_INLINE_DATA)) {
          continue;
        }
        BlockMap map =
            inode.hasFlag(Inode.FLAG_EXTENTS)
                ? new ExtentMap(fs.cache(), inode, Long.MAX_VALUE)
                : new IndirectMap(fs.cache(), inode, Long.MAX_VALUE);
        for (Extent x : fs.allocation(n)) {
          for (long l = x.offset() / bs; l * bs < x.end(); l++) {
            BlockMap.Run r = map.map(l);
            data.add(r.physical());
          }
        }
      }
    }
  }

  private static long firstBlockOffset(Ext4Reader fs, long inode) throws IOException {
    Inode i = fs.inode(inode);
    BlockMap map =
        i.hasFlag(Inode.FLAG_EXTENTS)
            ? new ExtentMap(fs.cache(), i, Long.MAX_VALUE)
            : new IndirectMap(fs.cache(), i, Long.MAX_VALUE);
    return map.map(0).physical() * fs.cache().blockSize();
  }

  private static long inodesPerGroup(Path img) throws Exception {
    String out = Tools.run(null, "dumpe2fs", "-h", img.toString());
    for (String line : out.split("\n")) {
      if (line.startsWith("Inodes per group:")) {
        return Long.parseLong(line.substring(line.indexOf(':') + 1).trim());
      }
    }
    throw new AssertionError("no inodes per group in dumpe2fs output");
  }

  private static int extentDepth(Ext4Reader fs, String path) throws IOException {
    Inode inode = fs.inode(fs.lookup(path).id());
    assertThat(inode.hasFlag(Inode.FLAG_EXTENTS)).isTrue();
    return inode.iblock().getShort(6);
  }

  /** The sparse file's holes are reported and read as zeros. */
  private static void assertSparse(FileSystem fs, int bs) throws IOException {
    FileNode sparse = fs.lookup("sparse.bin");
    List<Extent> allocation = fs.allocation(sparse);
    long allocated = allocation.stream().mapToLong(Extent::length).sum();
    assertThat(allocated).isLessThanOrEqualTo(2L * bs + 4096 + 2L * bs);
    assertThat(allocation.get(0).offset()).isZero();
    assertThat(allocation.get(allocation.size() - 1).end()).isEqualTo(sparse.size());
    ByteBuffer hole = ByteBuffer.allocate(1 << 20);
    assertThat(fs.read(sparse, 1 << 20, hole)).isEqualTo(1 << 20);
    assertThat(hole.flip()).isEqualTo(ByteBuffer.allocate(1 << 20));
  }

  /** {@code debugfs ls -p} lists the same names with the same inode numbers. */
  private static void assertMatchesDebugfs(FileSystem fs, Path img, String path) throws Exception {
    String out = Tools.run(null, "debugfs", "-R", "ls -p \"" + path + "\"", img.toString());
    Set<String> expected = new HashSet<>();
    for (String line : out.split("\n")) {
      if (line.isBlank()) {
        continue;
      }
      String[] f = line.split("/", -1);
      String name = f[5];
      if (!name.equals(".") && !name.equals("..")) {
        expected.add(f[1] + " " + name);
      }
    }
    Set<String> actual = new HashSet<>();
    for (DirectoryEntry e : fs.list(fs.lookup(path))) {
      actual.add(e.node().id() + " " + e.name());
    }
    assertThat(actual).as("debugfs ls -p %s", path).isEqualTo(expected).isNotEmpty();
  }

  private Path mkfs(String tool, String... options) throws Exception {
    Tools.require(tool, "e2fsprogs");
    Path img = dir.resolve("fs.img");
    Files.deleteIfExists(img);
    List<String> cmd = new ArrayList<>(List.of(tool, "-q", "-F", "-d", tree.toString()));
    cmd.addAll(List.of(options));
    cmd.addAll(List.of(img.toString(), "96M"));
    Tools.run(null, cmd.toArray(String[]::new));
    return img;
  }

  private static Ext4Reader open(Path img) throws IOException {
    return Ext4Reader.open(new FileDisk(img));
  }

  private static ByteBuffer read(Path img, long offset, int length) throws IOException {
    try (FileDisk disk = new FileDisk(img)) {
      ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
      disk.read(offset, b);
      return b.flip();
    }
  }

  private static void poke(Path img, long offset, byte[] bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(bytes), offset);
    }
  }
}
