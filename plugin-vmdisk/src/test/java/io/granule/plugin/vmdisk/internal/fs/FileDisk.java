package io.granule.plugin.vmdisk.internal.fs;

import io.granule.engine.spi.DiskImage;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** A raw image file as a {@link DiskImage}, for tests. */
public final class FileDisk implements DiskImage {
  private final FileChannel ch;
  private final long size;

  public FileDisk(Path path) throws IOException {
    ch = FileChannel.open(path, StandardOpenOption.READ);
    size = ch.size();
  }

  @Override
  public long size() {
    return size;
  }

  @Override
  public String format() {
    return "raw";
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws IOException {
    if (offset < 0 || offset + dst.remaining() > size) {
      throw new EOFException("read past the end of the test image at " + offset);
    }
    long pos = offset;
    while (dst.hasRemaining()) {
      int n = ch.read(dst, pos);
      if (n < 0) {
        throw new EOFException("unexpected end of the test image at " + pos);
      }
      pos += n;
    }
  }

  @Override
  public void close() throws IOException {
    ch.close();
  }
}
