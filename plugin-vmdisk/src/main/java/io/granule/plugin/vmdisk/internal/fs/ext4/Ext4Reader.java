package io.granule.plugin.vmdisk.internal.fs.ext4;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;
import static io.granule.plugin.vmdisk.internal.fs.ext4.Superblock.u32;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.plugin.vmdisk.internal.fs.BlockCache;
import io.granule.plugin.vmdisk.internal.fs.Names;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Reads an ext2, ext3 or ext4 filesystem in place: extent trees and indirect block maps, linear and
 * htree directories (read block by block, as linear ones), inline data, fast and slow symbolic
 * links, sparse files, 32- and 64-bit group descriptors, meta_bg.
 *
 * <p>The journal is not replayed: a filesystem that was not cleanly unmounted is read as its
 * metadata blocks stand, which is what a crash-consistent snapshot holds. Checksums are not
 * verified, and nothing read is trusted: every block number is checked against the filesystem's
 * size before it is read, every length against the structure that holds it. Thread-safe.
 */
public final class Ext4Reader implements FileSystem {
  static final long ROOT_INODE = 2;
  private static final int XATTR_MAGIC = 0xea020000;
  private static final int XATTR_INDEX_SYSTEM = 7;
  private static final int MAX_SYMLINK = 4096;

  private final BlockCache cache;
  private final Superblock sb;

  private Ext4Reader(BlockCache cache, Superblock sb) {
    this.cache = cache;
    this.sb = sb;
  }

  /**
   * Opens the ext2/3/4 filesystem on {@code volume}.
   *
   * @throws IOException if the volume holds no ext2/3/4 filesystem, one with incompatible features
   *     this reader does not support, or a damaged superblock or root directory
   */
  public static Ext4Reader open(DiskImage volume) throws IOException {
    if (volume.size() < Superblock.OFFSET + Superblock.SIZE) {
      throw new IOException(
          "ext4: the volume has " + volume.size() + " bytes, too few for a superblock");
    }
    ByteBuffer raw = ByteBuffer.allocate(Superblock.SIZE).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    volume.read(Superblock.OFFSET, raw);
    Superblock sb = Superblock.parse(raw.flip(), volume.size());
    Ext4Reader reader = new Ext4Reader(new BlockCache(volume, sb.blockSize(), "ext4"), sb);
    Inode root = reader.inode(ROOT_INODE);
    if (root.kind() != FileKind.DIRECTORY) {
      throw new IOException(
          fmt(
              "ext4: root inode 2 at offset %s has mode 0%o, not a directory",
              hex(root.offset()), root.mode()));
    }
    return reader;
  }

  @Override
  public FileNode root() throws IOException {
    return inode(ROOT_INODE).node();
  }

  @Override
  public FileNode lookup(String path) throws IOException {
    Inode current = inode(ROOT_INODE);
    StringBuilder walked = new StringBuilder();
    for (String name : Names.components(path, "ext4")) {
      if (current.kind() != FileKind.DIRECTORY) {
        throw new NotDirectoryException(walked.toString());
      }
      walked.append('/').append(name);
      long[] found = {0};
      entries(
          current,
          (ino, entryName) -> {
            if (entryName.equals(name)) {
              found[0] = ino;
              return false;
            }
            return true;
          });
      if (found[0] == 0) {
        throw new NoSuchFileException(walked.toString());
      }
      current = inode(found[0]);
    }
    return current.node();
  }

  @Override
  public List<DirectoryEntry> list(FileNode dir) throws IOException {
    Inode inode = inode(dir.id());
    if (inode.kind() != FileKind.DIRECTORY) {
      throw new NotDirectoryException(fmt("ext4: inode %d", dir.id()));
    }
    List<DirectoryEntry> out = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    entries(
        inode,
        (ino, name) -> {
          if (DirectoryEntry.isValidName(name) && seen.add(name)) {
            out.add(new DirectoryEntry(name, inode(ino).node()));
          }
          return true;
        });
    return out;
  }

  @Override
  public int read(FileNode file, long position, ByteBuffer dst) throws IOException {
    Inode inode = inode(file.id());
    if (inode.kind() != FileKind.FILE) {
      throw new IOException(fmt("ext4: inode %d is not a regular file", file.id()));
    }
    return readData(inode, position, dst);
  }

