package io.granule.engine.internal.image;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.service.component.annotations.Component;

/**
 * The built-in raw format: a file or block device read as is. Probes with the lowest positive
 * score, so any format that recognises its magic number wins.
 */
@Component(service = DiskImageFormat.class)
public final class RawFormat implements DiskImageFormat {
  public static final String NAME = "raw";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return 1;
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    return RawDiskImage.open(path);
  }
}
