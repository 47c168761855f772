package io.granule.plugin.vmdisk.internal.fs.ntfs;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.FileSystemType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.osgi.service.component.annotations.Component;

/** The NTFS filesystem type, read by {@link NtfsReader}. Stateless and thread-safe. */
@Component(service = FileSystemType.class)
public final class NtfsFileSystemType implements FileSystemType {

  @Override
  public String name() {
    return "ntfs";
  }

  /** 100 for a boot sector that checks out, 60 for the signature alone (open names the problem). */
  @Override
  public int probe(DiskImage volume) throws IOException {
    if (volume.size() < 512) {
      return 0;
    }
    ByteBuffer boot = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
    volume.read(0, boot);
    boot.flip();
    if (!NtfsBoot.hasSignature(boot)) {
      return 0;
    }
    try {
      NtfsBoot.parse(boot, volume.size());
      return 100;
    } catch (IOException e) {
      return 60;
    }
  }

  @Override
  public FileSystem open(DiskImage volume) throws IOException {
    return NtfsReader.open(volume);
  }
}
