package io.granule.engine.internal.image;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * A raw disk image file or a block device, read through a {@link FileChannel} with positional reads
 * (safe from several threads). A sparse file's holes ({@code SEEK_DATA}/{@code SEEK_HOLE}, see
 * {@link SparseFiles}) are reported as unallocated, so a backup neither reads nor stores them; a
 * block device reports the whole disk as allocated (zero chunks are still detected and not stored).
 *
 * <p>Block devices are read with {@code O_DIRECT}, bypassing the device's page cache: a filesystem
 * mounted on the device writes its file data through its own cache, so buffered reads of the device
 * can return blocks older than what the (frozen, synced) filesystem holds. If the device refuses
 * direct I/O, its buffers are flushed ({@code blockdev --flushbufs}) before every read pass begins,
 * and a warning says so.
 *
 * <p>A regular file that is mostly not in the page cache when it is opened (a running VM's disk
 * usually is not: hypervisors write it past the cache) is read with {@code O_DIRECT} too, for the
 * large aligned reads of a backup into aligned direct buffers: straight from the disk into the
 * caller's buffer, with no page cache to fill (the dearest part of a cold read on a VM) and nothing
 * of the host's cached data evicted for bytes read once. Small or unaligned reads (file systems'
 * metadata) still go through the page cache, and so does every read of a file that is mostly cached
 * already, or where the page cache cannot be asked (cachestat(2), Linux 6.5). {@code
 * -Dgranule.image.direct-read=auto|always|never} overrides the choice; a direct read that fails is
 * done again through the page cache, and the file is read that way from then on.
 */
public final class RawDiskImage implements DiskImage {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(RawDiskImage.class);

  /** Alignment of direct reads: a multiple of every logical block size in use (512, 4096). */
  static final int ALIGN = 4096;

  private static final int BOUNCE = 1 << 20;

  /** The shortest read of a regular file that goes direct when it is read direct. */
  static final int MIN_DIRECT_FILE_READ = 64 << 10;

  private static final String DIRECT_READ = System.getProperty("granule.image.direct-read", "auto");

  private final Path path;
  private final FileChannel channel;
  private final long size;
  private final boolean direct;
  // A regular file's O_DIRECT channel for large aligned reads, or null (see above)
  private volatile FileChannel directFile;
  private final ThreadLocal<ByteBuffer> bounce;
  private final SparseFiles sparse;

  private RawDiskImage(
      Path path, FileChannel channel, long size, boolean direct, SparseFiles sparse) {
    this.path = path;
    this.channel = channel;
    this.size = size;
    this.direct = direct;
    this.sparse = sparse;
    this.bounce =
        direct
            ? ThreadLocal.withInitial(
                () -> ByteBuffer.allocateDirect(BOUNCE + ALIGN).alignedSlice(ALIGN))
            : null;
  }

  /** Whether reads bypass the page cache (block devices). */
  public boolean direct() {
    return direct;
  }

  /** A block device, or a regular file read direct (see above). */
  @Override
  public boolean readsPastPageCache() {
    return direct || directFile != null;
  }

  private static boolean wantsDirect(SparseFiles sparse) {
    return switch (DIRECT_READ) {
      case "never" -> false;
      case "always" -> true;
      default -> sparse != null && sparse.mostlyUncached();
    };
  }

  /**
   * Whether regular file {@code file} should be read past the page cache: mostly not cached (see
   * above; {@code io.granule.engine.spi.PageCache} offers it to plugins). False if it cannot be
   * opened or that cannot be found out.
   */
  public static boolean shouldReadDirect(Path file) {
    if (DIRECT_READ.equals("never") || !Files.isRegularFile(file)) {
      return false;
    }
    if (DIRECT_READ.equals("always")) {
      return true;
    }
    try (SparseFiles sparse = SparseFiles.open(file)) {
      return wantsDirect(sparse);
    } catch (IOException e) {
      return false;
    }
  }

  /** Whether a regular file's large aligned reads bypass the page cache (see above). */
  public boolean directFileReads() {
    return directFile != null;
  }

