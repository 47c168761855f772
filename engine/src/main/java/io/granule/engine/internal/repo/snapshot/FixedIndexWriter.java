package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import java.nio.ByteBuffer;

/**
 * Serializes a {@link FixedIndex}: a {@link BlobFrames} frame (magic "GFIX", version 1) around
 * {@code u32 chunkSize, u64 diskSize, u64 count} and {@code count} ids of 32 bytes (all-zero =
 * chunk of zeros). Stateless and thread-safe.
 */
public final class FixedIndexWriter {
  /** Magic of fixed index blobs: "GFIX". */
  public static final int MAGIC = 0x47464958;

  public static final int VERSION = 1;

  private FixedIndexWriter() {}

  /**
   * The framed bytes of {@code index} (before any {@code BlobCodec}) in a buffer from {@link
   * io.granule.engine.internal.repo.LargeBuffers} (off the heap for a large disk), flipped.
   */
  public static ByteBuffer frame(FixedIndex index) {
    ByteBuffer inPlace = index.frame();
    if (inPlace == null) {
      throw new IllegalStateException("a fixed index read from a blob is not written again");
    }
    return BlobFrames.seal(inPlace.position(FixedIndex.HEADER + index.raw().capacity()));
  }

  /** The framed bytes of {@code index} (before any {@code BlobCodec}), in an array. */
  public static byte[] write(FixedIndex index) {
    ByteBuffer frame = frame(index);
    byte[] b = new byte[frame.remaining()];
    frame.get(b);
    return b;
  }
}
