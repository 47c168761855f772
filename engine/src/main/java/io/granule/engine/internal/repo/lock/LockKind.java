package io.granule.engine.internal.repo.lock;

/**
 * The two kinds of repository lock. Any number of shared locks coexist (backups, restores, verify,
 * ls, forget, serve nbd); an exclusive lock (prune) excludes every other lock.
 */
public enum LockKind {
  SHARED,
  EXCLUSIVE;

  /** Whether a lock of this kind and one of {@code other} cannot be held at the same time. */
  public boolean conflictsWith(LockKind other) {
    return this == EXCLUSIVE || other == EXCLUSIVE;
  }

  /** Lowercase name, as stored and shown. */
  public String label() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
