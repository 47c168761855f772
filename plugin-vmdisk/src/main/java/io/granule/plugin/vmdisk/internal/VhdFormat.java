package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.service.component.annotations.Component;

/**
 * The VHD disk image format (qemu's "vpc") as a service; see {@link VhdReader}. A fixed VHD has its
 * only footer at the end of the file, which {@link #probe} does not see: name the format with
 * {@code --format vhd}. Stateless and thread-safe.
 */
@Component(service = DiskImageFormat.class)
public final class VhdFormat implements DiskImageFormat {
  @Override
  public String name() {
    return "vhd";
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return VhdReader.hasCookie(head) ? 100 : 0;
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    return Images.openTop(path, VhdReader::open);
  }
}
