package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.TransientBlobStoreException;
import java.io.IOException;
import java.nio.file.AccessDeniedException;

/**
 * The repository did not answer (network errors, 5xx, throttling past the retries) or refused
 * access while a blob was read: nothing is known to be damaged, and a verify or restore that meets
 * it stops rather than reporting damage (exit code 3, not 5).
 */
public class RepositoryUnreachableException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public RepositoryUnreachableException(String message, Throwable cause) {
    super(message, cause);
  }

  /**
   * Throws this exception if {@code e}, met reading {@code name} from the store at {@code where},
   * says the store did not answer or refused access (or is one already) rather than that the blob
   * is bad; returns otherwise, for the caller to treat {@code e} as damage.
   */
  public static void throwIfUnreachable(BlobName name, String where, Exception e) {
    if (e instanceof RepositoryUnreachableException u) {
      throw u;
    }
    if (e instanceof TransientBlobStoreException || e instanceof AccessDeniedException) {
      throw reading(name, where, (IOException) e);
    }
  }

  private static RepositoryUnreachableException reading(
      BlobName name, String where, IOException e) {
    return new RepositoryUnreachableException(
        "unable to read "
            + name
            + " from the repository at '"
            + where
            + "': "
            + e.getMessage()
            + " (the repository did not answer or refused access: nothing is known to be damaged;"
            + " try again once it answers)",
        e);
  }
}
