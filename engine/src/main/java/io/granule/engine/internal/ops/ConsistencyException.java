package io.granule.engine.internal.ops;

/**
 * A source could not be made consistent, or stopped being consistent while it was read: a freeze
 * failed, a thaw failed, or a freeze passed its time limit. The message names the step and the
 * target.
 */
public final class ConsistencyException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ConsistencyException(String message, Throwable cause) {
    super(message, cause);
  }
}
