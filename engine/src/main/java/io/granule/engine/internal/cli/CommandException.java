package io.granule.engine.internal.cli;

/** A command failed for a reason the user can act on; carries the exit code to return. */
public class CommandException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final int exitCode;

  public CommandException(int exitCode, String message) {
    super(message);
    this.exitCode = exitCode;
  }

  public CommandException(int exitCode, String message, Throwable cause) {
    super(message, cause);
    this.exitCode = exitCode;
  }

  public int exitCode() {
    return exitCode;
  }
}
