package io.granule.engine.internal.cli;

import java.net.URI;

/** Starts the HTTP API of a {@code granule server} process and waits for the process to stop. */
public interface ServerControl {

  /**
   * Starts listening and returns the base URL once the server answers.
   *
   * @param host the address to bind, e.g. {@code 127.0.0.1}
   * @param port the port; 0 picks a free one
   * @throws CommandException with {@link ExitCodes#SERVER} if it cannot listen there
   */
  URI start(String host, int port);

  /** Blocks until the runtime is asked to stop (SIGTERM, Ctrl-C). */
  void awaitStop() throws InterruptedException;
}
