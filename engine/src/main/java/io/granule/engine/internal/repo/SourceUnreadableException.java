package io.granule.engine.internal.repo;

/**
 * The source of a backup (a disk image or device) could not be read; the message names the source
 * and the offset. The repository is left valid.
 */
public class SourceUnreadableException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public SourceUnreadableException(String message) {
    super(message);
  }

  public SourceUnreadableException(String message, Throwable cause) {
    super(message, cause);
  }
}
