package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PagedFile;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The dynamic index of one stream in one snapshot: content-defined chunks of varying length, each
 * with its end offset in the stream and its id ({@link ChunkId#ZERO} for a chunk of zeros).
 *
 * <p>40 bytes per chunk (40 MiB per TiB of stream at the 1 MiB average chunk): on the Java heap up
 * to {@link #HEAP_MAX_CHUNKS} chunks, beyond that in two {@link PagedFile}s (temporary files read
 * through small caches), so neither the heap nor the process's memory grows with the stream.
 * Thread-safe. {@link #close} frees the temporary files of a large one.
 */
public final class DynamicIndex implements ChunkList, AutoCloseable {
  /** Chunks kept on the heap (10 MiB; a stream of ~200 GiB); beyond, in temporary files. */
  public static final int HEAP_MAX_CHUNKS = 1 << 18;

  private final int heapMax;
  private long[] ends;
  private ByteBuffer ids;
  private PagedFile pagedEnds;
  private PagedFile pagedIds;
  private int count;
  private long capacity;

  /** An empty index. */
  public DynamicIndex() {
    this(HEAP_MAX_CHUNKS);
  }

  /** An empty index that moves to temporary files beyond {@code heapMax} chunks. */
  DynamicIndex(int heapMax) {
    this.heapMax = heapMax;
    this.ends = new long[16];
    this.ids = ByteBuffer.allocate(16 * ChunkId.BYTES);
    this.capacity = 16;
  }

  /** Appends a chunk of {@code length} bytes (id still unknown); returns its position. */
  public synchronized int append(int length) {
    if (count == Integer.MAX_VALUE - 1) {
      throw new IllegalStateException("a stream of more than 2^31 chunks");
    }
    if (count == capacity) {
      grow();
    }
    long end = (count == 0 ? 0 : end(count - 1)) + length;
    if (ends != null) {
      ends[count] = end;
    } else {
      pagedEnds.putLong(8L * count, end);
    }
    return count++;
  }

  private void grow() {
    long bigger = Math.min(Integer.MAX_VALUE, capacity * 2);
    if (ends != null && capacity < heapMax) {
      bigger = Math.min(bigger, heapMax);
      ends = Arrays.copyOf(ends, (int) bigger);
      ids = ByteBuffer.allocate((int) bigger * ChunkId.BYTES).put(ids.rewind());
    } else if (ends != null) {
      // to temporary files: the heap's arrays written into them once
      PagedFile e0 = PagedFile.create(8 * bigger, "the index of a stream");
      try {
        pagedIds = PagedFile.create(ChunkId.BYTES * bigger, "the index of a stream");
      } catch (RuntimeException failed) {
        e0.close();
        throw failed;
      }
      pagedEnds = e0;
      ByteBuffer e = ByteBuffer.allocate(8 * count);
      e.asLongBuffer().put(ends, 0, count);
      pagedEnds.write(0, e);
      pagedIds.write(0, ids.rewind().limit(count * ChunkId.BYTES));
      ends = null;
      ids = null;
    } else {
      pagedEnds.grow(8 * bigger);
      pagedIds.grow(ChunkId.BYTES * bigger);
    }
    capacity = bigger;
  }

  private long end(int position) {
    return ends != null ? ends[position] : pagedEnds.getLong(8L * position);
  }

  @Override
  public synchronized void set(int position, ChunkId id) {
    if (position < 0 || position >= count) {
      throw new IndexOutOfBoundsException("chunk " + position + " of " + count);
    }
    long p = (long) position * ChunkId.BYTES;
    if (ids != null) {
      int at = (int) p;
      ids.putLong(at, id.w0()).putLong(at + 8, id.w1()).putLong(at + 16, id.w2());
      ids.putLong(at + 24, id.w3());
    } else {
      pagedIds.putLongs(p, id.w0(), id.w1(), id.w2(), id.w3());
    }
  }

  /** Whether the index lives in temporary files rather than on the heap. */
  public synchronized boolean paged() {
    return pagedIds != null;
  }

  /** Number of chunks. */
  public synchronized int count() {
    return count;
  }

  /** Length of the stream in bytes. */
  public synchronized long size() {
    return count == 0 ? 0 : end(count - 1);
  }

  /** Offset of the first byte of chunk {@code position}. */
  public synchronized long start(int position) {
    return position == 0 ? 0 : end(position - 1);
  }

  /** Length of chunk {@code position}. */
  public synchronized int length(int position) {
    return (int) (end(position) - start(position));
  }

  /** The id of chunk {@code position}. */
  public synchronized ChunkId get(int position) {
    if (position < 0 || position >= count) {
      throw new IndexOutOfBoundsException("chunk " + position + " of " + count);
    }
    long p = (long) position * ChunkId.BYTES;
    if (ids != null) {
      int at = (int) p;
      return new ChunkId(
          ids.getLong(at), ids.getLong(at + 8), ids.getLong(at + 16), ids.getLong(at + 24));
    }
    long[] w = new long[4];
    pagedIds.getLongs(p, w, 4);
    return new ChunkId(w[0], w[1], w[2], w[3]);
  }

  /** Frees a large index's temporary files; the index is unusable afterwards. */
  @Override
  public synchronized void close() {
    if (pagedEnds != null) {
      pagedEnds.close();
      pagedIds.close();
    }
  }
}
