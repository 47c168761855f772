package io.granule.engine.internal.repo.blob;

import java.io.IOException;

/**
 * A blob's name in a local store leads to something other than a regular file (a FIFO, a device, a
 * socket), which granule never writes: not opened (a FIFO would block the read forever), not
 * retried.
 */
public final class BlobNotRegularException extends IOException {
  private static final long serialVersionUID = 1L;

  BlobNotRegularException(String message) {
    super(message);
  }
}
