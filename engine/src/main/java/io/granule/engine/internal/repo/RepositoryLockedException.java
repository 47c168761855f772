package io.granule.engine.internal.repo;

/**
 * Another process holds a lock that conflicts with the one asked for (exit code 9), or a lock this
 * process held was lost (removed by {@code granule unlock --remove-all}, or not refreshed in time).
 * The message names the holder (host, pid, user, operation) and since when, and for a stale lock
 * how to clear it.
 */
public class RepositoryLockedException extends RepositoryException {
  private static final long serialVersionUID = 1L;

  public RepositoryLockedException(String message) {
    super(message);
  }

  public RepositoryLockedException(String message, Throwable cause) {
    super(message, cause);
  }
}
