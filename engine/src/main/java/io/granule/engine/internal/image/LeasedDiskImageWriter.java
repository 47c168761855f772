package io.granule.engine.internal.image;

import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;

/**
 * A disk image writer of a format plugin, holding a lease on that plugin until closed. Every call
 * first checks the lease, so a restore whose plugin was updated or removed stops with {@link
 * io.granule.engine.internal.plugin.PluginUnavailableException} at its next write, before {@link
 * #finish}: the image is then never complete.
 */
public final class LeasedDiskImageWriter implements DiskImageWriter {
  private final DiskImageWriter writer;
  private final Lease<DiskImageFormat> lease;

  private LeasedDiskImageWriter(DiskImageWriter writer, Lease<DiskImageFormat> lease) {
    this.writer = writer;
    this.lease = lease;
  }

  /**
   * Creates {@code target} through the format the lease holds; the result owns the lease, and
   * closes it on failure too.
   */
  public static LeasedDiskImageWriter create(
      Lease<DiskImageFormat> lease, Path target, long virtualSize, Map<String, String> options)
      throws IOException {
    try {
      return new LeasedDiskImageWriter(lease.get().create(target, virtualSize, options), lease);
    } catch (IOException | RuntimeException e) {
      lease.close();
      throw e;
    }
  }

  /** The plugin that writes this image: symbolic name and version. */
  public String plugin() {
    return lease.origin().toString();
  }

  @Override
  public void write(long offset, ByteBuffer data) throws IOException {
    lease.check();
    writer.write(offset, data);
  }

  @Override
  public void finish() throws IOException {
    lease.check();
    writer.finish();
  }

  @Override
  public void close() throws IOException {
    try {
      writer.close();
    } finally {
      lease.close();
    }
  }
}
