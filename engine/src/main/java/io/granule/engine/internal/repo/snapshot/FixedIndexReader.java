package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.StreamedFrames;
import io.granule.engine.internal.repo.blob.BlobCodec;
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
    return StreamedFrames.parse(
        name, bytes, FixedIndexWriter.MAGIC, FixedIndexWriter.VERSION, new Parser(name));
  }

  /**
   * Loads and parses fixed index blob {@code name} from {@code store}: a large one (a large disk's)
   * streamed ({@link StreamedFrames#load}) into an index whose ids live in a temporary file, so
   * that neither the heap nor the process's memory holds it whole.
   *
   * @throws NoSuchFileException if there is no such blob
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   * @throws IllegalArgumentException if the codec refuses it (damaged, or another key)
   */
  public static FixedIndex load(BlobStore store, BlobCodec codec, BlobName name)
      throws IOException {
    return StreamedFrames.parse(
        store,
        codec,
        name,
        FixedIndexWriter.MAGIC,
        FixedIndexWriter.VERSION,
        () -> new Parser(name));
  }

  /** Parses the payload fed in order, its ids written into the index as they come. */
  private static final class Parser implements StreamedFrames.Parser<FixedIndex> {
    private final BlobName name;
    private final ByteBuffer header = ByteBuffer.allocate(FixedIndexWriter.HEADER);
    private FixedIndex index;
    private long ids; // id bytes received
    private long idsLength;
    private long extra; // bytes past the ids

    Parser(BlobName name) {
      this.name = name;
    }

    @Override
    public void accept(ByteBuffer b) {
      while (b.hasRemaining()) {
        if (header.hasRemaining()) {
          int n = Math.min(header.remaining(), b.remaining());
          header.put(b.duplicate().limit(b.position() + n));
          b.position(b.position() + n);
          if (!header.hasRemaining()) {
            start();
          }
        } else if (ids < idsLength) {
          int n = (int) Math.min(idsLength - ids, b.remaining());
          ByteBuffer part = b.duplicate().limit(b.position() + n);
          index.writeIds(ids, part);
          b.position(b.position() + n);
          ids += n;
        } else {
          extra += b.remaining();
          b.position(b.limit());
        }
      }
    }

    private void start() {
      header.flip();
      int chunkSize = header.getInt();
      long diskSize = header.getLong();
      long count = header.getLong();
      if (chunkSize <= 0
          || diskSize < 0
          || count != FixedIndex.count(chunkSize, diskSize)
          || count > FixedIndex.MAX_POSITIONS) {
        throw BlobFrames.corrupted(
            "fixed index " + name,
            "inconsistent header",
            "chunkSize=" + chunkSize + " diskSize=" + diskSize + " count=" + count,
            "count=ceil(diskSize/chunkSize) and at most " + FixedIndex.MAX_POSITIONS);
      }
      idsLength = count * ChunkId.BYTES;
      index = new FixedIndex(chunkSize, diskSize);
    }

    @Override
    public FixedIndex finish() {
      if (index == null || ids < idsLength || extra > 0) {
        throw BlobFrames.corrupted(
            "fixed index " + name,
            "length does not match its header",
            (index == null ? header.position() : FixedIndexWriter.HEADER + ids + extra) + " bytes",
            index == null
                ? "at least " + FixedIndexWriter.HEADER
                : FixedIndexWriter.HEADER + idsLength);
      }
      return index;
    }

    @Override
    public void abandon() {
      if (index != null) {
        index.close();
      }
    }
  }
}