  /**
   * An {@code O_DIRECT} channel of regular file {@code path} if its reads should go direct: it is
   * mostly not cached ({@code auto}), or {@code always}; else null.
   */
  private static FileChannel openDirectFile(Path path, SparseFiles sparse) {
    java.nio.file.OpenOption o = io.granule.engine.internal.repo.blob.DirectIo.option();
    if (o == null || !wantsDirect(sparse)) {
      return null;
    }
    try {
      return FileChannel.open(path, StandardOpenOption.READ, o);
    } catch (IOException | UnsupportedOperationException e) {
      LOG.debug("{}: no direct reads ({})", path, e.toString());
      return null;
    }
  }

  /** Whether {@code path} is a block device (by its entry in /sys/class/block). */
  static boolean isBlockDevice(Path path) {
    try {
      if (Files.isRegularFile(path) || Files.isDirectory(path)) {
        return false;
      }
      Path real = path.toRealPath();
      return Files.exists(Path.of("/sys/class/block", real.getFileName().toString()));
    } catch (IOException e) {
      return false;
    }
  }

  /** Flushes and drops a block device's buffered pages, so buffered reads see the disk. */
  static void flushBuffers(Path device) {
    try {
      Process p =
          new ProcessBuilder("blockdev", "--flushbufs", device.toString())
              .redirectErrorStream(true)
              .start();
      String out =
          new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      if (!p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
        LOG.warn("blockdev --flushbufs {} failed: {}", device, out.trim());
      }
    } catch (IOException e) {
      LOG.warn("blockdev --flushbufs {} failed: {}", device, e.toString());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Opens {@code path} for reading.
   *
   * @throws IOException if it cannot be opened or its size cannot be found; the message names it
   */
  public static RawDiskImage open(Path path) throws IOException {
    FileChannel ch = null;
    boolean direct = false;
    if (isBlockDevice(path)) {
      java.nio.file.OpenOption o = io.granule.engine.internal.repo.blob.DirectIo.option();
      if (o != null) {
        try {
          ch = FileChannel.open(path, StandardOpenOption.READ, o);
          direct = true;
        } catch (IOException | UnsupportedOperationException e) {
          LOG.warn(
              "block device {} refuses direct I/O ({}); flushing its buffers before reading",
              path,
              e.toString());
        }
      }
      if (!direct) {
        flushBuffers(path);
      }
    }
    if (ch == null) {
      try {
        ch = FileChannel.open(path, StandardOpenOption.READ);
      } catch (IOException e) {
        throw new IOException("unable to open disk image '" + path + "': " + e, e);
      }
    }
    try {
      long size = ch.size();
      if (size == 0 && !Files.isRegularFile(path)) {
        size = blockDeviceSize(path);
      }
      SparseFiles sparse = Files.isRegularFile(path) ? SparseFiles.open(path) : null;
      RawDiskImage image = new RawDiskImage(path, ch, size, direct, sparse);
      if (!direct && Files.isRegularFile(path)) {
        image.directFile = openDirectFile(path, sparse);
      }
      return image;
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw e;
    }
  }

  /** The size of a file or block device in bytes. */
  public static long sizeOf(Path path) throws IOException {
    long size = Files.size(path);
    return size == 0 && !Files.isRegularFile(path) ? blockDeviceSize(path) : size;
  }

  private static long blockDeviceSize(Path device) throws IOException {
    Path sys = null;
    // by device number, so a node of any name (mknod elsewhere) is found
    String majorMinor = BlockDeviceClaim.majorMinor(device);
    if (majorMinor != null && Files.exists(Path.of("/sys/dev/block", majorMinor, "size"))) {
      sys = Path.of("/sys/dev/block", majorMinor, "size");
    }
    if (sys == null) {
      Path real = device.toRealPath();
      sys = Path.of("/sys/class/block", real.getFileName().toString(), "size");
    }
    try {
      return Long.parseLong(Files.readString(sys).trim()) * 512;
    } catch (IOException | NumberFormatException e) {
      throw new IOException("unable to find the size of block device '" + device + "': " + e, e);
    }
  }

  @Override
  public long size() {
    return size;
  }

  @Override
  public String format() {
    return "raw";
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws IOException {
    if (offset < 0 || offset + dst.remaining() > size) {
      throw new EOFException(
          "read past the end of disk image '"
              + path
              + "': offset="
              + offset
              + " length="
              + dst.remaining()
              + " size="
              + size);
    }
    if (direct) {
      readDirect(offset, dst);
      return;
    }
    FileChannel d = directFile;
    if (d != null && dst.remaining() >= MIN_DIRECT_FILE_READ && aligned(offset, dst)) {
      int start = dst.position();
      try {
        readStraight(d, offset, dst, "disk image");
        return;
      } catch (IOException e) {
        // Some file systems open with O_DIRECT and then refuse the reads: read this file through
        // the page cache from now on (a real error comes back from the buffered read).
        LOG.debug("{}: direct read at {} failed, reading buffered: {}", path, offset, e.toString());
        stopDirectFileReads(d);
        dst.position(start);
      }
    }
    readStraight(channel, offset, dst, "disk image");
  }

  private synchronized void stopDirectFileReads(FileChannel d) {
    if (directFile == d) {
      directFile = null;
      try {
        d.close();
      } catch (IOException ignored) {
        // only reads were made through it
      }
    }
  }

  /** Whether a direct read can go straight into {@code dst}: offset, length and address aligned. */
  private static boolean aligned(long offset, ByteBuffer dst) {
    return dst.isDirect()
        && (offset & (ALIGN - 1)) == 0
        && (dst.remaining() & (ALIGN - 1)) == 0
        && dst.alignmentOffset(dst.position(), ALIGN) == 0;
  }

  /**
   * Reads all of {@code dst} at {@code offset} from {@code ch}; errors name {@code what} ("disk
   * image", "block device"), the path and the offset.
   */
  private void readStraight(FileChannel ch, long offset, ByteBuffer dst, String what)
      throws IOException {
    long pos = offset;
    while (dst.hasRemaining()) {
      int n;
      try {
        n = ch.read(dst, pos);
      } catch (IOException e) {
        throw new IOException(
            "unable to read " + what + " '" + path + "' at offset " + pos + ": " + e, e);
      }
      if (n < 0) {
        throw new EOFException(
            what + " '" + path + "' ended at offset " + pos + " while its size is " + size);
      }
      pos += n;
    }
  }

  /**
   * Reads with O_DIRECT: straight into {@code dst} where offset, length and address are aligned,
   * else through an aligned bounce buffer.
   */
  private void readDirect(long offset, ByteBuffer dst) throws IOException {
    if (aligned(offset, dst)) {
      readStraight(channel, offset, dst, "block device");
      return;
    }
    ByteBuffer b = bounce.get();
    long pos = offset;
    while (dst.hasRemaining()) {
      long start = pos & -ALIGN;
      int skip = (int) (pos - start);
      int want = Math.min(BOUNCE, (int) (((skip + (long) dst.remaining()) + ALIGN - 1) & -ALIGN));
      b.clear().limit(want);
      int got = 0;
      while (b.hasRemaining()) {
        int n;
        try {
          n = channel.read(b, start + got);
        } catch (IOException e) {
          throw new IOException(
              "unable to read block device '" + path + "' at offset " + (start + got) + ": " + e,
              e);
        }
        if (n <= 0) {
          break;
        }
        got += n;
      }
      if (got <= skip) {
        throw new EOFException(
            "block device '"
                + path
                + "' ended at offset "
                + (start + got)
                + " while its size is "
                + size);
      }
      int take = Math.min(dst.remaining(), got - skip);
      b.position(skip).limit(skip + take);
      dst.put(b);
      pos += take;
    }
  }

  @Override
  public List<Extent> allocation(long offset, long length) throws IOException {
    if (offset < 0 || length < 0 || offset + length > size) {
      throw new IllegalArgumentException(
          "range outside disk image '" + path + "': offset=" + offset + " length=" + length);
    }
    return sparse == null ? List.of(new Extent(offset, length)) : sparse.allocation(offset, length);
  }

  @Override
  public void close() throws IOException {
    try (FileChannel d = directFile) {
      channel.close();
    } finally {
      if (sparse != null) {
        sparse.close();
      }
    }
  }

  @Override
  public String toString() {
    return path.toString();
  }
}
