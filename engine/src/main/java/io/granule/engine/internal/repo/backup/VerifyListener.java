package io.granule.engine.internal.repo.backup;

/** Receives verify progress: called once per file checked, from the verifying thread. */
@FunctionalInterface
public interface VerifyListener {
  /** Ignores every report. */
  VerifyListener NONE = (file, done, total) -> {};

  /**
   * @param file the file just checked
   * @param done files checked so far in this phase
   * @param total files in this phase
   */
  void checked(String file, int done, int total);
}
