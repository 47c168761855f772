package io.granule.engine.internal.repo;

/** A snapshot id prefix matches more than one snapshot; the message lists the candidates. */
public class AmbiguousSnapshotException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public AmbiguousSnapshotException(String message) {
    super(message);
  }

  public AmbiguousSnapshotException(String message, Throwable cause) {
    super(message, cause);
  }
}
