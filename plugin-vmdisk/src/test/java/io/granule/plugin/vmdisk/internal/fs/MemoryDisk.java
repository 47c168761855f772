package io.granule.plugin.vmdisk.internal.fs;

import io.granule.engine.spi.DiskImage;
import java.io.EOFException;
import java.nio.ByteBuffer;

/** A disk held in a byte array, for fuzz tests that mutate images in memory. */
public final class MemoryDisk implements DiskImage {
  private final byte[] data;

  public MemoryDisk(byte[] data) {
    this.data = data;
  }

  @Override
  public long size() {
    return data.length;
  }

  @Override
  public String format() {
    return "raw";
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws EOFException {
    if (offset < 0 || offset > data.length || dst.remaining() > data.length - offset) {
      throw new EOFException("read past the end of the memory disk at " + offset);
    }
    dst.put(data, (int) offset, dst.remaining());
  }

  @Override
  public void close() {}
}
