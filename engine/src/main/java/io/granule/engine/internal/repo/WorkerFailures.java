package io.granule.engine.internal.repo;

import java.io.IOException;

/** Rethrowing, on the thread that waits, what a worker thread of an operation failed with. */
public final class WorkerFailures {
  private WorkerFailures() {}

  /**
   * Throws {@code failure} as it is if it is an {@link IOException}, a {@link RuntimeException} or
   * an {@link Error}, else wrapped in a {@link RepositoryException} saying that {@code operation}
   * failed; returns if it is null.
   */
  public static void rethrow(Throwable failure, String operation) throws IOException {
    if (failure == null) {
      return;
    }
    if (failure instanceof IOException e) {
      throw e;
    }
    if (failure instanceof RuntimeException e) {
      throw e;
    }
    if (failure instanceof Error e) {
      throw e;
    }
    throw new RepositoryException(operation + " failed: " + failure, failure);
  }
}