  @Override
  public String readLink(FileNode link) throws IOException {
    Inode inode = inode(link.id());
    if (inode.kind() != FileKind.SYMLINK) {
      throw new IOException(fmt("ext4: inode %d is not a symbolic link", link.id()));
    }
    long size = inode.size();
    if (size < 0 || size > MAX_SYMLINK) {
      throw new IOException(
          fmt(
              "ext4: symbolic link inode %d at offset %s: target of %d bytes (at most %d)",
              inode.number(), hex(inode.offset()), size, MAX_SYMLINK));
    }
    byte[] target = new byte[(int) size];
    if (isFastSymlink(inode)) {
      inode.iblock().get(0, target);
    } else {
      ByteBuffer b = ByteBuffer.wrap(target);
      while (b.hasRemaining()) {
        if (readData(inode, b.position(), b) < 0) {
          break;
        }
      }
    }
    return new String(target, StandardCharsets.UTF_8);
  }

  @Override
  public List<Extent> allocation(FileNode file) throws IOException {
    Inode inode = inode(file.id());
    if (inode.kind() != FileKind.FILE) {
      throw new IOException(fmt("ext4: inode %d is not a regular file", file.id()));
    }
    long size = checkedSize(inode);
    List<Extent> out = new ArrayList<>();
    if (size == 0) {
      return out;
    }
    if (inode.hasFlag(Inode.FLAG_INLINE_DATA)) {
      out.add(new Extent(0, size));
      return out;
    }
    BlockMap map = blockMap(inode);
    long bs = sb.blockSize();
    long blocks = (size + bs - 1) / bs;
    long mapped = 0;
    long steps = 0;
    long logical = 0;
    while (logical < blocks) {
      if (++steps > 4 * sb.blocksCount() + 16) {
        throw new IOException(
            fmt(
                "ext4: inode %d: block map has more runs than the filesystem has blocks",
                file.id()));
      }
      BlockMap.Run run = map.map(logical);
      long length = Math.min(run.length(), blocks - logical);
      if (run.physical() != BlockMap.HOLE) {
        mapped += length;
        if (mapped > sb.blocksCount()) {
          throw new IOException(
              fmt(
                  "ext4: inode %d: block map maps more blocks than the filesystem has (%d)",
                  file.id(), sb.blocksCount()));
        }
        long start = logical * bs;
        long end = Math.min(size, (logical + length) * bs);
        Extent last = out.isEmpty() ? null : out.get(out.size() - 1);
        if (last != null && last.end() == start) {
          out.set(out.size() - 1, new Extent(last.offset(), end - last.offset()));
        } else {
          out.add(new Extent(start, end - start));
        }
      }
      logical += length;
    }
    return out;
  }

  @Override
  public void close() {}

  BlockCache cache() {
    return cache;
  }

  // --- inodes ---

  Inode inode(long number) throws IOException {
    if (number < 1 || number > sb.inodesCount()) {
      throw new IOException(
          fmt("ext4: inode %d does not exist (the filesystem has %d)", number, sb.inodesCount()));
    }
    long group = (number - 1) / sb.inodesPerGroup();
    long index = (number - 1) % sb.inodesPerGroup();
    long descBlock = sb.descriptorBlock(group);
    int descAt = sb.descriptorOffset(group);
    ByteBuffer desc =
        cache.block(
            descBlock,
            fmt(
                "group descriptor %d at offset %s",
                group, hex(descBlock * sb.blockSize() + descAt)));
    long table = u32(desc, descAt + 0x8);
    if (sb.descSize() >= 64) {
      table |= u32(desc, descAt + 0x28) << 32;
    }
    long tableBlocks = (sb.inodesPerGroup() * sb.inodeSize() + sb.blockSize() - 1) / sb.blockSize();
    if (table == 0 || table + tableBlocks > sb.blocksCount()) {
      throw new IOException(
          fmt(
              "ext4: group descriptor %d at offset %s: inode table at block %d is outside the"
                  + " filesystem (%d blocks)",
              group, hex(descBlock * sb.blockSize() + descAt), table, sb.blocksCount()));
    }
    long byteInTable = index * sb.inodeSize();
    long block = table + byteInTable / sb.blockSize();
    int within = (int) (byteInTable % sb.blockSize());
    long offset = block * sb.blockSize() + within;
    ByteBuffer b = cache.block(block, fmt("inode %d at offset %s", number, hex(offset)));
    return new Inode(number, offset, b.slice(within, sb.inodeSize()));
  }

