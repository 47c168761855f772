package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.DiskImageFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.osgi.framework.Constants;
import org.osgi.framework.ServiceReference;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whiteboard of {@link DiskImageFormat} services: every format any bundle registers, tracked as
 * bundles come and go. An unregistering format waits for the operations using it (see {@link
 * PluginLeases}).
 */
@Component(service = DiskImageFormats.class, immediate = true)
public final class DiskImageFormats {
  private static final Logger LOG = LoggerFactory.getLogger(DiskImageFormats.class);
  private final PluginLeases<DiskImageFormat> leases;
  private final Map<Long, String> namesByServiceId = new ConcurrentHashMap<>();

  @Activate
  public DiskImageFormats(org.osgi.framework.BundleContext context) {
    this.leases = Whiteboard.leases(context, "DiskImageFormat", DiskImageFormat::name);
  }

  public PluginLeases<DiskImageFormat> leases() {
    return leases;
  }

  /** The format name a service registered under, or null if it is not a format. */
  String nameOf(long serviceId) {
    return namesByServiceId.get(serviceId);
  }

  @Reference(
      service = DiskImageFormat.class,
      cardinality = ReferenceCardinality.MULTIPLE,
      policy = ReferencePolicy.DYNAMIC)
  void addFormat(DiskImageFormat format, ServiceReference<DiskImageFormat> ref) {
    Whiteboard.added(leases, format, ref);
    namesByServiceId.put((Long) ref.getProperty(Constants.SERVICE_ID), format.name());
    LOG.info("disk image format '{}' available from {}", format.name(), ref.getBundle());
  }

  void removeFormat(DiskImageFormat format, ServiceReference<DiskImageFormat> ref) {
    long id = (Long) ref.getProperty(Constants.SERVICE_ID);
    try {
      int revoked = Whiteboard.removed(leases, ref);
      if (revoked > 0) {
        LOG.warn(
            "disk image format '{}' from {} went away while {} operation(s) still used it; they"
                + " will fail",
            format.name(),
            ref.getBundle(),
            revoked);
      }
    } finally {
      namesByServiceId.remove(id);
    }
  }
}
