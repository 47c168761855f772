package io.granule.engine.internal.cli;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A lock on a file that every process of every user sees, under any name of the file (an
 * open-file-description lock, {@code F_OFD_SETLK}, on one byte far past its end, through {@code
 * libgranule-native}): restores writing an existing file in place take it for writing, backups
 * reading a disk image take it for reading. Two restores of one file run by root and by another
 * user, or a restore and a backup of it, were kept apart only by lock files in per-user
 * directories. Unlike a POSIX lock, closing another descriptor of the file does not drop it. Where
 * the library is missing, {@link #lock} and {@link #lockForReading} return null.
 */
final class OfdLock implements AutoCloseable {
  private static final int EAGAIN = 11;
  private static final int EBUSY = 16;

  private final int fd;

  private OfdLock(int fd) {
    this.fd = fd;
  }

  /** Thrown when another process holds a write lock on the file (a restore writing it). */
  static final class HeldException extends IOException {
    private static final long serialVersionUID = 1L;

    HeldException(String message) {
      super(message);
    }
  }

  /**
   * Thrown when a restore's write lock meets only read locks: a backup reading the file, or any
   * program that may read it (readers, unlike writers, need no permission to write the file).
   */
  static final class ReadersException extends IOException {
    private static final long serialVersionUID = 1L;

    ReadersException(String message) {
      super(message);
    }
  }

  /**
   * Locks regular file {@code file} for writing (not through a link at its last component); null
   * where that cannot be done here (no library, no permission to open it for writing: the restore
   * then fails on its own).
   *
   * @throws HeldException if another holds a write lock on it
   * @throws ReadersException if others hold read locks on it
   */
  static OfdLock lock(Path file) throws HeldException, ReadersException {
    return lock(file, file, false);
  }

  /**
   * As {@link #lock}, the file at {@code at} (an entry of a held directory), named {@code file}.
   */
  static OfdLock lock(Path at, Path file) throws HeldException, ReadersException {
    return lock(at, file, false);
  }

  /**
   * As {@link #lock}, for the file held open as {@code held} ({@code /proc/self/fd/N}, followed:
   * the file the descriptor holds, not whatever has its name now), named {@code file} in messages.
   */
  static OfdLock lockHeld(Path held, Path file) throws HeldException, ReadersException {
    return lock(held, file, true);
  }

  private static OfdLock lock(Path at, Path file, boolean follow)
      throws HeldException, ReadersException {
    int fd = lock0(at, true, follow);
    if (fd == -EAGAIN) {
      throw new HeldException("another restore (of any user) is writing '" + file + "'");
    }
    if (fd == -EBUSY) {
      throw new ReadersException(
          "a process of some user is reading '"
              + file
              + "' and holds a read lock on it (a backup of it under way, or any program that"
              + " can read it)");
    }
    return fd < 0 ? null : new OfdLock(fd);
  }

  /**
   * Locks regular file {@code file} for reading (a backup reading it): restores of any user then do
   * not write it. Null where that cannot be done here.
   *
   * @throws HeldException if a restore holds its write lock
   */
  static OfdLock lockForReading(Path file) throws HeldException {
    int fd = lock0(file, false, false);
    if (fd == -EAGAIN) {
      throw new HeldException("a restore (of some user) is writing '" + file + "'");
    }
    return fd < 0 ? null : new OfdLock(fd);
  }

  private static int lock0(Path file, boolean write, boolean follow) {
    if (NativeLibrary.unavailableReason() != null) {
      return -1;
    }
    try {
      byte[] path = (file.toAbsolutePath() + "\0").getBytes(StandardCharsets.UTF_8);
      return follow ? lockHeld0(path, write) : lock0(path, write);
    } catch (UnsatisfiedLinkError e) {
      return -1;
    }
  }

  @Override
  public void close() throws IOException {
    int r = unlock0(fd);
    if (r != 0) {
      throw new IOException("unable to release a file lock: errno " + -r);
    }
  }

  private static native int lock0(byte[] path, boolean write);

  private static native int lockHeld0(byte[] path, boolean write);

  private static native int unlock0(int fd);
}
