package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.blob.BlobName;
import java.nio.ByteBuffer;

/** Parses dynamic index blobs written by {@link DynamicIndexWriter}. Stateless and thread-safe. */
public final class DynamicIndexReader {
  private DynamicIndexReader() {}

  /**
   * The dynamic index in blob {@code name}.
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   */
  public static DynamicIndex read(BlobName name, byte[] bytes) {
    ByteBuffer b =
        BlobFrames.unframe(name, bytes, DynamicIndexWriter.MAGIC, DynamicIndexWriter.VERSION)
            .payload();
    long n = b.getLong();
    if (n < 0 || b.remaining() != n * DynamicIndexWriter.ENTRY_SIZE) {
      throw BlobFrames.corrupted(
          "dynamic index " + name,
          "length does not match entry count",
          b.remaining() + " bytes",
          n * DynamicIndexWriter.ENTRY_SIZE + " bytes");
    }
    int count = (int) n;
    long[] ends = new long[Math.max(1, count)];
    ByteBuffer ids = ByteBuffer.allocate(Math.max(1, count) * ChunkId.BYTES);
    long prev = 0;
    for (int i = 0; i < count; i++) {
      ends[i] = b.getLong();
      if (ends[i] <= prev) {
        throw BlobFrames.corrupted(
            "dynamic index " + name, "chunk ends out of order at entry " + i, ends[i], "> " + prev);
      }
      prev = ends[i];
      ChunkId.read(b).write(ids);
    }
    return new DynamicIndex(ends, ids, count);
  }
}
