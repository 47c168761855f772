package io.granule.plugin.vmdisk.internal.fs;

import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Bounds-checked reads of a volume for filesystem readers, with a small least-recently-used cache
 * of metadata blocks.
 *
 * <p>Every read is checked against the volume's size before it is made, so a hostile pointer turns
 * into an {@link IOException} naming the structure, never a read outside the volume. Thread-safe.
 */
public final class BlockCache {
  private static final int CAPACITY = 512;

  private final DiskImage volume;
  private final int blockSize;
  private final String fs;
  private final Map<Long, byte[]> blocks =
      new LinkedHashMap<>(64, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, byte[]> eldest) {
          return size() > CAPACITY;
        }
      };

  /**
   * @param volume the volume holding the filesystem
   * @param blockSize the filesystem's block size, a power of two
   * @param fs the filesystem's name, the first word of every error message, e.g. {@code ext4}
   */
  public BlockCache(DiskImage volume, int blockSize, String fs) {
    this.volume = volume;
    this.blockSize = blockSize;
    this.fs = fs;
  }

  public int blockSize() {
    return blockSize;
  }

  public long volumeSize() {
    return volume.size();
  }

  /**
   * Block {@code block} (little-endian, read-only, position 0), from the cache when it is there.
   *
   * @param what the structure the block holds, for the error message, e.g. {@code inode 12 extent
   *     tree}
   */
  public ByteBuffer block(long block, String what) throws IOException {
    byte[] data;
    synchronized (blocks) {
      data = blocks.get(block);
    }
    if (data == null) {
      if (block < 0 || block > (volume.size() - blockSize) / blockSize) {
        throw new IOException(
            String.format(
                Locale.ROOT,
                "%s: %s: block %d is outside the volume (%d blocks of %d bytes)",
                fs,
                what,
                block,
                volume.size() / blockSize,
                blockSize));
      }
      ByteBuffer b = ByteBuffer.allocate(blockSize);
      volume.read(block * blockSize, b);
      data = b.array();
      synchronized (blocks) {
        blocks.put(block, data);
      }
    }
    return ByteBuffer.wrap(data).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  /**
   * Reads {@code length} bytes at byte {@code offset} of the volume, uncached.
   *
   * @param what the structure being read, for the error message
   */
  public ByteBuffer bytes(long offset, int length, String what) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
    read(offset, b, what);
    return b.flip();
  }

  /** Reads {@code dst.remaining()} bytes at byte {@code offset} of the volume into {@code dst}. */
  public void read(long offset, ByteBuffer dst, String what) throws IOException {
    if (offset < 0 || offset > volume.size() || dst.remaining() > volume.size() - offset) {
      throw new IOException(
          String.format(
              Locale.ROOT,
              "%s: %s: %d bytes at offset 0x%x are outside the volume (0x%x bytes)",
              fs,
              what,
              dst.remaining(),
              offset,
              volume.size()));
    }
    volume.read(offset, dst);
  }
}
