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
    ByteBuffer ids = index.raw();
    ByteBuffer inPlace = index.frame();
    if (inPlace != null) {
      return BlobFrames.seal(inPlace.position(FixedIndex.HEADER + ids.capacity()));
    }
    ByteBuffer b =
        BlobFrames.open(MAGIC, VERSION, 20L + ids.capacity(), "the fixed index of a disk");
    b.putInt(index.chunkSize()).putLong(index.diskSize()).putLong(index.count());
    b.put(ids.clear());
    return BlobFrames.seal(b);
  }

  /** The framed bytes of {@code index} (before any {@code BlobCodec}). */
  public static byte[] write(FixedIndex index) {
    ByteBuffer ids = index.raw();
    ByteBuffer b = ByteBuffer.allocate(20 + ids.capacity());
    b.putInt(index.chunkSize()).putLong(index.diskSize()).putLong(index.count());
    ids.rewind();
    b.put(ids);
    return BlobFrames.frame(MAGIC, VERSION, b.array());
  }
}
