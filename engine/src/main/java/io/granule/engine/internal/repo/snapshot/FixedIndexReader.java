package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.LargeBuffers;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;

/** Parses fixed index blobs written by {@link FixedIndexWriter}. Stateless and thread-safe. */
public final class FixedIndexReader {
  private FixedIndexReader() {}

  /**
   * The fixed index in blob {@code name}.
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   */
  public static FixedIndex read(BlobName name, byte[] bytes) {
    return read(name, ByteBuffer.wrap(bytes));
  }

  /**
   * The fixed index in {@code frame} (its bytes from 0 to its limit), whose ids stay where they are
   * (no copy: 32 bytes per chunk position of the disk).
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   */
  public static FixedIndex read(BlobName name, ByteBuffer frame) {
    ByteBuffer b =
        BlobFrames.unframe(name, frame, FixedIndexWriter.MAGIC, FixedIndexWriter.VERSION).payload();
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
    return new FixedIndex(chunkSize, diskSize, b.slice(), null);
  }

  /**
   * Loads and parses fixed index blob {@code name} from {@code store}: a small one through arrays,
   * a large one (a large disk's) into buffers from {@link LargeBuffers}, off the Java heap, and
   * decoded there when the codec can ({@link BlobCodec#decodedLength}).
   *
   * @throws NoSuchFileException if there is no such blob
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   * @throws IllegalArgumentException if the codec refuses it (damaged, or another key)
   */
  public static FixedIndex load(BlobStore store, BlobCodec codec, BlobName name)
      throws IOException {
    long size =
        store
            .stat(name)
            .map(BlobInfo::size)
            .orElseThrow(() -> new NoSuchFileException(name.toString()));
    int plainLength = size > Integer.MAX_VALUE ? -1 : codec.decodedLength((int) size);
    if (size <= LargeBuffers.HEAP_MAX || codec.transforms() && plainLength < 0) {
      return read(name, codec.decode(name, store.load(name)));
    }
    ByteBuffer stored = LargeBuffers.allocate(size, "fixed index " + name);
    store.load(name, 0, stored);
    stored.flip();
    if (!codec.transforms()) {
      return read(name, stored);
    }
    ByteBuffer plain = LargeBuffers.allocate(plainLength, "fixed index " + name);
    codec.decode(name, stored, plain);
    return read(name, plain.flip());
  }
}
