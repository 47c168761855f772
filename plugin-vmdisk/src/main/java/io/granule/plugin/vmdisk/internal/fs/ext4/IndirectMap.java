package io.granule.plugin.vmdisk.internal.fs.ext4;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;
import static io.granule.plugin.vmdisk.internal.fs.ext4.Superblock.u32;

import io.granule.plugin.vmdisk.internal.fs.BlockCache;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * An ext2/3 block map: 12 direct pointers, then single, double and triple indirect blocks. The
 * depth is fixed by the logical block number, so a lookup reads at most three blocks.
 */
final class IndirectMap implements BlockMap {
  private static final int DIRECT = 12;

  private final BlockCache cache;
  private final Inode inode;
  private final long blocksCount;
  private final long perBlock;

  IndirectMap(BlockCache cache, Inode inode, long blocksCount) {
    this.cache = cache;
    this.inode = inode;
    this.blocksCount = blocksCount;
    this.perBlock = cache.blockSize() / 4;
  }

  @Override
  public Run map(long logical) throws IOException {
    ByteBuffer iblock = inode.iblock();
    if (logical < DIRECT) {
      return run(iblock, DIRECT, (int) logical);
    }
    long rest = logical - DIRECT;
    long span = perBlock;
    int slot = DIRECT;
    while (rest >= span) {
      rest -= span;
      span *= perBlock;
      slot++;
      if (slot > DIRECT + 2) {
        return new Run(HOLE, Long.MAX_VALUE - logical);
      }
    }
    long pointer = u32(iblock, 4 * slot);
    while (true) {
      if (pointer == 0) {
        return new Run(HOLE, span - rest);
      }
      String where =
          fmt(
              "ext4: inode %d at offset %s: indirect block %d",
              inode.number(), hex(inode.offset()), pointer);
      if (pointer >= blocksCount) {
        throw new IOException(
            fmt("%s is past the end of the filesystem (%d blocks)", where, blocksCount));
      }
      ByteBuffer block = cache.block(pointer, where);
      span /= perBlock;
      int index = (int) (rest / span);
      rest %= span;
      if (span == 1) {
        return run(block, (int) perBlock, index);
      }
      pointer = u32(block, 4 * index);
    }
  }

  /** The run of contiguous (or zero) pointers starting at {@code index} of {@code pointers}. */
  private Run run(ByteBuffer pointers, int count, int index) throws IOException {
    long first = u32(pointers, 4 * index);
    int n = 1;
    while (index + n < count) {
      long p = u32(pointers, 4 * (index + n));
      if (first == 0 ? p != 0 : p != first + n) {
        break;
      }
      n++;
    }
    if (first != 0 && first + n > blocksCount) {
      throw new IOException(
          fmt(
              "ext4: inode %d at offset %s: data block %d is past the end of the filesystem (%d"
                  + " blocks)",
              inode.number(), hex(inode.offset()), first + n - 1, blocksCount));
    }
    return new Run(first == 0 ? HOLE : first, n);
  }
}
