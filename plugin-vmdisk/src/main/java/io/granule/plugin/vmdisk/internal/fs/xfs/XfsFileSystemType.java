package io.granule.plugin.vmdisk.internal.fs.xfs;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.FileSystemType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.osgi.service.component.annotations.Component;

/** The XFS (version 5) filesystem type, read by {@link XfsReader}. Stateless and thread-safe. */
@Component(service = FileSystemType.class)
public final class XfsFileSystemType implements FileSystemType {

  @Override
  public String name() {
    return "xfs";
  }

  /** 100 for a superblock that checks out, 60 for the magic alone (open names the problem). */
  @Override
  public int probe(DiskImage volume) throws IOException {
    if (volume.size() < 512) {
      return 0;
    }
    ByteBuffer sb = ByteBuffer.allocate(512);
    volume.read(0, sb);
    sb.flip().order(ByteOrder.BIG_ENDIAN);
    if (!XfsSuperblock.hasMagic(sb)) {
      return 0;
    }
    try {
      XfsSuperblock.parse(sb, volume.size());
      return 100;
    } catch (IOException e) {
      return 60;
    }
  }

  @Override
  public FileSystem open(DiskImage volume) throws IOException {
    return XfsReader.open(volume);
  }
}
