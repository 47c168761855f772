package io.granule.plugin.vmdisk.internal.fs.xfs;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;

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
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads a version 5 XFS filesystem in place: inode core v3, data forks in local, extent and B+tree
 * format; short-form, block, leaf and node directories (their data blocks, read in logical order;
 * the hash indexes are not needed to list); local and remote symbolic links; sparse files.
 *
 * <p>The log is not replayed: a filesystem that was not cleanly unmounted is read as its metadata
 * blocks stand. CRCs are not verified, and nothing read is trusted: block and inode numbers are
 * checked against the allocation group geometry before they are read, B+tree levels must descend
 * one by one and no tree block is visited twice. Thread-safe.
 */
public final class XfsReader implements FileSystem {
  private static final int BMAP_MAGIC = 0x424d4133; // "BMA3"
  private static final int BMAP_HEADER = 72;
  private static final int MAX_BTREE_LEVEL = 9;
  private static final int DIR_BLOCK_MAGIC = 0x58444233; // "XDB3"
  private static final int DIR_DATA_MAGIC = 0x58444433; // "XDD3"
  private static final int DIR_DATA_HEADER = 64;
  private static final long DIR_LEAF_OFFSET = 1L << 35; // data blocks live below 32 GiB
  private static final int SYMLINK_MAGIC = 0x58534c4d; // "XSLM"
  private static final int SYMLINK_HEADER = 56;
  private static final int MAX_SYMLINK = 1024;
  private static final int EXTENT_CACHE = 64;

