package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.StreamedFrames;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
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
    return StreamedFrames.frame(MAGIC, VERSION, payloadLength(index), payload(index));
  }

  /**
   * Saves {@code index} as blob {@code name}, encoded by {@code codec}: a large one (a long
   * stream's: 40 MiB per TiB at 1 MiB chunks) streamed ({@link StreamedFrames}), never whole in
   * memory.
   */
  public static void save(BlobStore store, BlobCodec codec, BlobName name, DynamicIndex index)
      throws IOException {
    StreamedFrames.save(store, codec, name, MAGIC, VERSION, payloadLength(index), payload(index));
  }

  private static long payloadLength(DynamicIndex index) {
    return 8 + (long) index.count() * ENTRY_SIZE;
  }

  /** The payload of an index, produced in order, an entry at a time. */
  private static StreamedFrames.Source payload(DynamicIndex index) {
    int n = index.count();
    ByteBuffer entry = ByteBuffer.allocate(ENTRY_SIZE);
    entry.putLong(n).flip(); // first the count
    int[] next = {0};
    return dst -> {
      while (dst.hasRemaining()) {
        if (!entry.hasRemaining()) {
          if (next[0] == n) {
            return;
          }
          int p = next[0]++;
          entry.clear();
          entry.putLong(index.start(p) + index.length(p));
          index.get(p).write(entry);
          entry.flip();
        }
        int k = Math.min(entry.remaining(), dst.remaining());
        dst.put(entry.duplicate().limit(entry.position() + k));
        entry.position(entry.position() + k);
      }
    };
  }
}
