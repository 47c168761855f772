package io.granule.plugin.vmdisk.internal.fs.ext4;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.FileSystemType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.osgi.service.component.annotations.Component;

/** The ext2/3/4 filesystem type, read by {@link Ext4Reader}. Stateless and thread-safe. */
@Component(service = FileSystemType.class)
public final class Ext4FileSystemType implements FileSystemType {

  @Override
  public String name() {
    return "ext4";
  }

  /** 100 for a superblock that checks out, 60 for the magic alone (open names the problem). */
  @Override
  public int probe(DiskImage volume) throws IOException {
    if (volume.size() < Superblock.OFFSET + Superblock.SIZE) {
      return 0;
    }
    ByteBuffer sb = ByteBuffer.allocate(Superblock.SIZE).order(ByteOrder.LITTLE_ENDIAN);
    volume.read(Superblock.OFFSET, sb);
    sb.flip();
    if (!Superblock.hasMagic(sb)) {
      return 0;
    }
    try {
      Superblock.parse(sb, volume.size());
      return 100;
    } catch (IOException e) {
      return 60;
    }
  }

  @Override
  public FileSystem open(DiskImage volume) throws IOException {
    return Ext4Reader.open(volume);
  }
}