  private final BlockCache cache;
  private final XfsSuperblock sb;
  private final Map<Long, List<Mapping>> extentCache =
      new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, List<Mapping>> eldest) {
          return size() > EXTENT_CACHE;
        }
      };

  /**
   * One data fork extent: file blocks {@code [logical, logical + count)} at byte {@code offset}.
   */
  record Mapping(long logical, long count, long offset, boolean unwritten) {}

  private XfsReader(BlockCache cache, XfsSuperblock sb) {
    this.cache = cache;
    this.sb = sb;
  }

  /**
   * Opens the XFS filesystem on {@code volume}.
   *
   * @throws IOException if the volume holds no version 5 XFS filesystem, one with incompatible
   *     features this reader does not support, or a damaged superblock or root directory
   */
  public static XfsReader open(DiskImage volume) throws IOException {
    if (volume.size() < 512) {
      throw new IOException(
          "xfs: the volume has " + volume.size() + " bytes, too few for a superblock");
    }
    ByteBuffer raw = ByteBuffer.allocate(512);
    volume.read(0, raw);
    XfsSuperblock sb = XfsSuperblock.parse(raw.flip().order(ByteOrder.BIG_ENDIAN), volume.size());
    XfsReader reader = new XfsReader(new BlockCache(volume, sb.blockSize(), "xfs"), sb);
    XfsInode root = reader.inode(sb.rootInode());
    if (root.kind() != FileKind.DIRECTORY) {
      throw new IOException(
          fmt(
              "xfs: root inode %d at offset %s has mode 0%o, not a directory",
              root.number(), hex(root.offset()), root.mode()));
    }
    return reader;
  }

  @Override
  public FileNode root() throws IOException {
    return inode(sb.rootInode()).node();
  }

  @Override
  public FileNode lookup(String path) throws IOException {
    XfsInode current = inode(sb.rootInode());
    StringBuilder walked = new StringBuilder();
    for (String name : Names.components(path, "xfs")) {
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
    XfsInode inode = inode(dir.id());
    if (inode.kind() != FileKind.DIRECTORY) {
      throw new NotDirectoryException(fmt("xfs: inode %d", dir.id()));
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
    XfsInode inode = inode(file.id());
    if (inode.kind() != FileKind.FILE) {
      throw new IOException(fmt("xfs: inode %d is not a regular file", file.id()));
    }
    return readData(inode, position, dst);
  }

  @Override
  public String readLink(FileNode link) throws IOException {
    XfsInode inode = inode(link.id());
    String where = where(inode);
    if (inode.kind() != FileKind.SYMLINK) {
      throw new IOException(fmt("xfs: inode %d is not a symbolic link", link.id()));
    }
    long size = inode.size();
    if (size < 0 || size > MAX_SYMLINK) {
      throw new IOException(
          fmt("%s: symbolic link target of %d bytes (at most %d)", where, size, MAX_SYMLINK));
    }
    byte[] target = new byte[(int) size];
    if (inode.format() == XfsInode.FORMAT_LOCAL) {
      ByteBuffer fork = inode.dataFork();
      if (size > fork.capacity()) {
        throw new IOException(
            fmt("%s: local symbolic link of %d bytes overruns the inode", where, size));
      }
      fork.get(0, target);
      return new String(target, StandardCharsets.UTF_8);
    }
    int filled = 0;
    for (Mapping m : mappings(inode)) {
      for (long i = 0; i < m.count() && filled < size; i++) {
        ByteBuffer b =
            cache
                .block((m.offset() / sb.blockSize()) + i, where + ": symbolic link block")
                .order(ByteOrder.BIG_ENDIAN);
        if (b.getInt(0) != SYMLINK_MAGIC) {
          throw new IOException(
              fmt(
                  "%s: symbolic link block at offset %s: magic %s (expected 0x58534c4d)",
                  where,
                  hex(m.offset() + i * sb.blockSize()),
                  hex(Integer.toUnsignedLong(b.getInt(0)))));
        }
        long at = Integer.toUnsignedLong(b.getInt(4));
        long bytes = Integer.toUnsignedLong(b.getInt(8));
        if (at != filled || bytes > sb.blockSize() - SYMLINK_HEADER || at + bytes > size) {
          throw new IOException(
              fmt(
                  "%s: symbolic link block at offset %s holds %d bytes at %d (expected at %d of"
                      + " %d)",
                  where, hex(m.offset() + i * sb.blockSize()), bytes, at, filled, size));
        }
        b.get(SYMLINK_HEADER, target, filled, (int) bytes);
        filled += (int) bytes;
      }
    }
    if (filled != size) {
      throw new IOException(
          fmt("%s: symbolic link blocks hold %d of %d bytes", where, filled, size));
    }
    return new String(target, StandardCharsets.UTF_8);
  }

  @Override
  public List<Extent> allocation(FileNode file) throws IOException {
    XfsInode inode = inode(file.id());
    if (inode.kind() != FileKind.FILE) {
      throw new IOException(fmt("xfs: inode %d is not a regular file", file.id()));
    }
    long size = checkedSize(inode);
    List<Extent> out = new ArrayList<>();
    long bs = sb.blockSize();
    for (Mapping m : mappings(inode)) {
      if (m.unwritten()) {
        continue;
      }
      if (m.logical() >= (size + bs - 1) / bs) {
        break; // also keeps the multiplications below from overflowing
      }
      long start = m.logical() * bs;
      long end = Math.min(size, (m.logical() + m.count()) * bs);
      Extent last = out.isEmpty() ? null : out.get(out.size() - 1);
      if (last != null && last.end() == start) {
        out.set(out.size() - 1, new Extent(last.offset(), end - last.offset()));
      } else {
        out.add(new Extent(start, end - start));
      }
    }
    return out;
  }

  @Override
  public void close() {}

  int cacheBlockSize() {
    return sb.blockSize();
  }

  // --- inodes and forks ---

  XfsInode inode(long number) throws IOException {
    long offset = sb.inodeOffset(number);
    if (offset < 0) {
      throw new IOException(
          fmt(
              "xfs: inode %d does not exist (its allocation group or block is outside the"
                  + " filesystem)",
              number));
    }
    long block = offset / sb.blockSize();
    int within = (int) (offset % sb.blockSize());
    ByteBuffer b = cache.block(block, fmt("inode %d at offset %s", number, hex(offset)));
    XfsInode inode = new XfsInode(number, offset, b.slice(within, sb.inodeSize()));
    String where = where(inode);
    if (inode.magic() != XfsInode.MAGIC) {
      throw new IOException(
          fmt("%s: magic %s (expected 0x494e \"IN\")", where, hex(inode.magic())));
    }
    if (inode.version() != 3) {
      throw new IOException(fmt("%s: inode version %d (expected 3)", where, inode.version()));
    }
    if (!inode.forkFits()) {
      throw new IOException(
          fmt("%s: data fork of %d bytes does not fit the inode", where, inode.dataForkSize()));
    }
    return inode;
  }

  private static String where(XfsInode inode) {
    return fmt("xfs: inode %d at offset %s", inode.number(), hex(inode.offset()));
  }

  private long checkedSize(XfsInode inode) throws IOException {
    long size = inode.size();
    if (size < 0) {
      throw new IOException(fmt("%s: size %s", where(inode), Long.toUnsignedString(size)));
    }
    if ((inode.flags() & XfsInode.FLAG_REALTIME) != 0) {
      throw new IOException(
          where(inode) + ": data on the realtime device; realtime files are not supported");
    }
    return size;
  }

  /** The data fork's extents, sorted by file block and checked not to overlap. */
  List<Mapping> mappings(XfsInode inode) throws IOException {
    synchronized (extentCache) {
      List<Mapping> cached = extentCache.get(inode.number());
      if (cached != null) {
        return cached;
      }
    }
    String where = where(inode);
    List<Mapping> out = new ArrayList<>();
    ByteBuffer fork = inode.dataFork();
    switch (inode.format()) {
      case XfsInode.FORMAT_EXTENTS -> {
        long n = inode.dataExtents();
        if (n * 16 > fork.capacity()) {
          throw new IOException(
              fmt(
                  "%s: %d extents do not fit the data fork of %d bytes",
                  where, n, fork.capacity()));
        }
        records(fork, 0, (int) n, out, where);
      }
      case XfsInode.FORMAT_BTREE -> {
        int level = fork.getShort(0) & 0xffff;
        int recs = fork.getShort(2) & 0xffff;
        int max = (fork.capacity() - 4) / 16;
        if (level == 0 || level > MAX_BTREE_LEVEL || recs > max) {
          throw new IOException(
              fmt(
                  "%s: extent btree root at level %d with %d of %d records",
                  where, level, recs, max));
        }
        Set<Long> visited = new HashSet<>();
        for (int i = 0; i < recs; i++) {
          btree(fork.getLong(4 + max * 8 + i * 8), level - 1, out, visited, where);
        }
      }
      case XfsInode.FORMAT_LOCAL -> {
        return List.of();
      }
      default ->
          throw new IOException(
              fmt("%s: data fork format %d has no extents", where, inode.format()));
    }
    out.sort(Comparator.comparingLong(Mapping::logical));
    for (int i = 1; i < out.size(); i++) {
      Mapping a = out.get(i - 1);
      if (a.logical() + a.count() > out.get(i).logical()) {
        throw new IOException(
            fmt("%s: extents overlap at file block %d", where, out.get(i).logical()));
      }
    }
    List<Mapping> result = List.copyOf(out);
    synchronized (extentCache) {
      extentCache.put(inode.number(), result);
    }
    return result;
  }

  private void btree(long fsb, int level, List<Mapping> out, Set<Long> visited, String where)
      throws IOException {
    long offset = sb.blockOffset(fsb, 1);
    if (offset < 0) {
      throw new IOException(
          fmt("%s: extent btree points at block %s, outside the filesystem", where, hex(fsb)));
    }
    if (!visited.add(fsb) || visited.size() > sb.dataBlocks()) {
      throw new IOException(
          fmt("%s: extent btree block at offset %s is reached twice", where, hex(offset)));
    }
    String node = fmt("%s: extent btree block at offset %s", where, hex(offset));
    ByteBuffer b = cache.block(offset / sb.blockSize(), node).order(ByteOrder.BIG_ENDIAN);
    int max = (sb.blockSize() - BMAP_HEADER) / 16;
    int magic = b.getInt(0);
    int blockLevel = b.getShort(4) & 0xffff;
    int recs = b.getShort(6) & 0xffff;
    if (magic != BMAP_MAGIC || blockLevel != level || recs > max) {
      throw new IOException(
          fmt(
              "%s: magic %s level %d with %d records (expected 0x424d4133,"
                  + " level %d, at most %d records)",
              node, hex(Integer.toUnsignedLong(magic)), blockLevel, recs, level, max));
    }
    if (level == 0) {
      records(b.slice(BMAP_HEADER, recs * 16), 0, recs, out, node);
      return;
    }
    for (int i = 0; i < recs; i++) {
      btree(b.getLong(BMAP_HEADER + max * 8 + i * 8), level - 1, out, visited, where);
    }
  }

  private void records(ByteBuffer b, int from, int n, List<Mapping> out, String where)
      throws IOException {
    b.order(ByteOrder.BIG_ENDIAN);
    for (int i = 0; i < n; i++) {
      long l0 = b.getLong(from + 16 * i);
      long l1 = b.getLong(from + 16 * i + 8);
      boolean unwritten = l0 < 0;
      long logical = (l0 & Long.MAX_VALUE) >>> 9;
      long start = ((l0 & 0x1ff) << 43) | (l1 >>> 21);
      long count = l1 & 0x1fffff;
      if (count == 0) {
        throw new IOException(fmt("%s: extent %d is empty", where, i));
      }
      long offset = sb.blockOffset(start, count);
      if (offset < 0) {
        throw new IOException(
            fmt(
                "%s: extent %d (file block %d, %d blocks at %s) is outside the" + " filesystem",
                where, i, logical, count, hex(start)));
      }
      if (out.size() >= sb.dataBlocks()) {
        throw new IOException(fmt("%s: more extents than the filesystem has blocks", where));
      }
      out.add(new Mapping(logical, count, offset, unwritten));
    }
  }

  // --- data ---

  private int readData(XfsInode inode, long position, ByteBuffer dst) throws IOException {
    long size = checkedSize(inode);
    if (position < 0) {
      throw new IllegalArgumentException("negative position " + position);
    }
    if (position >= size) {
      return -1;
    }
    int total = 0;
    List<Mapping> mappings = mappings(inode);
    long bs = sb.blockSize();
    while (dst.hasRemaining() && position < size) {
      long logical = position / bs;
      long within = position % bs;
      Mapping m = find(mappings, logical);
      long runBlocks;
      long physical;
      if (m == null || m.logical() > logical) {
        runBlocks = m == null ? Long.MAX_VALUE / bs - logical : m.logical() - logical;
        physical = -1;
      } else {
        runBlocks = m.logical() + m.count() - logical;
        physical = m.unwritten() ? -1 : m.offset() + (logical - m.logical()) * bs + within;
      }
      long runBytes =
          runBlocks > (size - position) / bs + 1 ? size - position : runBlocks * bs - within;
      int n = (int) Math.min(Math.min(dst.remaining(), runBytes), size - position);
      if (physical < 0) {
        for (int i = 0; i < n; i++) {
          dst.put((byte) 0);
        }
      } else {
        ByteBuffer slice = dst.slice(dst.position(), n);
        cache.read(physical, slice, fmt("inode %d data at file block %d", inode.number(), logical));
        dst.position(dst.position() + n);
      }
      position += n;
      total += n;
    }
    return total;
  }

  /** The extent holding {@code logical}, else the first one after it, else null. */
  private static Mapping find(List<Mapping> mappings, long logical) {
    int lo = 0;
    int hi = mappings.size() - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      Mapping m = mappings.get(mid);
      if (m.logical() + m.count() <= logical) {
        lo = mid + 1;
      } else if (m.logical() > logical) {
        hi = mid - 1;
      } else {
        return m;
      }
    }
    return lo < mappings.size() ? mappings.get(lo) : null;
  }

  // --- directories ---

  /** Receives directory entries; returns false to stop. */
  private interface EntryVisitor {
    boolean visit(long inode, String name) throws IOException;
  }

  private void entries(XfsInode dir, EntryVisitor visitor) throws IOException {
    String where = where(dir);
    if (dir.format() == XfsInode.FORMAT_LOCAL) {
      shortForm(dir, where, visitor);
      return;
    }
    if (dir.format() != XfsInode.FORMAT_EXTENTS && dir.format() != XfsInode.FORMAT_BTREE) {
      throw new IOException(fmt("%s: directory in data fork format %d", where, dir.format()));
    }
    int dirBlock = sb.dirBlockSize();
    long perDirBlock = dirBlock / sb.blockSize();
    long leafBlock = DIR_LEAF_OFFSET / sb.blockSize();
    Set<Long> done = new HashSet<>();
    for (Mapping m : mappings(dir)) {
      if (m.logical() >= leafBlock) {
        break;
      }
      long end = Math.min(m.logical() + m.count(), leafBlock);
      for (long fsb = m.logical(); fsb < end; fsb++) {
        long db = fsb / perDirBlock;
        if (!done.add(db)) {
          continue;
        }
        if ((long) done.size() * dirBlock > cache.volumeSize()) {
          throw new IOException(
              fmt("%s: directory data blocks add up to more than the volume holds", where));
        }
        byte[] block = new byte[dirBlock];
        ByteBuffer b = ByteBuffer.wrap(block);
        long at = db * dirBlock;
        while (b.hasRemaining()) {
          int got = readDirectoryData(dir, at + b.position(), b);
          if (got <= 0) {
            break;
          }
        }
        String blockWhere = fmt("%s: directory block %d", where, db);
        if (!dataBlock(b.clear().order(ByteOrder.BIG_ENDIAN), blockWhere, visitor)) {
          return;
        }
      }
    }
  }

  /** Reads directory bytes ignoring the inode size, which counts only the data section. */
  private int readDirectoryData(XfsInode dir, long position, ByteBuffer dst) throws IOException {
    long bs = sb.blockSize();
    Mapping m = find(mappings(dir), position / bs);
    if (m == null || m.logical() > position / bs || m.unwritten()) {
      int n = (int) Math.min(dst.remaining(), bs - position % bs);
      dst.position(dst.position() + n);
      return n;
    }
    long runBytes = (m.logical() + m.count()) * bs - position;
    int n = (int) Math.min(dst.remaining(), runBytes);
    cache.read(
        m.offset() + position - m.logical() * bs,
        dst.slice(dst.position(), n),
        fmt("directory inode %d at byte %d", dir.number(), position));
    dst.position(dst.position() + n);
    return n;
  }

  private boolean dataBlock(ByteBuffer b, String where, EntryVisitor visitor) throws IOException {
    int magic = b.getInt(0);
    int end = b.capacity();
    if (magic == DIR_BLOCK_MAGIC) {
      long count = Integer.toUnsignedLong(b.getInt(end - 8));
      if (count * 8 + 8 > end - DIR_DATA_HEADER) {
        throw new IOException(fmt("%s: block tail counts %d leaf entries", where, count));
      }
      end -= 8 + (int) count * 8;
    } else if (magic != DIR_DATA_MAGIC) {
      if (magic == 0) {
        return true; // a hole inside a directory block range: nothing stored there
      }
      throw new IOException(
          fmt(
              "%s: magic %s (expected 0x58444233 or 0x58444433)",
              where, hex(Integer.toUnsignedLong(magic))));
    }
    boolean ftype = sb.hasFileType();
    int at = DIR_DATA_HEADER;
    while (at + 8 <= end) {
      if ((b.getShort(at) & 0xffff) == 0xffff) {
        int len = b.getShort(at + 2) & 0xffff;
        if (len < 8 || len % 8 != 0 || at + len > end) {
          throw new IOException(fmt("%s: free space at +%d of %d bytes", where, at, len));
        }
        at += len;
        continue;
      }
      if (at + 9 > end) {
        throw new IOException(fmt("%s: entry at +%d overruns the block", where, at));
      }
      long ino = b.getLong(at);
      int nameLen = b.get(at + 8) & 0xff;
      int len = (8 + 1 + nameLen + (ftype ? 1 : 0) + 2 + 7) & ~7;
      if (nameLen == 0 || at + len > end) {
        throw new IOException(
            fmt("%s: entry at +%d with a name of %d bytes overruns the block", where, at, nameLen));
      }
      if (!visitor.visit(ino, Names.utf8(b, at + 9, nameLen))) {
        return false;
      }
      at += len;
    }
    return true;
  }

  private void shortForm(XfsInode dir, String where, EntryVisitor visitor) throws IOException {
    ByteBuffer b = dir.dataFork();
    int end = (int) Math.min(b.capacity(), Math.max(0, dir.size()));
    if (end < 6) {
      throw new IOException(fmt("%s: short-form directory of %d bytes", where, end));
    }
    int count = b.get(0) & 0xff;
    int i8 = b.get(1) & 0xff;
    int inoSize = i8 > 0 ? 8 : 4;
    boolean ftype = sb.hasFileType();
    int at = 2 + inoSize;
    for (int i = 0; i < count; i++) {
      if (at + 3 > end) {
        throw new IOException(
            fmt("%s: short-form entry %d at +%d overruns the fork", where, i, at));
      }
      int nameLen = b.get(at) & 0xff;
      int inoAt = at + 3 + nameLen + (ftype ? 1 : 0);
      if (nameLen == 0 || inoAt + inoSize > end) {
        throw new IOException(
            fmt(
                "%s: short-form entry %d at +%d with a name of %d bytes" + " overruns the fork",
                where, i, at, nameLen));
      }
      long ino = inoSize == 8 ? b.getLong(inoAt) : Integer.toUnsignedLong(b.getInt(inoAt));
      if (!visitor.visit(ino, Names.utf8(b, at + 3, nameLen))) {
        return;
      }
      at = inoAt + inoSize;
    }
  }
}
