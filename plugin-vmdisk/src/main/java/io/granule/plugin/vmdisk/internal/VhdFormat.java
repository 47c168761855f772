package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.service.component.annotations.Component;

/**
 * The VHD disk image format (qemu's "vpc") as a service; see {@link VhdReader}. A fixed VHD has its
 * only footer at the end of the file: {@link #probe(ByteBuffer, ByteBuffer, long)} finds it there.
 * Stateless and thread-safe.
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

  /** A dynamic VHD has a copy of its footer at the start; a fixed one only at the end. */
  @Override
  public int probe(ByteBuffer head, ByteBuffer tail, long fileSize) {
    if (VhdReader.hasCookie(head)) {
      return 100;
    }
    if (tail.remaining() >= 512) {
      ByteBuffer footer = tail.duplicate();
      footer.position(tail.limit() - 512);
      if (VhdReader.hasCookie(footer)) {
        return 100;
      }
    }
    return 0;
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    return Images.openTop(path, VhdReader::open);
  }
}
