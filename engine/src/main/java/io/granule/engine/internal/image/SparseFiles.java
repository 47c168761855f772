package io.granule.engine.internal.image;

import io.granule.engine.internal.nativelib.NativeLibrary;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a sparse file holds data: {@code lseek(2)} with {@code SEEK_DATA} and {@code SEEK_HOLE},
 * through {@code libgranule-native}. A hole reads as zeros; a backup skips it without reading it.
 *
 * <p>File systems without hole tracking report the whole file as data, which is always correct; so
 * does this class where the library is unavailable or {@code -Dgranule.sparse=false}.
 */
final class SparseFiles implements AutoCloseable {
  /**
   * Most extents one {@link #allocation} call lists; the rest of its range is reported as one
   * extent (correct: data is read and its zeros found). Bounds the memory of a badly fragmented
   * file's map; callers ask range by range.
   */
  static final int MAX_EXTENTS = 1 << 16;

  private static final boolean ENABLED =
      Boolean.parseBoolean(System.getProperty("granule.sparse", "true"))
          && NativeLibrary.unavailableReason() == null;
  private static final int ENXIO = 6;

  private final Path path;
  private final int fd;

  private SparseFiles(Path path, int fd) {
    this.path = path;
    this.fd = fd;
  }

  /**
   * Opens {@code path}, a regular file, to map its holes; null where holes cannot be found (no
   * native library, turned off), in which case the whole file counts as data.
   */
  static SparseFiles open(Path path) throws IOException {
    if (!ENABLED) {
      return null;
    }
    int fd = open0((path.toAbsolutePath() + "\0").getBytes(StandardCharsets.UTF_8));
    if (fd < 0) {
      throw new IOException(
          "unable to open disk image '" + path + "' to find its holes: errno " + -fd);
    }
    return new SparseFiles(path, fd);
  }

  /**
   * The ranges of {@code [offset, offset + length)} that hold data, sorted; at most {@link
   * #MAX_EXTENTS}, the last of which then runs to the end of the range.
   */
  List<Extent> allocation(long offset, long length) throws IOException {
    List<Extent> out = new ArrayList<>();
    long end = offset + length;
    long pos = offset;
    while (pos < end) {
      long data = seek0(fd, pos, false);
      if (data == -ENXIO) {
        break; // only a hole from pos to the end of the file
      }
      if (data < 0) {
        throw error("SEEK_DATA", pos, data);
      }
      if (data >= end) {
        break;
      }
      if (out.size() == MAX_EXTENTS - 1) {
        out.add(new Extent(data, end - data));
        break;
      }
      long hole = seek0(fd, data, true);
      if (hole < 0) {
        throw error("SEEK_HOLE", data, hole);
      }
      long stop = Math.min(Math.max(hole, data + 1), end);
      out.add(new Extent(data, stop - data));
      pos = stop;
    }
    return out;
  }

  private IOException error(String what, long at, long errno) {
    return new IOException(
        "unable to map the holes of disk image '"
            + path
            + "' ("
            + what
            + " at offset "
            + at
            + "): errno "
            + -errno);
  }

  /**
   * Whether less than half of what the file takes on disk is in the page cache (cachestat(2), Linux
   * 6.5); false where that cannot be found out.
   */
  boolean mostlyUncached() {
    long cached = cached0(fd);
    long allocated = allocated0(fd);
    return cached >= 0 && allocated > 0 && cached < allocated / 2;
  }

  @Override
  public void close() {
    close0(fd);
  }

  private static native int open0(byte[] path);

  private static native long seek0(int fd, long offset, boolean hole);

  private static native int close0(int fd);

  private static native long cached0(int fd);

  private static native long allocated0(int fd);
}
