package io.granule.engine.internal.repo.chunk;

import java.util.function.IntConsumer;

/** Cuts a stream every {@code size} bytes; the last chunk may be shorter. Not thread-safe. */
public final class FixedChunker implements Chunker {
  private final int size;
  private int pending;

  /** A chunker of {@code size}-byte chunks ({@code size} at least 1). */
  public FixedChunker(int size) {
    if (size < 1) {
      throw new IllegalArgumentException("invalid fixed chunk size: " + size);
    }
    this.size = size;
  }

  @Override
  public void update(byte[] data, int off, int len, IntConsumer chunkEnd) {
    int left = len;
    while (left > 0) {
      int take = Math.min(left, size - pending);
      pending += take;
      left -= take;
      if (pending == size) {
        chunkEnd.accept(size);
        pending = 0;
      }
    }
  }

  @Override
  public void finish(IntConsumer chunkEnd) {
    if (pending > 0) {
      chunkEnd.accept(pending);
    }
    pending = 0;
  }

  @Override
  public void reset() {
    pending = 0;
  }

  @Override
  public int maxSize() {
    return size;
  }
}
