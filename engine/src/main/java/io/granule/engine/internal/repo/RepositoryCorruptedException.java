package io.granule.engine.internal.repo;

/**
 * A repository file is damaged or missing: a checksum, magic, length or hash disagrees. The message
 * names the file (and chunk and snapshot where known) with {@code actual=… expected=…}, and
 * suggests {@code granule verify}.
 */
public class RepositoryCorruptedException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public RepositoryCorruptedException(String message) {
    super(message);
  }

  public RepositoryCorruptedException(String message, Throwable cause) {
    super(message, cause);
  }
}
