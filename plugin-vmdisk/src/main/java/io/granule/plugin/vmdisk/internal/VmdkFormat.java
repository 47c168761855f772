package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.service.component.annotations.Component;

/**
 * The VMDK disk image format as a service; see {@link VmdkReader} for what it reads and refuses.
 * Open the descriptor file (or the single file of a monolithic sparse disk). Stateless and
 * thread-safe.
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
}
