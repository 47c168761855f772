package io.granule.engine.internal.repo.backup;

/**
 * Receives a disk restore's progress: after each write of a run (up to 16 MiB), from the writing
 * threads, concurrently; implementations must be thread-safe and return quickly (a progress bar
 * draws at most ten times a second on its own).
 */
@FunctionalInterface
public interface RestoreListener {
  /** Ignores every report. */
  RestoreListener NONE = (done, total) -> {};

  /**
   * @param done bytes of the disk restored so far (holes left in a new file count as restored)
   * @param total the disk's size
   */
  void progress(long done, long total);
}
