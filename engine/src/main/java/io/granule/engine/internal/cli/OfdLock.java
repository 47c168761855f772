package io.granule.engine.internal.cli;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A write lock on a whole file that every process of every user sees, under any name of the file
 * (an open-file-description lock, {@code F_OFD_SETLK}, through {@code libgranule-native}): two
 * restores writing one existing file in place, run by root and by another user, were kept apart
 * only by lock files in per-user directories. Unlike a POSIX lock, closing another descriptor of
 * the file does not drop it. Where the library is missing, {@link #lock} returns null.
 */
final class OfdLock implements AutoCloseable {
  private static final int EAGAIN = 11;

  private final int fd;

  private OfdLock(int fd) {
    this.fd = fd;
  }

  /** Thrown when another process holds a lock on the file. */
  static final class HeldException extends IOException {
    private static final long serialVersionUID = 1L;

    HeldException(String message) {
      super(message);
    }
  }

  /**
   * Locks regular file {@code file} (not through a link at its last component); null where that
   * cannot be done here (no library, no permission to open it for writing: the restore then fails
   * on its own).
   *
   * @throws HeldException if another holds a lock on it
   */
  static OfdLock lock(Path file) throws HeldException {
    if (NativeLibrary.unavailableReason() != null) {
      return null;
    }
    int fd;
    try {
      fd = lock0((file.toAbsolutePath() + "\0").getBytes(StandardCharsets.UTF_8));
    } catch (UnsatisfiedLinkError e) {
      return null;
    }
    if (fd == -EAGAIN) {
      throw new HeldException("another restore (of any user) is writing '" + file + "'");
    }
    return fd < 0 ? null : new OfdLock(fd);
  }

  @Override
  public void close() throws IOException {
    int r = unlock0(fd);
    if (r != 0) {
      throw new IOException("unable to release a file lock: errno " + -r);
    }
  }

  private static native int lock0(byte[] path);

  private static native int unlock0(int fd);
}
