package io.granule.engine.internal.repo.blob;

import java.io.IOException;

/**
 * A failure that may pass if the same call is made again: a network error, a timeout, a 5xx answer,
 * throttling. {@link RetryingBlobStore} retries these; other {@link IOException}s are final.
 */
public class TransientBlobStoreException extends IOException {
  private static final long serialVersionUID = 1L;

  public TransientBlobStoreException(String message, Throwable cause) {
    super(message, cause);
  }
}
