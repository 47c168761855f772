package io.granule.engine.internal.repo;

/**
 * Base of every error the repository reports. Unchecked: callers that can do something about a
 * specific failure catch the subclass; the CLI maps each subclass to a documented exit code.
 * Messages are lowercase, name the object concerned and, where one exists, the next step.
 */
public class RepositoryException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public RepositoryException(String message) {
    super(message);
  }

  public RepositoryException(String message, Throwable cause) {
    super(message, cause);
  }
}
