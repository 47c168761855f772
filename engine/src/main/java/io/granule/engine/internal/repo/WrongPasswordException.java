package io.granule.engine.internal.repo;

/** No key blob of an encrypted repository opens with the password given. The CLI exits with 8. */
public class WrongPasswordException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public WrongPasswordException(String message) {
    super(message);
  }
}
