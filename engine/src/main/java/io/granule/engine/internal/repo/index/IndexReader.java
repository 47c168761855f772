package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.blob.BlobName;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/** Parses index blobs written by {@link IndexWriter}. Stateless and thread-safe. */
public final class IndexReader {
  private IndexReader() {}

  /**
   * About how many entries index blobs of these sizes hold (their stored size over {@link
   * IndexWriter#ENTRY_SIZE}): what a chunk index for them is sized for.
   */
  public static long estimatedEntries(List<io.granule.engine.internal.repo.blob.BlobInfo> blobs) {
    long entries = 0;
    for (io.granule.engine.internal.repo.blob.BlobInfo b : blobs) {
      entries += b.size() / IndexWriter.ENTRY_SIZE;
    }
    return entries;
  }

  /**
   * The entries of index blob {@code name}.
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if the frame or its length
   *     is wrong
   */
  public static List<IndexEntry> read(BlobName name, byte[] bytes) {
    ByteBuffer b =
        BlobFrames.unframe(name, bytes, IndexWriter.MAGIC, IndexWriter.VERSION).payload();
    int n = b.getInt();
    if (n < 0 || b.remaining() != (long) n * IndexWriter.ENTRY_SIZE) {
      throw BlobFrames.corrupted(
          "index " + name,
          "length does not match entry count",
          b.remaining() + " bytes",
          (long) n * IndexWriter.ENTRY_SIZE + " bytes");
    }
    List<IndexEntry> entries = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      ChunkId id = ChunkId.read(b);
      PackId pack = PackId.read(b);
      entries.add(
          new IndexEntry(
              id, new ChunkLocation(pack, b.getLong(), b.getInt(), b.getInt(), b.get() & 0xff)));
    }
    return entries;
  }
}
