package io.granule.engine.internal.cli;

import java.io.Console;

/** The interactive terminal, if there is one: where passwords are asked. */
public interface Terminal {
  /** No terminal: a non-interactive run (scripts, tests, services). */
  Terminal NONE = prompt -> null;

  /**
   * Shows {@code prompt} and reads a line without echo.
   *
   * @return the line, or null if there is no interactive terminal
   */
  char[] readPassword(String prompt);

  /** The process's console ({@link System#console()}), or {@link #NONE} if it has none. */
  static Terminal system() {
    Console c = System.console();
    if (c == null) {
      return NONE;
    }
    return prompt -> c.readPassword("%s", prompt);
  }
}
