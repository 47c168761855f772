package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.RepositoryException;

/**
 * A pack named for a repair ({@code granule repair --pack}) that is not in the repository and that
 * no index blob lists: nothing was changed (exit code 4, not found).
 */
public final class NoSuchPackException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public NoSuchPackException(String message) {
    super(message);
  }
}
