package io.granule.engine.internal.repo.blob;

import java.io.IOException;

/** A blob larger than this process reads whole ({@link BlobStore#requireLoadable}): not retried. */
public final class BlobTooLargeException extends IOException {
  private static final long serialVersionUID = 1L;

  BlobTooLargeException(String message) {
    super(message);
  }
}
