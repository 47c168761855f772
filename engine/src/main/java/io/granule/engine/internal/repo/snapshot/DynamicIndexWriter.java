package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import java.nio.ByteBuffer;

/**
 * Serializes a {@link DynamicIndex}: a {@link BlobFrames} frame (magic "GDYN", version 1) around
 * {@code u64 count} then {@code count} entries of 40 bytes: u64 end offset, chunk id (32; all-zero
 * = chunk of zeros). Stateless and thread-safe.
 */
public final class DynamicIndexWriter {
  /** Magic of dynamic index blobs: "GDYN". */
  public static final int MAGIC = 0x4744594e;

  public static final int VERSION = 1;
  static final int ENTRY_SIZE = 40;

  private DynamicIndexWriter() {}

  /** The framed bytes of {@code index} (before any {@code BlobCodec}). */
  public static byte[] write(DynamicIndex index) {
    int n = index.count();
    ByteBuffer b = ByteBuffer.allocate(8 + n * ENTRY_SIZE);
    b.putLong(n);
    for (int i = 0; i < n; i++) {
      b.putLong(index.start(i) + index.length(i));
      index.get(i).write(b);
    }
    return BlobFrames.frame(MAGIC, VERSION, b.array());
  }
}
