package io.granule.engine.internal.osgi;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.FileSystemType;
import org.osgi.framework.BundleContext;
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
    this.leases = Whiteboard.leases(context, "FileSystemType", FileSystemType::name);
  }

  public PluginLeases<FileSystemType> leases() {
    return leases;
  }

  @Reference(
      service = FileSystemType.class,
      cardinality = ReferenceCardinality.MULTIPLE,
      policy = ReferencePolicy.DYNAMIC)
  void add(FileSystemType t, ServiceReference<FileSystemType> ref) {
    Whiteboard.added(leases, t, ref);
  }

  void remove(FileSystemType t, ServiceReference<FileSystemType> ref) {
    Whiteboard.removed(leases, ref);
  }
}
