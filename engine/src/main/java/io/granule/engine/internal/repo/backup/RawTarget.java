package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.blob.DirectIo;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The file or block device a raw restore writes, with positional writes that are safe from several
 * threads, in one of two ways:
 *
 * <ul>
 *   <li>Direct ({@code O_DIRECT}, where asked for and the target takes it): the bytes go from the
 *       caller's aligned buffer to the disk without a copy into the page cache, and the final fsync
 *       has only the device's cache left to flush. Concurrent writes are concurrent on a block
 *       device; filesystems may serialize them (ext4 does for writes that allocate blocks, holding
 *       the inode lock until the write completes), so a regular file has the ranges to be written
 *       allocated first ({@link #reserve}), after which every aligned write goes direct. Where that
 *       cannot be done only a large write keeps the disk's queue deep (the block layer splits it
 *       into requests in flight at once), and writes shorter than {@code minDirect} go buffered. (A
 *       periodic fdatasync during direct writes was measured and lost: on this VM's disk a flush
 *       stalls the writes behind it.)
 *   <li>Buffered, one write at a time (they serialize on the inode lock anyway), with write-back
 *       started early: after every {@code writeback} bytes a background {@code fdatasync} sends
 *       what is dirty to the disk with a deep queue while the restore goes on, so that the final
 *       fsync has little left. Its error, if any, is thrown by {@link #finish} (an fsync error is
 *       reported once per open file, so it must not be lost).
 * </ul>
 *
 * What is not aligned to {@link #align()} (the tail of a disk whose size is not a multiple of it)
 * is always written buffered; so is everything on a target that refuses {@code O_DIRECT} at open
 * (ramfs, some devices and filesystems), or whose direct write failed where the same write then
 * succeeded buffered.
 *
 * <p>The caller keeps the buffered channel and fsyncs it after {@link #finish} (fsync covers the
 * file however it was written); {@link #close} waits for a write-back and closes only the direct
 * channel.
 */
final class RawTarget implements RunTarget, AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(RawTarget.class);

  /** Alignment of direct writes at least: a multiple of every logical block size in use. */
  static final int MIN_ALIGN = DirectIo.MIN_ALIGN;

  private final Path path;
  private final FileChannel buffered;
  private final Object bufferedLock = new Object();
  private final FileChannel direct;
  private final FileSpace space;
  private final int align;
  private final int minDirect;
  private final long writeback;
  private volatile boolean useDirect;

  /** Whether every range written was allocated first ({@link #reserve}): no write allocates. */
  private volatile boolean reserved;

  private final AtomicLong unflushed = new AtomicLong();
  private final AtomicLong directBytes = new AtomicLong();
  private final Object flushLock = new Object();
  // Guarded by flushLock.
  private boolean flushing;
  private boolean finished;
  private IOException flushError;

  private RawTarget(
      Path path,
      FileChannel buffered,
      FileChannel direct,
      FileSpace space,
      int align,
      int minDirect,
      long writeback) {
    this.path = path;
    this.buffered = buffered;
    this.direct = direct;
    this.space = space;
    this.align = align;
    this.minDirect = minDirect;
    this.writeback = writeback;
    this.useDirect = direct != null;
  }

  /**
   * The target {@code path}, already open as {@code buffered}; with a second, direct channel if
   * {@code tryDirect} and the target accepts {@code O_DIRECT} with an alignment that divides {@code
   * chunkSize}; writes shorter than {@code minDirect} bytes then still go buffered. Buffered writes
   * start a write-back after every {@code writeback} bytes of them (0: never).
   */
  static RawTarget open(
      Path path,
      FileChannel buffered,
      boolean tryDirect,
      int chunkSize,
      int minDirect,
      long writeback,
      boolean regular) {
    if (!tryDirect) {
      return new RawTarget(path, buffered, null, null, MIN_ALIGN, 0, writeback);
    }
    OpenOption o = DirectIo.option();
    if (o == null) {
      return new RawTarget(path, buffered, null, null, MIN_ALIGN, 0, writeback);
    }
    int align = DirectIo.alignment(path);
    if (align == 0 || chunkSize % align != 0) {
      LOG.debug("{}: block size {} does not divide the chunk size; buffered writes", path, align);
      return new RawTarget(path, buffered, null, null, MIN_ALIGN, 0, writeback);
    }
    try {
      FileChannel d =
          io.granule.engine.internal.ops.DirectoryHandle.isHeldFile(path)
              ? FileChannel.open(path, StandardOpenOption.WRITE, o) // the file held open
              : FileChannel.open(
                  path, StandardOpenOption.WRITE, o, java.nio.file.LinkOption.NOFOLLOW_LINKS);
      LOG.debug("{}: direct writes of {} bytes or more, aligned to {}", path, minDirect, align);
      return new RawTarget(
          path, buffered, d, regular ? FileSpace.open(path) : null, align, minDirect, writeback);
    } catch (IOException | UnsupportedOperationException e) {
      LOG.debug("{} refuses O_DIRECT ({}); buffered writes", path, e.toString());
      return new RawTarget(path, buffered, null, null, MIN_ALIGN, 0, writeback);
    }
  }

  /**
   * Allocates the ranges {@code [starts[i], ends[i])} of a regular file before any write (see
   * {@link FileSpace}): direct writes into them then run at once instead of one at a time, and
   * writes of any length go direct (no {@code minDirect}). Does nothing where the target is no
   * regular file, writes buffered, or its file system cannot allocate ahead.
   *
   * @throws IOException if the file system has no room for them: the restore could not complete
   */
  @Override
  public void reserve(long[] starts, long[] ends, int count) throws IOException {
    if (space == null || !useDirect) {
      return;
    }
    long total = 0;
    for (int i = 0; i < count; i++) {
      total += ends[i] - starts[i];
    }
    for (int i = 0; i < count; i++) {
      try {
        if (!space.allocate(starts[i], ends[i] - starts[i])) {
          return; // refused: writes allocate their blocks, as without
        }
      } catch (IOException e) {
        throw new IOException(
            e.getMessage() + ": the restored disk's data takes " + total + " bytes", e);
      }
    }
    LOG.debug("{}: {} bytes allocated in {} ranges before writing", path, total, count);
    reserved = true;
  }

  /** The alignment buffers given to {@link #write} must have (their address), at least. */
  int align() {
    return align;
  }

  /** The bytes written with {@code O_DIRECT} so far. */
  long directBytes() {
    return directBytes.get();
  }

  @Override
  public boolean ordered() {
    return false;
  }

  /** Whether writes currently go through {@code O_DIRECT}. */
  boolean direct() {
    return useDirect;
  }

  /**
   * A direct buffer for {@link #write}, its address aligned, with room for at least {@code length}
   * bytes (its capacity rounded up to the alignment), its limit at {@code length}.
   */
  @Override
  public ByteBuffer allocate(int length) {
    return DirectIo.allocate(length, align);
  }

  /**
   * Writes the remaining bytes of {@code src}, a buffer from {@link #allocate} (or a slice of one
   * starting at an aligned address), at {@code offset}.
   */
  @Override
  public void write(ByteBuffer src, long offset) throws IOException {
    long pos = offset;
    if (useDirect && pos % align == 0 && (reserved || src.remaining() >= minDirect)) {
      int aligned = src.remaining() - src.remaining() % align;
      if (aligned > 0) {
        ByteBuffer head = src.duplicate();
        head.limit(head.position() + aligned);
        int start = head.position();
        try {
          pos = writeFully(direct, head, pos);
          directBytes.addAndGet(aligned);
        } catch (IOException e) {
          // Some targets open with O_DIRECT and then refuse the writes: try the same write
          // buffered, and if that works, write buffered from now on (an error that was real
          // comes back from the fsync); if it fails too, that is the error.
          head.position(start);
          try {
            synchronized (bufferedLock) {
              pos = writeFully(buffered, head, offset);
            }
            wroteBuffered(aligned);
          } catch (IOException again) {
            again.addSuppressed(e);
            throw again;
          }
          if (useDirect) {
            useDirect = false;
            LOG.warn("{} refused a direct write ({}); writing it buffered", path, e.toString());
          }
        }
        src.position(src.position() + aligned);
      }
    }
    if (src.hasRemaining()) {
      // One buffered write at a time: they serialize on the inode lock anyway, and threads that
      // wait here park instead of spinning in the kernel (measured: 4 threads writing buffered at
      // once took twice the system time of one).
      int n = src.remaining();
      synchronized (bufferedLock) {
        writeFully(buffered, src, pos);
      }
      wroteBuffered(n);
    }
  }

  /** Counts {@code n} buffered bytes; starts a write-back once {@link #writeback} are unflushed. */
  private void wroteBuffered(long n) {
    if (writeback <= 0 || unflushed.addAndGet(n) < writeback) {
      return;
    }
    synchronized (flushLock) {
      if (flushing || finished) {
        return;
      }
      flushing = true;
      unflushed.set(0);
    }
    // Never interrupted: an interrupt would close the channel for every thread.
    Thread t = new Thread(this::flush, "granule-restore-writeback");
    t.setDaemon(true);
    t.start();
  }

  private void flush() {
    IOException error = null;
    try {
      buffered.force(false);
    } catch (IOException e) {
      error = e;
    }
    synchronized (flushLock) {
      if (error != null && flushError == null) {
        flushError = error;
      }
      flushing = false;
      flushLock.notifyAll();
    }
  }

  /** Waits for a running write-back; starts no other. */
  private void awaitWriteback() {
    boolean interrupted = false;
    synchronized (flushLock) {
      finished = true;
      while (flushing) {
        try {
          flushLock.wait();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Ends the writes: waits for a running write-back and throws its error, if any. The caller then
   * fsyncs the buffered channel.
   */
  void finish() throws IOException {
    awaitWriteback();
    synchronized (flushLock) {
      if (flushError != null) {
        throw flushError;
      }
    }
  }

  private static long writeFully(FileChannel ch, ByteBuffer b, long offset) throws IOException {
    long pos = offset;
    while (b.hasRemaining()) {
      pos += ch.write(b, pos);
    }
    return pos;
  }

  @Override
  public void close() throws IOException {
    awaitWriteback();
    try (FileSpace s = space) {
      if (direct != null) {
        direct.close();
      }
    }
  }
}
