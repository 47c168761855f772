package io.granule.plugin.vmdisk.internal.fs.xfs;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The fields of an XFS superblock (the first sector of allocation group 0) this reader uses,
 * checked for consistency. Only version 5 (CRC-enabled) filesystems are accepted.
 */
record XfsSuperblock(
    int blockSize,
    long dataBlocks,
    long rootInode,
    long agBlocks,
    long agCount,
    int inodeSize,
    int inodesPerBlockLog,
    int agBlocksLog,
    int dirBlockSize,
    long incompat) {

  static final int MAGIC = 0x58465342; // "XFSB"
  static final long INCOMPAT_FTYPE = 0x1;
  static final long INCOMPAT_SPINODES = 0x2;
  static final long INCOMPAT_META_UUID = 0x4;
  static final long INCOMPAT_BIGTIME = 0x8;
  static final long INCOMPAT_NEEDSREPAIR = 0x10;
  static final long INCOMPAT_NREXT64 = 0x20;
  static final long INCOMPAT_EXCHRANGE = 0x40;
  static final long INCOMPAT_PARENT = 0x80;
  static final long SUPPORTED_INCOMPAT =
      INCOMPAT_FTYPE
          | INCOMPAT_SPINODES
          | INCOMPAT_META_UUID
          | INCOMPAT_BIGTIME
          | INCOMPAT_NREXT64
          | INCOMPAT_EXCHRANGE
          | INCOMPAT_PARENT;

  static boolean hasMagic(ByteBuffer sb) {
    return sb.getInt(0) == MAGIC;
  }

  /**
   * Parses and checks the superblock.
   *
   * @param sb the first 512 bytes of the volume, big-endian
   */
  static XfsSuperblock parse(ByteBuffer sb, long volumeSize) throws IOException {
    String where = "xfs: superblock at offset 0x0";
    if (!hasMagic(sb)) {
      throw new IOException(
          fmt(
              "%s: magic %s (expected 0x58465342 \"XFSB\"): not an xfs filesystem, or its"
                  + " superblock is damaged (xfs_repair finds the secondary superblocks)",
              where, hex(Integer.toUnsignedLong(sb.getInt(0)))));
    }
    int version = sb.getShort(100) & 0xf;
    if (version != 5) {
      throw new IOException(
          fmt(
              "%s: version %d filesystem; only version 5 (crc=1, the mkfs.xfs default since"
                  + " xfsprogs 3.2.3) is supported",
              where, version));
    }
    if (sb.get(126) != 0) {
      throw new IOException(where + ": mkfs did not finish (sb_inprogress is set)");
    }
    long incompat = Integer.toUnsignedLong(sb.getInt(216));
    if ((incompat & INCOMPAT_NEEDSREPAIR) != 0) {
      throw new IOException(where + ": the filesystem is marked as needing xfs_repair");
    }
    long unsupported = incompat & ~SUPPORTED_INCOMPAT;
    if (unsupported != 0) {
      throw new IOException(
          fmt(
              "%s: unsupported incompatible features %s; this reader supports %s",
              where, hex(unsupported), hex(SUPPORTED_INCOMPAT)));
    }
    int blockSize = sb.getInt(4);
    int blockLog = sb.get(120);
    int inodeSize = sb.getShort(104) & 0xffff;
    int inodeLog = sb.get(122);
    int inopbLog = sb.get(123);
    int agBlkLog = sb.get(124);
    int dirBlkLog = sb.get(192);
    long agBlocks = Integer.toUnsignedLong(sb.getInt(84));
    long agCount = Integer.toUnsignedLong(sb.getInt(88));
    long dataBlocks = sb.getLong(8);
    if (blockLog < 9
        || blockLog > 16
        || blockSize != 1 << blockLog
        || inodeLog < 8
        || inodeLog > 11
        || inodeSize != 1 << inodeLog
        || inodeSize > blockSize
        || inopbLog != blockLog - inodeLog
        || agBlocks == 0
        || agBlkLog > 31
        || agBlocks > 1L << agBlkLog
        || agBlocks <= (1L << agBlkLog) / 2
        || agCount == 0
        || dirBlkLog < 0
        || blockLog + dirBlkLog > 16
        || dataBlocks <= 0
        || dataBlocks > agBlocks * agCount) {
      throw new IOException(
          fmt(
              "%s: inconsistent geometry: block size %d (log %d), inode size %d (log %d, %d per"
                  + " block log), %d allocation groups of %d blocks (log %d), %d blocks,"
                  + " directory block log %d",
              where,
              blockSize,
              blockLog,
              inodeSize,
              inodeLog,
              inopbLog,
              agCount,
              agBlocks,
              agBlkLog,
              dataBlocks,
              dirBlkLog));
    }
    if (dataBlocks > volumeSize / blockSize) {
      throw new IOException(
          fmt(
              "%s: the filesystem has %d blocks of %d bytes but the volume only %d bytes:"
                  + " the volume is truncated or is not this filesystem's",
              where, dataBlocks, blockSize, volumeSize));
    }
    return new XfsSuperblock(
        blockSize,
        dataBlocks,
        sb.getLong(56),
        agBlocks,
        agCount,
        inodeSize,
        inopbLog,
        agBlkLog,
        blockSize << dirBlkLog,
        incompat);
  }

  boolean hasFileType() {
    return (incompat & INCOMPAT_FTYPE) != 0;
  }

  /**
   * The byte offset in the volume of filesystem block {@code fsb} (AG number in the high bits), or
   * -1 if it names no block of the filesystem.
   */
  long blockOffset(long fsb, long count) {
    long ag = fsb >>> agBlocksLog;
    long agb = fsb & ((1L << agBlocksLog) - 1);
    if (fsb < 0 || ag >= agCount || count < 0 || agb + count > agBlocks) {
      return -1;
    }
    long linear = ag * agBlocks + agb;
    return linear + count > dataBlocks ? -1 : linear * blockSize;
  }

  /** The byte offset of inode {@code ino}, or -1 if it names no inode of the filesystem. */
  long inodeOffset(long ino) {
    int shift = inodesPerBlockLog + agBlocksLog;
    if (ino <= 0 || shift >= 63) {
      return -1;
    }
    long ag = ino >>> shift;
    long agino = ino & ((1L << shift) - 1);
    long agb = agino >>> inodesPerBlockLog;
    long within = agino & ((1L << inodesPerBlockLog) - 1);
    long block = blockOffset((ag << agBlocksLog) | agb, 1);
    return block < 0 ? -1 : block + within * inodeSize;
  }
}
