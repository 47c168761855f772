package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import java.nio.ByteBuffer;

/**
 * The fixed index of one disk in one snapshot: the chunk id at each chunk position ({@link
 * ChunkId#ZERO} for a chunk of zeros, which is not stored). Position {@code i} covers bytes {@code
 * [i * chunkSize, min(size, (i + 1) * chunkSize))}.
 *
 * <p>Held in memory at 32 bytes per chunk (32 KiB per GiB of disk at 1 MiB chunks). {@link #set} is
 * safe from several threads for distinct positions; publication to readers goes through whatever
 * joins those threads.
 */
public final class FixedIndex implements ChunkList {
  private final int chunkSize;
  private final long diskSize;
  private final ByteBuffer ids;

  /** An index of all-zero chunks for a disk of {@code diskSize} bytes. */
  public FixedIndex(int chunkSize, long diskSize) {
    this(
        chunkSize, diskSize, ByteBuffer.allocate(Math.toIntExact(count(chunkSize, diskSize) * 32)));
  }

  FixedIndex(int chunkSize, long diskSize, ByteBuffer ids) {
    if (chunkSize <= 0 || diskSize < 0) {
      throw new IllegalArgumentException(
          "invalid fixed index: chunk size " + chunkSize + ", disk size " + diskSize);
    }
    this.chunkSize = chunkSize;
    this.diskSize = diskSize;
    this.ids = ids;
  }

  /** Number of chunk positions of a disk. */
  public static long count(int chunkSize, long diskSize) {
    return (diskSize + chunkSize - 1) / chunkSize;
  }

  public int chunkSize() {
    return chunkSize;
  }

  public long diskSize() {
    return diskSize;
  }

  /** Number of chunk positions. */
  public int count() {
    return ids.capacity() / ChunkId.BYTES;
  }

  /** Length of the chunk at {@code position} (the last one may be short). */
  public int length(int position) {
    return (int) Math.min(chunkSize, diskSize - (long) position * chunkSize);
  }

  /** The id at {@code position}. */
  public ChunkId get(int position) {
    int p = position * ChunkId.BYTES;
    return new ChunkId(
        ids.getLong(p), ids.getLong(p + 8), ids.getLong(p + 16), ids.getLong(p + 24));
  }

  /** Records {@code id} at {@code position}. */
  @Override
  public void set(int position, ChunkId id) {
    int p = position * ChunkId.BYTES;
    ids.putLong(p, id.w0()).putLong(p + 8, id.w1()).putLong(p + 16, id.w2());
    ids.putLong(p + 24, id.w3());
  }

  ByteBuffer raw() {
    return ids.duplicate();
  }
}
