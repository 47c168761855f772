package io.granule.engine.internal.image;

import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * A disk image opened through a format plugin, holding a lease on that plugin until closed. Every
 * call first checks the lease, so an operation whose plugin was updated or removed stops with
 * {@link io.granule.engine.internal.plugin.PluginUnavailableException} at its next read instead of
 * reading through a stopped plugin.
 */
public final class LeasedDiskImage implements DiskImage {
  private final DiskImage image;
  private final Lease<DiskImageFormat> lease;

  LeasedDiskImage(DiskImage image, Lease<DiskImageFormat> lease) {
    this.image = image;
    this.lease = lease;
  }

  /** The image as its plugin describes it (its file, usually). */
  @Override
  public String toString() {
    return image.toString();
  }

  /** The plugin that reads this image: symbolic name and version. */
  public String plugin() {
    return lease.origin().toString();
  }

  @Override
  public long size() {
    return image.size();
  }

  @Override
  public String format() {
    return image.format();
  }

  @Override
  public boolean readsPastPageCache() {
    return image.readsPastPageCache();
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws IOException {
    lease.check();
    image.read(offset, dst);
  }

  @Override
  public List<java.nio.file.Path> files() {
    return image.files();
  }

  @Override
  public io.granule.engine.spi.ChangeTracking changeTracking() {
    return image.changeTracking();
  }

  @Override
  public List<Extent> allocation(long offset, long length) throws IOException {
    lease.check();
    return image.allocation(offset, length);
  }

  @Override
  public void close() throws IOException {
    try {
      image.close();
    } finally {
      lease.close();
    }
  }
}
