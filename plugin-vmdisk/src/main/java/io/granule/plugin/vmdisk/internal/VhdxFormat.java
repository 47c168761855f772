package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;
import org.osgi.service.component.annotations.Component;

/**
 * The VHDX disk image format as a service; see {@link VhdxReader} for what it reads and refuses.
 * Creates dynamic VHDX through {@link VhdxWriter}. Stateless and thread-safe.
 */
@Component(service = DiskImageFormat.class)
public final class VhdxFormat implements DiskImageFormat {
  @Override
  public String name() {
    return "vhdx";
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return VhdxReader.hasSignature(head) ? 100 : 0;
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    return Images.openTop(path, VhdxReader::open);
  }

  @Override
  public boolean canCreate() {
    return true;
  }

  @Override
  public DiskImageWriter create(Path target, long virtualSize, Map<String, String> options)
      throws IOException {
    return VhdxWriter.create(target, virtualSize, options);
  }
}
