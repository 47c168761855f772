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
 * The qcow2 disk image format (versions 2 and 3) as a service; see {@link Qcow2Reader} for what it
 * reads and refuses. Creates qcow2 version 3 through {@link Qcow2Writer}. Stateless and
 * thread-safe.
 */
@Component(service = DiskImageFormat.class)
public final class Qcow2Format implements DiskImageFormat {
  @Override
  public String name() {
    return "qcow2";
  }

  /** 100 for the qcow2 magic: a bad header is then reported by {@link #open}, not read as raw. */
  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return Qcow2Reader.hasMagic(head) ? 100 : 0;
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    return Images.openTop(path, (file, chain) -> Qcow2Reader.open(file, chain).trackChanges());
  }

  @Override
  public boolean canCreate() {
    return true;
  }

  @Override
  public DiskImageWriter create(Path target, long virtualSize, Map<String, String> options)
      throws IOException {
    return Qcow2Writer.create(target, virtualSize, options);
  }
}
