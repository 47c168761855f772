package io.granule.engine.internal.plugin;

/**
 * A plugin an operation needs is not there, or went away while the operation ran (it was updated or
 * removed). The operation stops and writes nothing; the message names the plugin and says to run
 * the operation again.
 */
public final class PluginUnavailableException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public PluginUnavailableException(String message) {
    super(message);
  }
}
