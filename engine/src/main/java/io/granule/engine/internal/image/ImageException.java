package io.granule.engine.internal.image;

/** A disk image cannot be opened or read; the message names the file and what is wrong. */
public final class ImageException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ImageException(String message) {
    super(message);
  }

  public ImageException(String message, Throwable cause) {
    super(message, cause);
  }
}
