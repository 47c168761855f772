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
 * The VMDK disk image format as a service; see {@link VmdkReader} for what it reads and refuses.
 * Creates monolithicSparse VMDK through {@link VmdkWriter}. Open the descriptor file (or the single
 * file of a monolithic sparse disk). Stateless and thread-safe.
 */
@Component(service = DiskImageFormat.class)
public final class VmdkFormat implements DiskImageFormat {
  @Override
  public String name() {
    return "vmdk";
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return VmdkReader.probe(head.duplicate());
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    return Images.openTop(path, VmdkReader::open);
  }

  @Override
  public boolean canCreate() {
    return true;
  }

  @Override
  public DiskImageWriter create(Path target, long virtualSize, Map<String, String> options)
      throws IOException {
    return VmdkWriter.create(target, virtualSize, options);
  }
}
