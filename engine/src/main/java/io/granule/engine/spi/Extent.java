package io.granule.engine.spi;

/**
 * A byte range {@code [offset, offset + length)} of a virtual disk.
 *
 * @param offset first byte, at least 0
 * @param length number of bytes, at least 1
 */
public record Extent(long offset, long length) {
  public Extent {
    if (offset < 0 || length <= 0) {
      throw new IllegalArgumentException("invalid extent: offset=" + offset + " length=" + length);
    }
  }

  /** The first byte after this extent. */
  public long end() {
    return offset + length;
  }
}
