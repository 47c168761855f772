package io.granule.engine.api;

/** The state of a plugin bundle as an operator sees it. */
public enum PluginState {
  /** Installed, its requirements not (yet) met: see {@link PluginInfo#failure()}. */
  INSTALLED,
  /** Resolved but not started. */
  RESOLVED,
  /** Being started or stopped. */
  STARTING,
  STOPPING,
  /** Running; its services are available. */
  ACTIVE,
  /** Started, or tried to, but failed: see {@link PluginInfo#failure()}. */
  FAILED
}
