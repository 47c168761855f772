package io.granule.plugin.vmdisk.internal.fs.ext4;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The fields of an ext2/3/4 superblock this reader uses, checked for consistency.
 *
 * <p>INCOMPAT features change how the filesystem must be read: unknown ones and those this reader
 * cannot read (compression, journal devices, Lustre dirdata) are refused. RO_COMPAT features only
 * matter to writers and are all accepted.
 */
record Superblock(
    long inodesCount,
    long blocksCount,
    long firstDataBlock,
    int blockSize,
    long blocksPerGroup,
    long inodesPerGroup,
    int inodeSize,
    int descSize,
    long featureCompat,
    long featureIncompat,
    long featureRoCompat,
    long firstMetaBg,
    long[] backupGroups) {

  static final long OFFSET = 1024;
  static final int SIZE = 1024;
  static final int MAGIC = 0xef53;

  static final long COMPAT_SPARSE_SUPER2 = 0x200;
  static final long INCOMPAT_COMPRESSION = 0x1;
  static final long INCOMPAT_FILETYPE = 0x2;
  static final long INCOMPAT_RECOVER = 0x4;
  static final long INCOMPAT_JOURNAL_DEV = 0x8;
  static final long INCOMPAT_META_BG = 0x10;
  static final long INCOMPAT_EXTENTS = 0x40;
  static final long INCOMPAT_64BIT = 0x80;
  static final long INCOMPAT_MMP = 0x100;
  static final long INCOMPAT_FLEX_BG = 0x200;
  static final long INCOMPAT_EA_INODE = 0x400;
  static final long INCOMPAT_DIRDATA = 0x1000;
  static final long INCOMPAT_CSUM_SEED = 0x2000;
  static final long INCOMPAT_LARGEDIR = 0x4000;
  static final long INCOMPAT_INLINE_DATA = 0x8000;
  static final long INCOMPAT_ENCRYPT = 0x10000;
  static final long INCOMPAT_CASEFOLD = 0x20000;
  static final long SUPPORTED_INCOMPAT =
      INCOMPAT_FILETYPE
          | INCOMPAT_RECOVER
          | INCOMPAT_META_BG
          | INCOMPAT_EXTENTS
          | INCOMPAT_64BIT
          | INCOMPAT_MMP
          | INCOMPAT_FLEX_BG
          | INCOMPAT_EA_INODE
          | INCOMPAT_CSUM_SEED
          | INCOMPAT_LARGEDIR
          | INCOMPAT_INLINE_DATA
          | INCOMPAT_ENCRYPT
          | INCOMPAT_CASEFOLD;
  static final long RO_COMPAT_SPARSE_SUPER = 0x1;
  static final long RO_COMPAT_HUGE_FILE = 0x8;

  /** Whether {@code sb} (the 1024 bytes at offset 1024) carries the ext2/3/4 magic. */
  static boolean hasMagic(ByteBuffer sb) {
    return (sb.getShort(0x38) & 0xffff) == MAGIC;
  }

  /**
   * Parses and checks the superblock.
   *
   * @param sb the 1024 bytes at offset 1024 of the volume, little-endian
   * @param volumeSize the volume's size in bytes
   */
  static Superblock parse(ByteBuffer sb, long volumeSize) throws IOException {
    String where = "ext4: superblock at offset 0x400";
    if (!hasMagic(sb)) {
      throw new IOException(
          fmt(
              "%s: magic 0x%x (expected 0xef53): not an ext2/3/4 filesystem, or its superblock is"
                  + " damaged (a backup superblock is at block 8193 or 32769; see e2fsck -b)",
              where, sb.getShort(0x38) & 0xffff));
    }
    long incompat = u32(sb, 0x60);
    long unsupported = incompat & ~SUPPORTED_INCOMPAT;
    if (unsupported != 0) {
      throw new IOException(
          fmt(
              "%s: unsupported incompatible features %s (%s); this reader supports %s",
              where, hex(unsupported), names(unsupported), hex(SUPPORTED_INCOMPAT)));
    }
    long logBlockSize = u32(sb, 0x18);
    if (logBlockSize > 6) {
      throw new IOException(
          fmt("%s: block size 2^%d KiB (expected 1 to 64 KiB)", where, logBlockSize));
    }
    int blockSize = 1024 << logBlockSize;
    long rev = u32(sb, 0x4c);
    int inodeSize = rev == 0 ? 128 : sb.getShort(0x58) & 0xffff;
    if (inodeSize < 128 || inodeSize > blockSize || Integer.bitCount(inodeSize) != 1) {
      throw new IOException(
          fmt(
              "%s: inode size %d (expected a power of two from 128 to %d)",
              where, inodeSize, blockSize));
    }
    boolean is64 = (incompat & INCOMPAT_64BIT) != 0;
    int descSize = is64 ? sb.getShort(0xfe) & 0xffff : 32;
    if (descSize < (is64 ? 64 : 32) || descSize > blockSize || Integer.bitCount(descSize) != 1) {
      throw new IOException(fmt("%s: group descriptor size %d", where, descSize));
    }
    long blocksCount = u32(sb, 0x4) | (is64 ? u32(sb, 0x150) << 32 : 0);
    long firstDataBlock = u32(sb, 0x14);
    long blocksPerGroup = u32(sb, 0x20);
    long inodesPerGroup = u32(sb, 0x28);
    long inodesCount = u32(sb, 0x0);
    if (blocksPerGroup == 0
        || blocksPerGroup > 8L * blockSize
        || inodesPerGroup == 0
        || inodesPerGroup > 8L * blockSize
        || firstDataBlock >= blocksCount
        || blocksCount < 0) {
      throw new IOException(
          fmt(
              "%s: inconsistent geometry: %d blocks from block %d, %d blocks and %d inodes per"
                  + " group",
              where, blocksCount, firstDataBlock, blocksPerGroup, inodesPerGroup));
    }
    if (blocksCount > volumeSize / blockSize) {
      throw new IOException(
          fmt(
              "%s: the filesystem has %d blocks of %d bytes but the volume only %d bytes:"
                  + " the volume is truncated or is not this filesystem's",
              where, blocksCount, blockSize, volumeSize));
    }
    long groups = (blocksCount - firstDataBlock + blocksPerGroup - 1) / blocksPerGroup;
    inodesCount = Math.min(inodesCount, groups * inodesPerGroup);
    return new Superblock(
        inodesCount,
        blocksCount,
        firstDataBlock,
        blockSize,
        blocksPerGroup,
        inodesPerGroup,
        inodeSize,
        descSize,
        u32(sb, 0x5c),
        incompat,
        u32(sb, 0x64),
        u32(sb, 0x104),
        new long[] {u32(sb, 0x24c), u32(sb, 0x250)});
  }

  boolean has(long incompatFeature) {
    return (featureIncompat & incompatFeature) != 0;
  }

  long groupCount() {
    return (blocksCount - firstDataBlock + blocksPerGroup - 1) / blocksPerGroup;
  }

  /** The block holding the descriptor of {@code group} and the descriptor's offset in it. */
  long descriptorBlock(long group) {
    long perBlock = blockSize / descSize;
    long descBlock = group / perBlock;
    if (!has(INCOMPAT_META_BG) || descBlock < firstMetaBg) {
      return firstDataBlock + 1 + descBlock;
    }
    long first = descBlock * perBlock;
    return firstDataBlock + first * blocksPerGroup + (hasSuperblock(first) ? 1 : 0);
  }

  int descriptorOffset(long group) {
    return (int) (group % (blockSize / descSize)) * descSize;
  }

  private boolean hasSuperblock(long group) {
    if (group == 0) {
      return true;
    }
    if ((featureCompat & COMPAT_SPARSE_SUPER2) != 0) {
      return group == backupGroups[0] || group == backupGroups[1];
    }
    if ((featureRoCompat & RO_COMPAT_SPARSE_SUPER) == 0 || group == 1) {
      return true;
    }
    return isPower(group, 3) || isPower(group, 5) || isPower(group, 7);
  }

  private static boolean isPower(long n, int base) {
    while (n % base == 0) {
      n /= base;
    }
    return n == 1;
  }

  private static String names(long features) {
    StringBuilder sb = new StringBuilder();
    if ((features & INCOMPAT_COMPRESSION) != 0) {
      sb.append("compression ");
    }
    if ((features & INCOMPAT_JOURNAL_DEV) != 0) {
      sb.append("journal_dev (an external journal, not a filesystem) ");
    }
    if ((features & INCOMPAT_DIRDATA) != 0) {
      sb.append("dirdata ");
    }
    long rest = features & ~(INCOMPAT_COMPRESSION | INCOMPAT_JOURNAL_DEV | INCOMPAT_DIRDATA);
    if (rest != 0) {
      sb.append("unknown ").append(hex(rest)).append(' ');
    }
    return sb.toString().trim();
  }

  static long u32(ByteBuffer b, int at) {
    return Integer.toUnsignedLong(b.getInt(at));
  }
}
