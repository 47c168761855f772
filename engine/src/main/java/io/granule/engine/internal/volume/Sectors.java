package io.granule.engine.internal.volume;

import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

/** Bounds-checked little-endian reads of partition table structures. */
final class Sectors {
  private Sectors() {}

  /**
   * Reads {@code length} bytes at {@code offset}, refusing ranges outside the disk.
   *
   * @param what the structure being read, for the error message, e.g. {@code gpt header}
   */
  static ByteBuffer read(DiskImage disk, long offset, int length, String what) throws IOException {
    if (offset < 0 || length < 0 || offset > disk.size() || length > disk.size() - offset) {
      throw new IOException(
          String.format(
              Locale.ROOT,
              "%s at offset 0x%x (%d bytes) is outside the disk of 0x%x bytes",
              what,
              offset,
              length,
              disk.size()));
    }
    ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
    disk.read(offset, b);
    return b.flip();
  }

  static long u32(ByteBuffer b, int at) {
    return Integer.toUnsignedLong(b.getInt(at));
  }

  static String hex(long v) {
    return "0x" + Long.toHexString(v);
  }
}
