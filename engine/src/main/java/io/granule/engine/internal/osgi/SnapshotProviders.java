package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.SnapshotProvider;
import org.osgi.framework.BundleContext;
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
    this.leases = Whiteboard.leases(context, "SnapshotProvider", SnapshotProvider::name);
  }

  public PluginLeases<SnapshotProvider> leases() {
    return leases;
  }

  @Reference(
      service = SnapshotProvider.class,
      cardinality = ReferenceCardinality.MULTIPLE,
      policy = ReferencePolicy.DYNAMIC)
  void add(SnapshotProvider p, ServiceReference<SnapshotProvider> ref) {
    Whiteboard.added(leases, p, ref);
  }

  void remove(SnapshotProvider p, ServiceReference<SnapshotProvider> ref) {
    Whiteboard.removed(leases, ref);
  }
}
