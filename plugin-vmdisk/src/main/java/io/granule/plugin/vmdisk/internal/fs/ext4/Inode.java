package io.granule.plugin.vmdisk.internal.fs.ext4;

import static io.granule.plugin.vmdisk.internal.fs.ext4.Superblock.u32;

import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Instant;

/**
 * One on-disk inode: its raw bytes and the fields decoded from them.
 *
 * @param number the inode number
 * @param offset the inode's byte offset in the volume, for error messages
 * @param raw the inode's bytes ({@code s_inode_size} of them), little-endian
 */
record Inode(long number, long offset, ByteBuffer raw) {
  static final int FLAG_ENCRYPT = 0x800;
  static final int FLAG_EXTENTS = 0x80000;
  static final int FLAG_INLINE_DATA = 0x10000000;
  static final int I_BLOCK = 0x28;
  static final int I_BLOCK_SIZE = 60;

  Inode {
    raw = raw.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  int mode() {
    return raw.getShort(0) & 0xffff;
  }

  FileKind kind() {
    return switch (mode() & 0xf000) {
      case 0x8000 -> FileKind.FILE;
      case 0x4000 -> FileKind.DIRECTORY;
      case 0xa000 -> FileKind.SYMLINK;
      default -> FileKind.OTHER;
    };
  }

  /** The size in bytes; a value past 2^63 reads as negative and is refused by callers. */
  long size() {
    return u32(raw, 0x4) | (u32(raw, 0x6c) << 32);
  }

  int flags() {
    return raw.getInt(0x20);
  }

  boolean hasFlag(int flag) {
    return (flags() & flag) != 0;
  }

  long uid() {
    return (raw.getShort(0x2) & 0xffff) | ((long) (raw.getShort(0x78) & 0xffff) << 16);
  }

  long gid() {
    return (raw.getShort(0x18) & 0xffff) | ((long) (raw.getShort(0x7a) & 0xffff) << 16);
  }

  int linkCount() {
    return raw.getShort(0x1a) & 0xffff;
  }

  /** 512-byte sectors (or blocks, for huge files) in use, including an extended-attribute block. */
  long blocks() {
    return u32(raw, 0x1c) | ((long) (raw.getShort(0x74) & 0xffff) << 32);
  }

  long fileAcl() {
    return u32(raw, 0x68) | ((long) (raw.getShort(0x76) & 0xffff) << 32);
  }

  /**
   * The size of the extra fields after the first 128 bytes, or 0 when the inode has none or the
   * recorded size does not fit.
   */
  int extraSize() {
    if (raw.capacity() <= 128) {
      return 0;
    }
    int extra = raw.getShort(0x80) & 0xffff;
    return extra % 4 == 0 && 128 + extra <= raw.capacity() ? extra : 0;
  }

  /** The 60-byte {@code i_block} area: block map, extent tree root, inline data or symlink. */
  ByteBuffer iblock() {
    return raw.slice(I_BLOCK, I_BLOCK_SIZE).order(ByteOrder.LITTLE_ENDIAN);
  }

  FileNode node() {
    return new FileNode(
        number,
        kind(),
        Math.max(0, size()),
        mode() & 07777,
        uid(),
        gid(),
        linkCount(),
        time(0x10, 0x88),
        time(0x8, 0x8c),
        time(0xc, 0x84),
        extraSize() >= 0x98 - 128 ? time(0x90, 0x94) : null);
  }

  private Instant time(int secondsAt, int extraAt) {
    long seconds = raw.getInt(secondsAt);
    if (extraSize() < extraAt + 4 - 128) {
      return Instant.ofEpochSecond(seconds);
    }
    long extra = u32(raw, extraAt);
    return Instant.ofEpochSecond(seconds + ((extra & 3) << 32), extra >>> 2);
  }
}
