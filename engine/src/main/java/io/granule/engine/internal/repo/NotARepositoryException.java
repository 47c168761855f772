package io.granule.engine.internal.repo;

/**
 * The path given holds no repository (no config blob). The message names the path and suggests
 * {@code granule init}.
 */
public class NotARepositoryException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public NotARepositoryException(String message) {
    super(message);
  }

  public NotARepositoryException(String message, Throwable cause) {
    super(message, cause);
  }
}
