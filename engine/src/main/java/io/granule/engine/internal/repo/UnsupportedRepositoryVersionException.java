package io.granule.engine.internal.repo;

/**
 * The repository, or one of its files, uses a format version newer than this build supports; the
 * message names the file, both versions, and suggests upgrading.
 */
public class UnsupportedRepositoryVersionException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public UnsupportedRepositoryVersionException(String message) {
    super(message);
  }

  public UnsupportedRepositoryVersionException(String message, Throwable cause) {
    super(message, cause);
  }
}
