package io.granule.engine.internal.repo.backup;

/**
 * Receives backup progress at most about ten times a second, plus one final report with {@code
 * done} set. Called from the backup's reading thread: implementations must return quickly.
 */
@FunctionalInterface
public interface BackupListener {
  /** Ignores every report. */
  BackupListener NONE = p -> {};

  void progress(BackupProgress progress);
}
