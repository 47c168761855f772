package io.granule.engine.spi;

import java.io.IOException;
import java.util.Objects;

/**
 * A failure of an application plugin, with the reason the engine maps to an exit code. The message
 * names the thing (instance, object, binary) and the next step.
 */
public class ApplicationException extends IOException {
  private static final long serialVersionUID = 1L;

  /** Why it failed. */
  public enum Reason {
    /** Credentials refused. */
    AUTH,
    /** Nothing answers at the address. */
    UNREACHABLE,
    /** The object, database or instance does not exist. */
    NOT_FOUND,
    /** The restore target already holds an object of that name. */
    TARGET_EXISTS,
    /** A tool the operation needs (staging server binaries of a major version) is missing. */
    MISSING_TOOL,
    /** The snapshot holds no data of this application. */
    NO_DATA,
    /** The product or version is not one the plugin supports. */
    UNSUPPORTED,
    /** Quiescing, releasing or anything else failed. */
    FAILED
  }

  private final Reason reason;

  public ApplicationException(Reason reason, String message) {
    this(reason, message, null);
  }

  public ApplicationException(Reason reason, String message, Throwable cause) {
    super(message, cause);
    this.reason = Objects.requireNonNull(reason, "reason");
  }

  /** Why it failed. */
  public Reason reason() {
    return reason;
  }
}