  private long checkedSize(Inode inode) throws IOException {
    long size = inode.size();
    if (size < 0) {
      throw new IOException(
          fmt(
              "ext4: inode %d at offset %s: size %s",
              inode.number(), hex(inode.offset()), Long.toUnsignedString(size)));
    }
    if (inode.hasFlag(Inode.FLAG_ENCRYPT)) {
      throw new IOException(
          fmt(
              "ext4: inode %d at offset %s is encrypted (fscrypt); encrypted files and"
                  + " directories are not supported",
              inode.number(), hex(inode.offset())));
    }
    return size;
  }

  private BlockMap blockMap(Inode inode) {
    return inode.hasFlag(Inode.FLAG_EXTENTS)
        ? new ExtentMap(cache, inode, sb.blocksCount())
        : new IndirectMap(cache, inode, sb.blocksCount());
  }

  private boolean isFastSymlink(Inode inode) {
    if (inode.hasFlag(Inode.FLAG_EXTENTS)
        || inode.hasFlag(Inode.FLAG_INLINE_DATA)
        || inode.size() >= Inode.I_BLOCK_SIZE) {
      return false;
    }
    long eaSectors = inode.fileAcl() != 0 ? sb.blockSize() / 512 : 0;
    return inode.blocks() - eaSectors <= 0;
  }

  // --- data ---

  private int readData(Inode inode, long position, ByteBuffer dst) throws IOException {
    long size = checkedSize(inode);
    if (position < 0) {
      throw new IllegalArgumentException("negative position " + position);
    }
    if (position >= size) {
      return -1;
    }
    if (!dst.hasRemaining()) {
      return 0;
    }
    if (inode.hasFlag(Inode.FLAG_INLINE_DATA)) {
      byte[] data = inlineData(inode);
      int n = (int) Math.min(dst.remaining(), size - position);
      dst.put(data, (int) position, n);
      return n;
    }
    BlockMap map = blockMap(inode);
    long bs = sb.blockSize();
    int total = 0;
    while (dst.hasRemaining() && position < size) {
      long logical = position / bs;
      long within = position % bs;
      BlockMap.Run run = map.map(logical);
      long runBytes =
          run.length() > (size - position) / bs + 1 ? size - position : run.length() * bs - within;
      int n = (int) Math.min(Math.min(dst.remaining(), runBytes), size - position);
      if (run.physical() == BlockMap.HOLE) {
        for (int i = 0; i < n; i++) {
          dst.put((byte) 0);
        }
      } else {
        ByteBuffer slice = dst.slice(dst.position(), n);
        cache.read(
            run.physical() * bs + within,
            slice,
            fmt("inode %d data at logical block %d", inode.number(), logical));
        dst.position(dst.position() + n);
      }
      position += n;
      total += n;
    }
    return total;
  }

  /** The whole content of an inline-data inode: {@code i_block} then the system.data xattr. */
  private byte[] inlineData(Inode inode) throws IOException {
    long size = inode.size();
    String where = fmt("ext4: inode %d at offset %s", inode.number(), hex(inode.offset()));
    if (size < 0 || size > Inode.I_BLOCK_SIZE + sb.inodeSize()) {
      throw new IOException(fmt("%s: inline data of %d bytes does not fit the inode", where, size));
    }
    byte[] out = new byte[(int) size];
    inode.iblock().get(0, out, 0, (int) Math.min(size, Inode.I_BLOCK_SIZE));
    if (size > Inode.I_BLOCK_SIZE) {
      ByteBuffer value = systemData(inode, where);
      if (value.remaining() < size - Inode.I_BLOCK_SIZE) {
        throw new IOException(
            fmt(
                "%s: inline data of %d bytes but system.data holds only %d",
                where, size, Inode.I_BLOCK_SIZE + value.remaining()));
      }
      value.get(out, Inode.I_BLOCK_SIZE, (int) size - Inode.I_BLOCK_SIZE);
    }
    return out;
  }

