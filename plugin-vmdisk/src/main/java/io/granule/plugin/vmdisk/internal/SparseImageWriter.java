package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImageWriter;
import io.granule.engine.spi.PageCache;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What the sparse image writers share: the order checks of {@link DiskImageWriter}, gathering the
 * data into whole clusters (qcow2 clusters, VMDK grains, VHDX payload blocks) and handing each
 * cluster that holds a non-zero byte to {@link #writeCluster} once, in increasing order. All-zero
 * clusters are never handed over, so they stay unallocated.
 *
 * <p>Data clusters ({@link #writeData}) that follow each other in the file are written together, in
 * one gathering write per {@link #write} call, straight from the caller's buffer: with {@code
 * O_DIRECT} where the buffers and offsets are aligned (a restore's direct buffers are), so that the
 * data skips the page cache (no copy, no pages to allocate, nothing left to write back at the final
 * fsync), else through the page cache. Metadata ({@link #writeAt}) always goes through the page
 * cache. A file system that refuses a direct write gets it again buffered, and only buffered writes
 * after that.
 *
 * <p>Not thread-safe, like the interface.
 */
abstract class SparseImageWriter implements DiskImageWriter {
  private final Path path;
  private final FileChannel channel;
  // O_DIRECT channel of the same file for data, or null; align: its alignment (a power of two)
  private FileChannel direct;
  private final int align;
  private final long virtualSize;
  private final int clusterSize;
  // A cluster that writes cover in parts is gathered here (direct and aligned, like the callers')
  private final ByteBuffer cluster;
  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();
  // Data writes gathered for one write: their buffers, and the file range they fill
  private final List<ByteBuffer> pending = new ArrayList<>();
  private String pendingWhat;
  private long pendingStart;
  private long pendingEnd;
  // The cluster being gathered in the buffer (a write that covers only part of it), or -1.
  private long current = -1;
  private long position;
  private boolean finished;
  private boolean failed;

  /**
   * Creates {@code path}, which must not exist, readable and writable by its owner alone.
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
    // the file system's direct I/O alignment; 0 (not a power of two) or too large: no direct writes
    int a = PageCache.alignment(path.toAbsolutePath().getParent());
    this.align = a > 0 && a <= 1 << 20 ? a : 4096;
    this.cluster = allocateAligned(clusterSize, align);
    Object created;
    try {
      // 0600 from the start (audit14 F1: made 0644 and chmod-ed later, a user who opened it
      // meanwhile read the whole restored disk through his descriptor)
      this.channel =
          FileChannel.open(
              path,
              java.util.Set.of(
                  StandardOpenOption.CREATE_NEW,
                  StandardOpenOption.WRITE,
                  StandardOpenOption.READ,
                  StandardOpenOption.SPARSE),
              java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                  java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
      created = key(path);
    } catch (FileAlreadyExistsException e) {
      throw new IOException("unable to create disk image '" + path + "': the file exists", e);
    } catch (IOException e) {
      throw new IOException("unable to create disk image '" + path + "': " + e.getMessage(), e);
    }
    FileChannel d;
    try {
      d = a == align ? openDirect(path, created) : null;
      if (d != null && !sameFile(channel, d)) {
        // a file renamed over the new one before its identity was read by name: the direct
        // channel would write into it
        d.close();
        throw new IOException("disk image '" + path + "' was replaced while it was being created");
      }
    } catch (IOException e) {
      channel.close();
      throw e;
    }
    this.direct = d;
  }

  /**
   * Whether two channels of this process are open on one file, told by the file each descriptor
   * holds (not by name): the JVM keeps one lock table per file, so a lock on the second channel
   * overlapping one held on the first is refused only when both are the same file.
   */
  static boolean sameFile(FileChannel a, FileChannel b) throws IOException {
    long at = Long.MAX_VALUE - 1; // a byte no image and no other lock uses
    try (java.nio.channels.FileLock held = a.lock(at, 1, false)) {
      java.nio.channels.FileLock other = b.tryLock(at, 1, false);
      if (other != null) {
        other.release();
      }
      return false;
    } catch (java.nio.channels.OverlappingFileLockException same) {
      return true;
    }
  }

  /** The {@code O_DIRECT} open option, or null (none in this JVM, or turned off). */
  private static final OpenOption DIRECT = directOption();

  private static OpenOption directOption() {
    return "false".equals(System.getProperty("granule.image.direct"))
        ? null
        : PageCache.directOption();
  }

  /**
   * A second channel of {@code path} for direct writes, or null where it cannot be opened. Never
   * through a link: someone who can write the directory and renamed a link over the file just
   * created would have this restore write where it points.
   *
   * @throws IOException if {@code path} is no longer the file {@code created} is open on
   */
  private static FileChannel openDirect(Path path, Object created) throws IOException {
    if (DIRECT == null) {
      return null;
    }
    FileChannel direct;
    try {
      direct =
          FileChannel.open(
              path, StandardOpenOption.WRITE, DIRECT, java.nio.file.LinkOption.NOFOLLOW_LINKS);
    } catch (java.nio.file.FileSystemException e) {
      if (!java.nio.file.Files.isRegularFile(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
        throw new IOException(
            "disk image '" + path + "' was replaced while it was being created: " + e.getMessage(),
            e);
      }
      return null; // a file system without O_DIRECT
    } catch (IOException | UnsupportedOperationException e) {
      return null; // a file system without O_DIRECT
    }
    Object opened;
    try {
      opened = key(path);
    } catch (IOException e) {
      direct.close();
      throw e;
    }
    if (!created.equals(opened)) {
      direct.close();
      throw new IOException("disk image '" + path + "' was replaced while it was being created");
    }
    return direct;
  }

  private static Object key(Path path) throws IOException {
    return java.nio.file.Files.readAttributes(
            path,
            java.nio.file.attribute.BasicFileAttributes.class,
            java.nio.file.LinkOption.NOFOLLOW_LINKS)
        .fileKey();
  }

  private static ByteBuffer allocateAligned(int length, int align) {
    return ByteBuffer.allocateDirect(length + align).alignedSlice(align).limit(length).slice();
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
          if (!allZero(whole)) {
            guard(() -> writeCluster(index, whole));
          }
          data.position(data.position() + n);
          off += n;
          continue;
        }
        current = index;
      }
      cluster.put(in, data, data.position(), n);
      data.position(data.position() + n);
      off += n;
    }
    guard(this::flushData); // the caller's buffer is free again when this returns
    position = offset + length;
  }

  /** Whether the remaining bytes of {@code b} are all zero (its position unchanged). */
  private static boolean allZero(ByteBuffer b) {
    int end = b.limit();
    for (int at = b.position(); at < end; at += ZEROS.capacity()) {
      int n = Math.min(ZEROS.capacity(), end - at);
      if (b.slice(at, n).mismatch(ZEROS.slice(0, n)) >= 0) {
        return false;
      }
    }
    return true;
  }

  private void flushCluster() throws IOException {
    if (current < 0) {
      return;
    }
    if (!allZero(cluster.clear())) {
      guard(() -> writeCluster(current, cluster.duplicate()));
      guard(this::flushData);
      for (int at = 0; at < clusterSize; at += ZEROS.capacity()) {
        cluster.put(at, ZEROS, 0, Math.min(ZEROS.capacity(), clusterSize - at));
      }
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
   * which holds a non-zero byte, with {@link #writeData}. Calls come in increasing index order,
   * each index at most once. The buffer stays as it is until the data is written (the end of the
   * {@link #write} call).
   */
  abstract void writeCluster(long index, ByteBuffer data) throws IOException;

  /**
   * Writes the metadata, forces the data, then writes what makes the file a valid image (the
   * header) and forces it.
   */
  abstract void finishImage() throws IOException;

  /**
   * Writes all of {@code b}, data of the virtual disk, at {@code offset} of the file: with the data
   * written just before it, in one write, if it follows it in the file. The buffer must stay as it
   * is until the end of the {@link #write} call that led here.
   */
  final void writeData(String what, ByteBuffer b, long offset) throws IOException {
    if (!pending.isEmpty() && offset != pendingEnd) {
      flushData();
    }
    if (pending.isEmpty()) {
      pendingWhat = what;
      pendingStart = offset;
      pendingEnd = offset;
    }
    pending.add(b);
    pendingEnd += b.remaining();
  }

  /** Writes the data gathered by {@link #writeData}: direct if it can, else buffered. */
  private void flushData() throws IOException {
    if (pending.isEmpty()) {
      return;
    }
    ByteBuffer[] bufs = pending.toArray(new ByteBuffer[0]);
    pending.clear();
    long start = pendingStart;
    if (direct != null && aligned(start, bufs)) {
      int[] positions = new int[bufs.length];
      for (int i = 0; i < bufs.length; i++) {
        positions[i] = bufs[i].position();
      }
      try {
        gather(direct, bufs, start);
        return;
      } catch (IOException e) {
        // Some file systems open with O_DIRECT and then refuse the writes: write buffered from
        // now on (if the buffered write fails too, that error is the one that counts).
        FileChannel d = direct;
        direct = null;
        try {
          d.close();
        } catch (IOException ignored) {
          // the write's error matters, not this one
        }
        for (int i = 0; i < bufs.length; i++) {
          bufs[i].position(positions[i]);
        }
      }
    }
    gather(channel, bufs, start);
  }

  private boolean aligned(long start, ByteBuffer[] bufs) {
    if (start % align != 0) {
      return false;
    }
    for (ByteBuffer b : bufs) {
      if (!b.isDirect()
          || b.remaining() % align != 0
          || b.alignmentOffset(b.position(), align) != 0) {
        return false;
      }
    }
    return true;
  }

  /** Writes all of {@code bufs}, in order, from {@code start} of the file. */
  private void gather(FileChannel ch, ByteBuffer[] bufs, long start) throws IOException {
    long pos = start;
    int first = 0;
    try {
      ch.position(start);
      while (first < bufs.length) {
        pos += ch.write(bufs, first, bufs.length - first);
        while (first < bufs.length && !bufs[first].hasRemaining()) {
          first++;
        }
      }
    } catch (IOException e) {
      throw new IOException(
          "unable to write disk image '"
              + path
              + "': writing "
              + pendingWhat
              + " at offset "
              + ImageFile.hex(pos)
              + ": "
              + e.getMessage(),
          e);
    }
  }

  /** Writes all of {@code b}, metadata, at {@code offset} of the file. */
  final void writeAt(String what, ByteBuffer b, long offset) throws IOException {
    flushData();
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
    try (FileChannel c = channel) {
      if (direct != null) {
        direct.close();
      }
    }
  }
}
