package io.granule.engine.internal.repo;

/** An encrypted repository was opened without any way to get its password. */
public class PasswordRequiredException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public PasswordRequiredException(String message) {
    super(message);
  }
}
