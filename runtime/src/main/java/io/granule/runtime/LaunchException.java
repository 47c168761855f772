package io.granule.runtime;

/** The runtime could not start; the message says what is wrong and what to do. */
final class LaunchException extends Exception {
  private static final long serialVersionUID = 1L;

  /** Exit code for a runtime that cannot start: see the exit-code table in README.md. */
  static final int EXIT_RUNTIME = 70;

  LaunchException(String message, Throwable cause) {
    super(message, cause);
  }

  LaunchException(String message) {
    super(message);
  }

  int exitCode() {
    return EXIT_RUNTIME;
  }
}
