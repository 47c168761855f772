package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.nativelib.NativeLibrary;
import io.granule.engine.internal.repo.blob.DirectIo;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Allocates ranges of a regular file before direct writes fill them ({@code fallocate(2)} through
 * {@code libgranule-native}). Why: ext4 runs a direct write that allocates blocks under the inode's
 * lock, exclusive and held until the write completes, so a restore's writers wrote one at a time,
 * the disk's queue as deep as one write; into blocks allocated beforehand (unwritten extents, read
 * as zeros until written) the same writes take the lock shared and run at once.
 *
 * <p>The allocation comes before the first write: {@code fallocate} waits for every direct write in
 * flight on the file, so allocating range by range between writes would serialize them again. Only
 * ranges that will be written are allocated, so holes stay holes; a full file system shows before
 * anything is written. {@link #allocate} returns false, and the caller stops asking, where the file
 * system or the library cannot ({@code -Dgranule.restore.fallocate=false} turns it off).
 */
final class FileSpace implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(FileSpace.class);

  static final boolean ENABLED =
      !"false".equals(System.getProperty("granule.restore.fallocate"))
          && NativeLibrary.unavailableReason() == null;

  private static final int ENOSPC = 28;

  private final Path path;
  private final int fd;
  private boolean works = true;

  private FileSpace(Path path, int fd) {
    this.path = path;
    this.fd = fd;
  }

  /**
   * {@code path}, a regular file, opened to allocate its ranges; null where that is off, or where
   * the file lives in memory (tmpfs, ramfs: allocating there clears pages that the writes then
   * fill, and no lock is won).
   */
  static FileSpace open(Path path) {
    if (!ENABLED || DirectIo.inMemory(path)) {
      return null;
    }
    int fd;
    try {
      fd =
          open0(
              (path.toAbsolutePath() + "\0").getBytes(StandardCharsets.UTF_8),
              io.granule.engine.internal.ops.DirectoryHandle.isHeldFile(path));
    } catch (UnsatisfiedLinkError e) {
      LOG.debug("no fallocate: {}", e.toString());
      return null;
    }
    if (fd < 0) {
      LOG.debug("{}: not opened to allocate (errno {})", path, -fd);
      return null;
    }
    return new FileSpace(path, fd);
  }

  /**
   * Allocates {@code [offset, offset + length)}; false if this file's ranges cannot be allocated
   * (from then on without asking again).
   *
   * @throws IOException if the file system is full
   */
  boolean allocate(long offset, long length) throws IOException {
    if (!works) {
      return false;
    }
    int r = allocate0(fd, offset, length);
    if (r == -ENOSPC) {
      throw new IOException("No space left on device");
    }
    if (r != 0) {
      works = false;
      LOG.debug("{}: fallocate refused (errno {}); writes allocate their blocks", path, -r);
      return false;
    }
    return true;
  }

  @Override
  public void close() throws IOException {
    int r = close0(fd);
    if (r != 0) {
      throw new IOException("unable to close '" + path + "': errno " + -r);
    }
  }

  /** {@code follow}: a held file ({@code /proc/self/fd/N}), opened through that link. */
  private static native int open0(byte[] path, boolean follow);

  private static native int allocate0(int fd, long offset, long length);

  private static native int close0(int fd);
}
