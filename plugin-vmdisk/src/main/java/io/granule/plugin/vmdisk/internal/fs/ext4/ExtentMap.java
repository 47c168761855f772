package io.granule.plugin.vmdisk.internal.fs.ext4;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;
import static io.granule.plugin.vmdisk.internal.fs.ext4.Superblock.u32;

import io.granule.plugin.vmdisk.internal.fs.BlockCache;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * An ext4 extent tree, walked from the root in the inode for every lookup.
 *
 * <p>Each node's header is checked (magic, entry count, depth exactly one less than its parent's,
 * at most {@link #MAX_DEPTH}), so a lookup reads at most {@code MAX_DEPTH} blocks and cannot loop,
 * whatever the tree points at. Entry order is not trusted: lookups scan every entry of a node.
 */
final class ExtentMap implements BlockMap {
  static final int MAGIC = 0xf30a;
  static final int MAX_DEPTH = 5;
  private static final int INIT_MAX_LEN = 32768;

  private final BlockCache cache;
  private final Inode inode;
  private final long blocksCount;

  ExtentMap(BlockCache cache, Inode inode, long blocksCount) {
    this.cache = cache;
    this.inode = inode;
    this.blocksCount = blocksCount;
  }

  @Override
  public Run map(long logical) throws IOException {
    ByteBuffer node = inode.iblock();
    String where = fmt("ext4: inode %d at offset %s", inode.number(), hex(inode.offset()));
    int depth = header(node, where, -1);
    long upper = Long.MAX_VALUE;
    while (true) {
      int entries = node.getShort(2) & 0xffff;
      if (depth == 0) {
        long next = upper;
        for (int i = 0; i < entries; i++) {
          int at = 12 + 12 * i;
          long first = u32(node, at);
          int len = node.getShort(at + 4) & 0xffff;
          boolean unwritten = len > INIT_MAX_LEN;
          if (unwritten) {
            len -= INIT_MAX_LEN;
          }
          if (len == 0) {
            continue;
          }
          if (first <= logical && logical < first + len) {
            long start = ((long) (node.getShort(at + 6) & 0xffff) << 32) | u32(node, at + 8);
            if (start + len > blocksCount) {
              throw new IOException(
                  fmt(
                      "%s: extent of logical blocks [%d, +%d) at block %d is past the end of the"
                          + " filesystem (%d blocks)",
                      where, first, len, start, blocksCount));
            }
            long run = Math.min(first + len, upper) - logical;
            return new Run(unwritten ? HOLE : start + (logical - first), run);
          }
          if (first > logical) {
            next = Math.min(next, first);
          }
        }
        return new Run(HOLE, next - logical);
      }
      long chosenKey = -1;
      long child = 0;
      long next = upper;
      for (int i = 0; i < entries; i++) {
        int at = 12 + 12 * i;
        long key = u32(node, at);
        if (key <= logical && key > chosenKey) {
          chosenKey = key;
          child = ((long) (node.getShort(at + 8) & 0xffff) << 32) | u32(node, at + 4);
        } else if (key > logical) {
          next = Math.min(next, key);
        }
      }
      if (chosenKey < 0) {
        return new Run(HOLE, next - logical);
      }
      upper = next;
      if (child >= blocksCount) {
        throw new IOException(
            fmt(
                "%s: extent tree index points at block %d, past the end of the filesystem (%d"
                    + " blocks)",
                where, child, blocksCount));
      }
      where =
          fmt(
              "ext4: inode %d extent tree node at offset %s",
              inode.number(), hex(child * cache.blockSize()));
      node = cache.block(child, where);
      depth = header(node, where, depth - 1);
    }
  }

  /**
   * Checks a node header and returns its depth.
   *
   * @param expectedDepth the depth the node must have, or -1 for the root
   */
  private int header(ByteBuffer node, String where, int expectedDepth) throws IOException {
    int magic = node.getShort(0) & 0xffff;
    if (magic != MAGIC) {
      throw new IOException(fmt("%s: extent header magic %s (expected 0xf30a)", where, hex(magic)));
    }
    int entries = node.getShort(2) & 0xffff;
    int max = node.getShort(4) & 0xffff;
    int depth = node.getShort(6) & 0xffff;
    int capacity = (node.capacity() - 12) / 12;
    if (entries > max || max > capacity) {
      throw new IOException(
          fmt(
              "%s: extent header holds %d of %d entries (room for %d)",
              where, entries, max, capacity));
    }
    if (expectedDepth < 0 ? depth > MAX_DEPTH : depth != expectedDepth) {
      throw new IOException(
          fmt(
              "%s: extent tree depth %d (expected %s)",
              where,
              depth,
              expectedDepth < 0 ? "at most " + MAX_DEPTH : Integer.toString(expectedDepth)));
    }
    return depth;
  }
}
