package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.ApplicationPlugin;
import org.osgi.framework.BundleContext;
import org.osgi.framework.ServiceReference;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicy;

/** Whiteboard of {@link ApplicationPlugin} services (PostgreSQL, MariaDB, ... from plugins). */
@Component(service = ApplicationPlugins.class, immediate = true)
public final class ApplicationPlugins {
  private final PluginLeases<ApplicationPlugin> leases;

  @Activate
  public ApplicationPlugins(BundleContext context) {
    this.leases = Whiteboard.leases(context, "ApplicationPlugin", ApplicationPlugin::name);
  }

  public PluginLeases<ApplicationPlugin> leases() {
    return leases;
  }

  @Reference(
      service = ApplicationPlugin.class,
      cardinality = ReferenceCardinality.MULTIPLE,
      policy = ReferencePolicy.DYNAMIC)
  void add(ApplicationPlugin p, ServiceReference<ApplicationPlugin> ref) {
    Whiteboard.added(leases, p, ref);
  }

  void remove(ApplicationPlugin p, ServiceReference<ApplicationPlugin> ref) {
    Whiteboard.removed(leases, ref);
  }
}
