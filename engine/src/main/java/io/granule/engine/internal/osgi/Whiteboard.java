package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import java.time.Duration;
import java.util.function.Function;
import org.osgi.framework.BundleContext;
import org.osgi.framework.Constants;
import org.osgi.framework.ServiceReference;

/**
 * The OSGi side of a {@link PluginLeases} whiteboard: what the components tracking plugin services
 * (formats, snapshot providers, filesystem types) share.
 */
final class Whiteboard {
  /** Framework property: seconds a departing plugin waits for operations using it. */
  static final String DRAIN_PROPERTY = "granule.plugin.drain.seconds";

  private Whiteboard() {}

  /** Leases of one SPI type with the drain timeout the framework is configured with. */
  static <S> PluginLeases<S> leases(
      BundleContext context, String typeName, Function<S, String> nameOf) {
    String drain = context.getProperty(DRAIN_PROPERTY);
    long seconds = drain == null ? 60 : Long.parseLong(drain.trim());
    return new PluginLeases<>(typeName, nameOf, Duration.ofSeconds(seconds));
  }

  /** A service arrived: make it available to operations. */
  static <S> void added(PluginLeases<S> leases, S service, ServiceReference<S> ref) {
    Object ranking = ref.getProperty(Constants.SERVICE_RANKING);
    leases.added(
        ref.getProperty(Constants.SERVICE_ID),
        service,
        new PluginLeases.Origin(
            ref.getBundle().getSymbolicName(), ref.getBundle().getVersion().toString()),
        ranking instanceof Integer r ? r : 0);
  }

  /**
   * A service is going away: wait for the operations using it (see {@link PluginLeases#removed}).
   *
   * @return how many operations were still using it at the drain timeout
   */
  static <S> int removed(PluginLeases<S> leases, ServiceReference<S> ref) {
    try {
      return leases.removed(ref.getProperty(Constants.SERVICE_ID));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return 0;
    }
  }
}
