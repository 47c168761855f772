package io.granule.engine.internal.repo.chunk;

import java.util.function.IntConsumer;

/**
 * Splits a byte stream into chunks. The stream is fed in pieces of any size through {@link
 * #update}; the chunker reports the length of each chunk as soon as it ends, then {@link #finish}
 * reports the last, possibly shorter, chunk. Boundaries depend only on the bytes of the stream,
 * never on how it was cut into pieces.
 *
 * <p>Instances hold the state of one stream and are not thread-safe; {@link #reset} starts a new
 * stream.
 */
public interface Chunker {

  /** Default fixed chunk size for disks: the one constant to change after benchmarks. */
  int DEFAULT_FIXED_CHUNK_SIZE = 1 << 20;

  /**
   * Consumes {@code len} bytes of {@code data} at {@code off}; calls {@code chunkEnd} with the
   * length of each chunk that ends inside them.
   */
  void update(byte[] data, int off, int len, IntConsumer chunkEnd);

  /** Ends the stream: reports the pending chunk, if it holds any byte, and resets. */
  void finish(IntConsumer chunkEnd);

  /** Forgets any pending bytes and starts a new stream. */
  void reset();

  /** The largest chunk this chunker emits. */
  int maxSize();
}
