package io.granule.engine.internal.image;

import io.granule.engine.spi.DiskImage;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A raw disk image file or a block device, read through a {@link FileChannel} with positional reads
 * (safe from several threads). It cannot tell allocated ranges apart, so it reports the whole disk
 * as allocated; zero chunks are still detected and not stored by the backup.
 */
public final class RawDiskImage implements DiskImage {
  private final Path path;
  private final FileChannel channel;
  private final long size;

  private RawDiskImage(Path path, FileChannel channel, long size) {
    this.path = path;
    this.channel = channel;
    this.size = size;
  }

  /**
   * Opens {@code path} for reading.
   *
   * @throws IOException if it cannot be opened or its size cannot be found; the message names it
   */
  public static RawDiskImage open(Path path) throws IOException {
    FileChannel ch;
    try {
      ch = FileChannel.open(path, StandardOpenOption.READ);
    } catch (IOException e) {
      throw new IOException("unable to open disk image '" + path + "': " + e, e);
    }
    try {
      long size = ch.size();
      if (size == 0 && !Files.isRegularFile(path)) {
        size = blockDeviceSize(path);
      }
      return new RawDiskImage(path, ch, size);
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw e;
    }
  }

  /** The size of a file or block device in bytes. */
  public static long sizeOf(Path path) throws IOException {
    long size = Files.size(path);
    return size == 0 && !Files.isRegularFile(path) ? blockDeviceSize(path) : size;
  }

  private static long blockDeviceSize(Path device) throws IOException {
    Path real = device.toRealPath();
    Path sys = Path.of("/sys/class/block", real.getFileName().toString(), "size");
    try {
      return Long.parseLong(Files.readString(sys).trim()) * 512;
    } catch (IOException | NumberFormatException e) {
      throw new IOException("unable to find the size of block device '" + device + "': " + e, e);
    }
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
      throw new EOFException(
          "read past the end of disk image '"
              + path
              + "': offset="
              + offset
              + " length="
              + dst.remaining()
              + " size="
              + size);
    }
    long pos = offset;
    while (dst.hasRemaining()) {
      int n;
      try {
        n = channel.read(dst, pos);
      } catch (IOException e) {
        throw new IOException(
            "unable to read disk image '" + path + "' at offset " + pos + ": " + e, e);
      }
      if (n < 0) {
        throw new EOFException(
            "disk image '" + path + "' ended at offset " + pos + " while its size is " + size);
      }
      pos += n;
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }

  @Override
  public String toString() {
    return path.toString();
  }
}
