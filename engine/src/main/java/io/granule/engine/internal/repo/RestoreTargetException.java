package io.granule.engine.internal.repo;

/**
 * A restore target (a file, an image being written, a block device) cannot be written: no space, no
 * permission, an I/O error. The repository itself is fine; the CLI exits with the target code.
 */
public class RestoreTargetException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public RestoreTargetException(String message, Throwable cause) {
    super(message, cause);
  }
}
