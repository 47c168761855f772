package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.SnapshotProvider;
import java.time.Duration;
import org.osgi.framework.BundleContext;
import org.osgi.framework.Constants;
import org.osgi.framework.ServiceReference;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicy;

/** Whiteboard of {@link SnapshotProvider} services (fsfreeze, none, and plugins' own). */
@Component(service = SnapshotProviders.class, immediate = true)
public final class SnapshotProviders {
  private final PluginLeases<SnapshotProvider> leases;

  @Activate
  public SnapshotProviders(BundleContext context) {
    String drain = context.getProperty(DiskImageFormats.DRAIN_PROPERTY);
    long seconds = drain == null ? 60 : Long.parseLong(drain.trim());
    this.leases =
        new PluginLeases<>("SnapshotProvider", SnapshotProvider::name, Duration.ofSeconds(seconds));
  }

  public PluginLeases<SnapshotProvider> leases() {
    return leases;
  }

  @Reference(
      service = SnapshotProvider.class,
      cardinality = ReferenceCardinality.MULTIPLE,
      policy = ReferencePolicy.DYNAMIC)
  void add(SnapshotProvider p, ServiceReference<SnapshotProvider> ref) {
    Object ranking = ref.getProperty(Constants.SERVICE_RANKING);
    leases.added(
        ref.getProperty(Constants.SERVICE_ID),
        p,
        new PluginLeases.Origin(
            ref.getBundle().getSymbolicName(), ref.getBundle().getVersion().toString()),
        ranking instanceof Integer r ? r : 0);
  }

  void remove(SnapshotProvider p, ServiceReference<SnapshotProvider> ref) {
    try {
      leases.removed(ref.getProperty(Constants.SERVICE_ID));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
