package io.granule.engine.internal.app;

import io.granule.engine.spi.ApplicationException;

/**
 * An application step of a backup or restore failed. The message names the application (its URL
 * without a password), the step and the cause; {@link #reason} decides the exit code.
 */
public final class ApplicationFailure extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final ApplicationException.Reason reason;

  public ApplicationFailure(ApplicationException.Reason reason, String message, Throwable cause) {
    super(message, cause);
    this.reason = reason;
  }

  /** Wraps a plugin's failure of {@code step} on {@code what}. */
  public static ApplicationFailure of(String what, String step, Throwable cause) {
    ApplicationException.Reason reason =
        cause instanceof ApplicationException ae ? ae.reason() : ApplicationException.Reason.FAILED;
    String msg = cause.getMessage() == null ? cause.toString() : cause.getMessage();
    return new ApplicationFailure(reason, what + ": " + step + " failed: " + msg, cause);
  }

  public ApplicationException.Reason reason() {
    return reason;
  }
}
