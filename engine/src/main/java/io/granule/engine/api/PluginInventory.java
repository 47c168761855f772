package io.granule.engine.api;

import java.util.List;
import org.osgi.annotation.versioning.ProviderType;

/**
 * The plugins in this runtime, as they are now. Thread-safe; each call takes a fresh look, so a
 * plugin dropped into the plugins folder shows up on the next call once the runtime installed it.
 */
@ProviderType
public interface PluginInventory {

  /** Every plugin bundle, sorted by symbolic name. */
  List<PluginInfo> plugins();
}
