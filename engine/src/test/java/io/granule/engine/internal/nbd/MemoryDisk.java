package io.granule.engine.internal.nbd;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/** A disk in memory whose allocation is its non-zero runs of {@code granularity} bytes. */
final class MemoryDisk implements DiskImage {
  private final byte[] bytes;
  private final int granularity;
  volatile boolean failReads;

  MemoryDisk(byte[] bytes, int granularity) {
    this.bytes = bytes;
    this.granularity = granularity;
  }

  byte[] bytes() {
    return bytes;
  }

  @Override
  public long size() {
    return bytes.length;
  }

  @Override
  public String format() {
    return "raw";
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws EOFException {
    if (failReads) {
      throw new IllegalStateException("chunk 00ff is damaged");
    }
    if (offset < 0 || offset + dst.remaining() > bytes.length) {
      throw new EOFException("read past the end");
    }
    dst.put(bytes, (int) offset, dst.remaining());
  }

  @Override
  public List<Extent> allocation(long offset, long length) {
    List<Extent> out = new ArrayList<>();
    long end = Math.min(offset + length, bytes.length);
    long run = -1;
    for (long g = offset / granularity * granularity; g < end; g += granularity) {
      boolean zero = true;
      for (int i = (int) g; i < Math.min(g + granularity, bytes.length); i++) {
        zero &= bytes[i] == 0;
      }
      long s = Math.max(g, offset);
      if (!zero && run < 0) {
        run = s;
      } else if (zero && run >= 0) {
        out.add(new Extent(run, s - run));
        run = -1;
      }
    }
    if (run >= 0) {
      out.add(new Extent(run, end - run));
    }
    return out;
  }

  @Override
  public void close() {}
}
