package io.granule.engine.internal.volume;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * A contiguous slice of a disk (a partition, or the whole disk) seen as a disk of its own, so that
 * filesystem readers read a partition exactly as they read a disk.
 *
 * <p>Reads are translated by the slice's offset and refused past its end; they never reach outside
 * the slice. Thread-safe as the underlying disk is. Closing a volume does nothing: the disk belongs
 * to whoever opened it.
 */
public final class Volume implements DiskImage {
  private final DiskImage disk;
  private final String name;
  private final long offset;
  private final long length;

  /**
   * @param disk the disk that holds the slice
   * @param name the slice's name, e.g. {@code p1}, used in error messages
   * @param offset first byte of the slice on the disk
   * @param length bytes in the slice; {@code offset + length} is at most the disk's size
   */
  public Volume(DiskImage disk, String name, long offset, long length) {
    this.disk = Objects.requireNonNull(disk, "disk");
    this.name = Objects.requireNonNull(name, "name");
    if (offset < 0 || length < 0 || offset > disk.size() || length > disk.size() - offset) {
      throw new IllegalArgumentException(
          String.format(
              Locale.ROOT,
              "volume %s [0x%x, +0x%x) is outside the disk of 0x%x bytes",
              name,
              offset,
              length,
              disk.size()));
    }
    this.offset = offset;
    this.length = length;
  }

  /** The slice's name, e.g. {@code p1}. */
  public String name() {
    return name;
  }

  /** The first byte of the slice on the disk. */
  public long offset() {
    return offset;
  }

  @Override
  public long size() {
    return length;
  }

  @Override
  public String format() {
    return disk.format();
  }

  @Override
  public void read(long position, ByteBuffer dst) throws IOException {
    if (position < 0 || position > length || dst.remaining() > length - position) {
      throw new EOFException(
          String.format(
              Locale.ROOT,
              "volume %s: read of %d bytes at offset 0x%x is past its end (0x%x bytes)",
              name,
              dst.remaining(),
              position,
              length));
    }
    disk.read(offset + position, dst);
  }

  @Override
  public List<Extent> allocation(long position, long len) throws IOException {
    if (position < 0 || len < 0 || position > length || len > length - position) {
      throw new EOFException(
          String.format(
              Locale.ROOT,
              "volume %s: range [0x%x, +0x%x) is past its end (0x%x bytes)",
              name,
              position,
              len,
              length));
    }
    if (len == 0) {
      return List.of();
    }
    List<Extent> out = new ArrayList<>();
    for (Extent e : disk.allocation(offset + position, len)) {
      long start = Math.max(e.offset(), offset + position);
      long end = Math.min(e.end(), offset + position + len);
      if (end > start) {
        out.add(new Extent(start - offset, end - start));
      }
    }
    return out;
  }

  /** Does nothing: the disk stays open. */
  @Override
  public void close() {}

  @Override
  public String toString() {
    return "volume " + name + " at 0x" + Long.toHexString(offset) + " of " + length + " bytes";
  }
}
