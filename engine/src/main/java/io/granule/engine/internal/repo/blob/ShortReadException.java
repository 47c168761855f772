package io.granule.engine.internal.repo.blob;

import java.io.EOFException;

/**
 * A read of a blob that ended before the range asked for although the blob's size, as the storage
 * gives it at that moment, covers the range: the storage answers unreliably (a faulty network or
 * FUSE file system), which is not damage of the blob. Callers that would take a short read for
 * damage (and act on it) tell the two apart by this type.
 */
public final class ShortReadException extends EOFException {
  private static final long serialVersionUID = 1L;

  public ShortReadException(String message) {
    super(message);
  }

  /** Whether {@code t} or one of its causes is a short read. */
  public static boolean in(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof ShortReadException) {
        return true;
      }
    }
    return false;
  }
}
