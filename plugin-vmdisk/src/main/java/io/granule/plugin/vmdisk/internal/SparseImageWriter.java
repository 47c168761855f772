package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;

/**
 * What the sparse image writers share: the order checks of {@link DiskImageWriter}, gathering the
 * data into whole clusters (qcow2 clusters, VMDK grains, VHDX payload blocks) and handing each
 * cluster that holds a non-zero byte to {@link #writeCluster} once, in increasing order. All-zero
 * clusters are never handed over, so they stay unallocated.
 *
 * <p>Not thread-safe, like the interface.
 */
abstract class SparseImageWriter implements DiskImageWriter {
  private final Path path;
  private final FileChannel channel;
  private final long virtualSize;
  private final int clusterSize;
  private final byte[] cluster;
  private final byte[] zeros;
  // The cluster being gathered in the buffer (a write that covers only part of it), or -1.
  private long current = -1;
  private long position;
  private boolean finished;
  private boolean failed;

  /**
   * Creates {@code path}, which must not exist.
   *
   * @param clusterSize the unit of allocation, in bytes
   */
  SparseImageWriter(Path path, long virtualSize, int clusterSize) throws IOException {
    if (virtualSize < 0) {
      throw new IllegalArgumentException("invalid virtual size " + virtualSize);
    }
    this.path = path;
    this.virtualSize = virtualSize;
    this.clusterSize = clusterSize;
    this.cluster = new byte[clusterSize];
    this.zeros = new byte[clusterSize];
    try {
      this.channel =
          FileChannel.open(
              path,
              StandardOpenOption.CREATE_NEW,
              StandardOpenOption.WRITE,
              StandardOpenOption.READ,
              StandardOpenOption.SPARSE);
    } catch (FileAlreadyExistsException e) {
      throw new IOException("unable to create disk image '" + path + "': the file exists", e);
    } catch (IOException e) {
      throw new IOException("unable to create disk image '" + path + "': " + e.getMessage(), e);
    }
  }

  /** Fails on any option not in {@code known} or {@link DiskImageWriter#OPTION_FILE_NAME}. */
  static void checkOptions(String format, Map<String, String> options, Set<String> known) {
    for (String k : options.keySet()) {
      if (!k.equals(OPTION_FILE_NAME) && !known.contains(k)) {
        throw new IllegalArgumentException(
            "unknown "
                + format
                + " option '"
                + k
                + "' (known: "
                + String.join(", ", known.stream().sorted().toList())
                + ")");
      }
    }
  }

  /**
   * Parses a size option such as {@code 64k} or {@code 2M}; powers of two in {@code [min, max]}.
   */
  static int sizeOption(
      String format, Map<String, String> options, String key, int dflt, int min, int max) {
    String v = options.get(key);
    if (v == null) {
      return dflt;
    }
    long n;
    try {
      String t = v.trim();
      char unit = Character.toLowerCase(t.charAt(t.length() - 1));
      long mult =
          switch (unit) {
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            default -> 1;
          };
      n = Long.parseLong(mult == 1 ? t : t.substring(0, t.length() - 1)) * mult;
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(
          format + " option " + key + "='" + v + "' is not a size such as 64k or 1M", e);
    }
    if (n < min || n > max || Long.bitCount(n) != 1) {
      throw new IllegalArgumentException(
          format
              + " option "
              + key
              + "="
              + v
              + " is out of range: a power of two from "
              + min
              + " to "
              + max
              + " bytes");
    }
    return (int) n;
  }

  final Path path() {
    return path;
  }

  final long virtualSize() {
    return virtualSize;
  }

  final int clusterSize() {
    return clusterSize;
  }

  @Override
  public final void write(long offset, ByteBuffer data) throws IOException {
    if (finished) {
      throw new IllegalStateException("disk image '" + path + "' is already finished");
    }
    int length = data.remaining();
    if (offset < position || offset > virtualSize || length > virtualSize - offset) {
      throw new IllegalArgumentException(
          "write to disk image '"
              + path
              + "' at offset "
              + offset
              + " (length "
              + length
              + ") goes backwards or past the virtual size "
              + virtualSize
              + " (next offset must be at least "
              + position
              + ")");
    }
    long off = offset;
    while (data.hasRemaining()) {
      long index = off / clusterSize;
      int in = (int) (off % clusterSize);
      int n = Math.min(data.remaining(), clusterSize - in);
      if (index != current) {
        flushCluster();
        if (n == clusterSize) {
          // A whole cluster: written from the caller's buffer, neither copied nor cleared after.
          ByteBuffer whole = data.slice(data.position(), n);
          if (whole.mismatch(ByteBuffer.wrap(zeros)) >= 0) {
            guard(() -> writeCluster(index, whole));
          }
          data.position(data.position() + n);
          off += n;
          continue;
        }
        current = index;
      }
      data.get(cluster, in, n);
      off += n;
    }
    position = offset + length;
  }

  private void flushCluster() throws IOException {
    if (current < 0) {
      return;
    }
    if (Arrays.mismatch(cluster, zeros) >= 0) {
      guard(() -> writeCluster(current, ByteBuffer.wrap(cluster)));
      Arrays.fill(cluster, (byte) 0);
    }
    current = -1;
  }

  @Override
  public final void finish() throws IOException {
    if (finished) {
      throw new IllegalStateException("disk image '" + path + "' is already finished");
    }
    flushCluster();
    guard(this::finishImage);
    finished = true;
  }

  private interface Step {
    void run() throws IOException;
  }

  /** Runs a step; once a step failed the file is in an unknown state and nothing more is done. */
  private void guard(Step step) throws IOException {
    if (failed) {
      throw new IOException(
          "unable to write disk image '" + path + "': an earlier write failed; start again");
    }
    try {
      step.run();
    } catch (IOException | RuntimeException e) {
      failed = true;
      throw e;
    }
  }

  /**
   * Writes cluster {@code index} of the virtual disk (bytes {@code [index * clusterSize, …)}),
   * which holds a non-zero byte. Calls come in increasing index order, each index at most once. The
   * buffer is reused after the call returns.
   */
  abstract void writeCluster(long index, ByteBuffer data) throws IOException;

  /**
   * Writes the metadata, forces the data, then writes what makes the file a valid image (the
   * header) and forces it.
   */
  abstract void finishImage() throws IOException;

  /** Writes all of {@code b} at {@code offset} of the file. */
  final void writeAt(String what, ByteBuffer b, long offset) throws IOException {
    long pos = offset;
    try {
      while (b.hasRemaining()) {
        pos += channel.write(b, pos);
      }
    } catch (IOException e) {
      throw new IOException(
          "unable to write disk image '"
              + path
              + "': writing "
              + what
              + " at offset "
              + ImageFile.hex(pos)
              + ": "
              + e.getMessage(),
          e);
    }
  }

  /** Forces everything written so far to stable storage. */
  final void force(String step) throws IOException {
    try {
      channel.force(true);
    } catch (IOException e) {
      throw new IOException(
          "unable to write disk image '" + path + "': syncing " + step + ": " + e.getMessage(), e);
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }
}
