package io.granule.itest.plugin.slow;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.osgi.service.component.annotations.Component;

/**
 * A test-only disk image format whose allocation map takes a while to compute, so that a test can
 * update or remove the plugin while an operation is using it.
 *
 * <p>File layout: "SLOWTEST" magic, 8-byte virtual size, 8-byte delay in milliseconds. While {@link
 * DiskImage#allocation} runs, the file {@code PATH.started} exists.
 */
@Component(service = DiskImageFormat.class)
public final class SlowFormat implements DiskImageFormat {
  static final byte[] MAGIC = "SLOWTEST".getBytes(StandardCharsets.US_ASCII);

  @Override
  public String name() {
    return "slowtest";
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    if (head.remaining() < 32) {
      return 0;
    }
    byte[] m = new byte[8];
    head.get(m);
    return java.util.Arrays.equals(m, MAGIC) ? 100 : 0;
  }

  @Override
  public DiskImage open(Path path) throws IOException {
    ByteBuffer hdr = ByteBuffer.allocate(32);
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      ch.read(hdr, 0);
    }
    hdr.flip();
    hdr.position(8);
    long size = hdr.getLong();
    long delay = hdr.getLong();
    long readDelay = hdr.getLong();
    return new DiskImage() {
      @Override
      public long size() {
        return size;
      }

      @Override
      public String format() {
        return "slowtest";
      }

      @Override
      public void read(long offset, ByteBuffer dst) throws IOException {
        if (offset + dst.remaining() > size) {
          throw new EOFException("read past the end of " + path);
        }
        sleep(readDelay);
        long pos = offset;
        while (dst.hasRemaining()) {
          dst.put(pos < size / 2 ? (byte) (pos * 31 >>> 12) : 0);
          pos++;
        }
      }

      @Override
      public List<Extent> allocation(long offset, long length) throws IOException {
        Path marker = Path.of(path + ".started");
        Files.writeString(marker, "started");
        try {
          sleep(delay);
        } finally {
          Files.deleteIfExists(marker);
        }
        return List.of(new Extent(offset, length / 2));
      }

      @Override
      public void close() {}
    };
  }

  private static void sleep(long ms) throws IOException {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    }
  }
}
