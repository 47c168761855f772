package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.FileSystemType;
import java.time.Duration;
import org.osgi.framework.BundleContext;
import org.osgi.framework.Constants;
import org.osgi.framework.ServiceReference;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicy;

/** Whiteboard of {@link FileSystemType} services (ext4, xfs, ntfs from the vmdisk plugin). */
@Component(service = FileSystemTypes.class, immediate = true)
public final class FileSystemTypes {
  private final PluginLeases<FileSystemType> leases;

  @Activate
  public FileSystemTypes(BundleContext context) {
    String drain = context.getProperty(DiskImageFormats.DRAIN_PROPERTY);
    long seconds = drain == null ? 60 : Long.parseLong(drain.trim());
    this.leases =
        new PluginLeases<>("FileSystemType", FileSystemType::name, Duration.ofSeconds(seconds));
  }

  public PluginLeases<FileSystemType> leases() {
    return leases;
  }

  @Reference(
      service = FileSystemType.class,
      cardinality = ReferenceCardinality.MULTIPLE,
      policy = ReferencePolicy.DYNAMIC)
  void add(FileSystemType t, ServiceReference<FileSystemType> ref) {
    Object ranking = ref.getProperty(Constants.SERVICE_RANKING);
    leases.added(
        ref.getProperty(Constants.SERVICE_ID),
        t,
        new PluginLeases.Origin(
            ref.getBundle().getSymbolicName(), ref.getBundle().getVersion().toString()),
        ranking instanceof Integer r ? r : 0);
  }

  void remove(FileSystemType t, ServiceReference<FileSystemType> ref) {
    try {
      leases.removed(ref.getProperty(Constants.SERVICE_ID));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
