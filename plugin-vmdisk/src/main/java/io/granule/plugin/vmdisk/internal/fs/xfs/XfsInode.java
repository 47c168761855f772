package io.granule.plugin.vmdisk.internal.fs.xfs;

import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Instant;

/**
 * One version 3 XFS inode: its raw bytes (big-endian) and the fields decoded from them.
 *
 * @param number the inode number
 * @param offset the inode's byte offset in the volume, for error messages
 * @param raw the inode's bytes
 */
record XfsInode(long number, long offset, ByteBuffer raw) {
  static final int MAGIC = 0x494e; // "IN"
  static final int CORE_SIZE = 176;
  static final int FORMAT_DEV = 0;
  static final int FORMAT_LOCAL = 1;
  static final int FORMAT_EXTENTS = 2;
  static final int FORMAT_BTREE = 3;
  static final int FLAG_REALTIME = 0x1;
  static final long FLAG2_BIGTIME = 0x8;
  static final long FLAG2_NREXT64 = 0x10;
  private static final long BIGTIME_EPOCH_OFFSET = 1L << 31;

  XfsInode {
    raw = raw.asReadOnlyBuffer().order(ByteOrder.BIG_ENDIAN);
  }

  int magic() {
    return raw.getShort(0) & 0xffff;
  }

  int mode() {
    return raw.getShort(2) & 0xffff;
  }

  int version() {
    return raw.get(4) & 0xff;
  }

  int format() {
    return raw.get(5) & 0xff;
  }

  FileKind kind() {
    return switch (mode() & 0xf000) {
      case 0x8000 -> FileKind.FILE;
      case 0x4000 -> FileKind.DIRECTORY;
      case 0xa000 -> FileKind.SYMLINK;
      default -> FileKind.OTHER;
    };
  }

  long size() {
    return raw.getLong(56);
  }

  int flags() {
    return raw.getShort(90) & 0xffff;
  }

  long flags2() {
    return raw.getLong(120);
  }

  long dataExtents() {
    return (flags2() & FLAG2_NREXT64) != 0
        ? raw.getLong(24)
        : Integer.toUnsignedLong(raw.getInt(76));
  }

  /** The data fork's size in bytes: up to the attribute fork, or the rest of the inode. */
  int dataForkSize() {
    int forkOff = raw.get(82) & 0xff;
    return forkOff == 0 ? raw.capacity() - CORE_SIZE : forkOff * 8;
  }

  /** Whether the fork offset fits the inode. */
  boolean forkFits() {
    return dataForkSize() <= raw.capacity() - CORE_SIZE;
  }

  ByteBuffer dataFork() {
    return raw.slice(CORE_SIZE, dataForkSize()).order(ByteOrder.BIG_ENDIAN);
  }

  FileNode node() {
    return new FileNode(
        number,
        kind(),
        Math.max(0, size()),
        mode() & 07777,
        Integer.toUnsignedLong(raw.getInt(8)),
        Integer.toUnsignedLong(raw.getInt(12)),
        Integer.toUnsignedLong(raw.getInt(16)),
        time(40),
        time(32),
        time(48),
        time(144));
  }

  private Instant time(int at) {
    if ((flags2() & FLAG2_BIGTIME) != 0) {
      long ns = raw.getLong(at);
      return Instant.ofEpochSecond(
          Long.divideUnsigned(ns, 1_000_000_000L) - BIGTIME_EPOCH_OFFSET,
          Long.remainderUnsigned(ns, 1_000_000_000L));
    }
    return Instant.ofEpochSecond(raw.getInt(at), Integer.toUnsignedLong(raw.getInt(at + 4)));
  }
}
