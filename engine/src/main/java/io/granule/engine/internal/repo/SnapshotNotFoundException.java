package io.granule.engine.internal.repo;

/** No snapshot matches the reference given (id, id prefix or {@code latest}). */
public class SnapshotNotFoundException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public SnapshotNotFoundException(String message) {
    super(message);
  }

  public SnapshotNotFoundException(String message, Throwable cause) {
    super(message, cause);
  }
}
