package io.granule.engine.internal.cli;

import java.util.concurrent.Callable;

/** A command that uses the runtime; the CLI factory sets {@link #context} before it runs. */
abstract class ContextCommand implements Callable<Integer> {
  CliContext context;

  CliContext context() {
    return context;
  }
}
