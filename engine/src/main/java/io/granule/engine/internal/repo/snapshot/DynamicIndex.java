package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The dynamic index of one stream in one snapshot: content-defined chunks of varying length, each
 * with its end offset in the stream and its id ({@link ChunkId#ZERO} for a chunk of zeros). Held in
 * memory at 40 bytes per chunk. Thread-safe.
 */
public final class DynamicIndex implements ChunkList {
  private long[] ends;
  private ByteBuffer ids;
  private int count;

  /** An empty index. */
  public DynamicIndex() {
    this(new long[16], ByteBuffer.allocate(16 * ChunkId.BYTES), 0);
  }

  DynamicIndex(long[] ends, ByteBuffer ids, int count) {
    this.ends = ends;
    this.ids = ids;
    this.count = count;
  }

  /** Appends a chunk of {@code length} bytes (id still unknown); returns its position. */
  public synchronized int append(int length) {
    if (count == ends.length) {
      ends = Arrays.copyOf(ends, count * 2);
      ByteBuffer bigger = ByteBuffer.allocate(count * 2 * ChunkId.BYTES);
      bigger.put(ids.rewind());
      ids = bigger;
    }
    ends[count] = (count == 0 ? 0 : ends[count - 1]) + length;
    return count++;
  }

  @Override
  public synchronized void set(int position, ChunkId id) {
    int p = position * ChunkId.BYTES;
    ids.putLong(p, id.w0()).putLong(p + 8, id.w1()).putLong(p + 16, id.w2());
    ids.putLong(p + 24, id.w3());
  }

  /** Number of chunks. */
  public synchronized int count() {
    return count;
  }

  /** Length of the stream in bytes. */
  public synchronized long size() {
    return count == 0 ? 0 : ends[count - 1];
  }

  /** Offset of the first byte of chunk {@code position}. */
  public synchronized long start(int position) {
    return position == 0 ? 0 : ends[position - 1];
  }

  /** Length of chunk {@code position}. */
  public synchronized int length(int position) {
    return (int) (ends[position] - start(position));
  }

  /** The id of chunk {@code position}. */
  public synchronized ChunkId get(int position) {
    int p = position * ChunkId.BYTES;
    return new ChunkId(
        ids.getLong(p), ids.getLong(p + 8), ids.getLong(p + 16), ids.getLong(p + 24));
  }
}