  /** The value of the in-inode {@code system.data} extended attribute. */
  private ByteBuffer systemData(Inode inode, String where) throws IOException {
    ByteBuffer raw = inode.raw();
    int start = 128 + inode.extraSize();
    int end = raw.capacity();
    if (inode.extraSize() == 0 || start + 4 > end || raw.getInt(start) != XATTR_MAGIC) {
      throw new IOException(
          fmt("%s: inline data without an in-inode extended attribute header", where));
    }
    int first = start + 4;
    int at = first;
    while (at + 16 <= end && raw.getInt(at) != 0) {
      int nameLen = raw.get(at) & 0xff;
      int index = raw.get(at + 1) & 0xff;
      int valueOffs = raw.getShort(at + 2) & 0xffff;
      long valueInum = u32(raw, at + 4);
      long valueSize = u32(raw, at + 8);
      if (at + 16 + nameLen > end) {
        throw new IOException(
            fmt("%s: extended attribute entry at +%d overruns the inode", where, at));
      }
      if (index == XATTR_INDEX_SYSTEM
          && nameLen == 4
          && Names.utf8(raw, at + 16, 4).equals("data")) {
        if (valueInum != 0 || first + valueOffs + valueSize > end) {
          throw new IOException(
              fmt(
                  "%s: system.data value of %d bytes at +%d is outside the inode",
                  where, valueSize, valueOffs));
        }
        return raw.slice(first + valueOffs, (int) valueSize);
      }
      at += (nameLen + 16 + 3) & ~3;
    }
    throw new IOException(fmt("%s: inline data without a system.data attribute", where));
  }

  // --- directories ---

  /** Receives directory entries; returns false to stop. */
  private interface EntryVisitor {
    boolean visit(long inode, String name) throws IOException;
  }

  private void entries(Inode dir, EntryVisitor visitor) throws IOException {
    long size = checkedSize(dir);
    if (dir.hasFlag(Inode.FLAG_INLINE_DATA)) {
      byte[] data = inlineData(dir);
      ByteBuffer b = ByteBuffer.wrap(data).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      String where =
          fmt("ext4: directory inode %d at offset %s: inline", dir.number(), hex(dir.offset()));
      int split = Math.min(data.length, Inode.I_BLOCK_SIZE);
      if (split >= 4 && !parse(b, 4, split, where, visitor)) {
        return;
      }
      parse(b, split, data.length, where, visitor);
      return;
    }
    if (size > cache.volumeSize()) {
      throw new IOException(
          fmt(
              "ext4: directory inode %d at offset %s: size %d is larger than the volume",
              dir.number(), hex(dir.offset()), size));
    }
    BlockMap map = blockMap(dir);
    long bs = sb.blockSize();
    long blocks = (size + bs - 1) / bs;
    long logical = 0;
    while (logical < blocks) {
      BlockMap.Run run = map.map(logical);
      long length = Math.min(run.length(), blocks - logical);
      if (run.physical() != BlockMap.HOLE) {
        for (long i = 0; i < length; i++) {
          long block = run.physical() + i;
          String where =
              fmt(
                  "ext4: directory inode %d block %d at offset %s",
                  dir.number(), logical + i, hex(block * bs));
          if (!parse(cache.block(block, where), 0, (int) bs, where, visitor)) {
            return;
          }
        }
      }
      logical += length;
    }
  }

  /** Parses the directory entries in {@code [from, to)} of {@code b}; false if told to stop. */
  private boolean parse(ByteBuffer b, int from, int to, String where, EntryVisitor visitor)
      throws IOException {
    boolean fileType = sb.has(Superblock.INCOMPAT_FILETYPE);
    int at = from;
    while (at + 8 <= to) {
      long ino = u32(b, at);
      int recLen = recLen(b.getShort(at + 4) & 0xffff);
      int nameLen = fileType ? b.get(at + 6) & 0xff : b.getShort(at + 6) & 0xffff;
      if (recLen < 8 || recLen % 4 != 0 || at + recLen > to || 8 + nameLen > recLen) {
        throw new IOException(
            fmt(
                "%s: entry at +%d has record length %d and name length %d (room for %d)",
                where, at - from, recLen, nameLen, to - at));
      }
      if (ino != 0 && nameLen > 0) {
        if (ino > sb.inodesCount()) {
          throw new IOException(
              fmt(
                  "%s: entry at +%d names inode %d (the filesystem has %d)",
                  where, at - from, ino, sb.inodesCount()));
        }
        if (!visitor.visit(ino, Names.utf8(b, at + 8, nameLen))) {
          return false;
        }
      }
      at += recLen;
    }
    return true;
  }

  private int recLen(int raw) {
    if (sb.blockSize() < 65536) {
      return raw;
    }
    return raw == 65535 || raw == 0 ? sb.blockSize() : (raw & 65532) | ((raw & 3) << 16);
  }
}
