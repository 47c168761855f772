package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.blob.BlobName;
import java.nio.ByteBuffer;

/** Parses fixed index blobs written by {@link FixedIndexWriter}. Stateless and thread-safe. */
public final class FixedIndexReader {
  private FixedIndexReader() {}

  /**
   * The fixed index in blob {@code name}.
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   */
  public static FixedIndex read(BlobName name, byte[] bytes) {
    ByteBuffer b =
        BlobFrames.unframe(name, bytes, FixedIndexWriter.MAGIC, FixedIndexWriter.VERSION).payload();
    int chunkSize = b.getInt();
    long diskSize = b.getLong();
    long count = b.getLong();
    if (chunkSize <= 0
        || diskSize < 0
        || count != FixedIndex.count(chunkSize, diskSize)
        || b.remaining() != count * 32) {
      throw BlobFrames.corrupted(
          "fixed index " + name,
          "inconsistent header",
          "chunkSize=" + chunkSize + " diskSize=" + diskSize + " count=" + count,
          "count=ceil(diskSize/chunkSize) and " + count * 32 + " bytes of ids");
    }
    // the ids where they are, in the blob's bytes (no second copy: 32 bytes per chunk of the disk)
    return new FixedIndex(chunkSize, diskSize, b.slice());
  }
}
