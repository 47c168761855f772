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

/** Parses dynamic index blobs written by {@link DynamicIndexWriter}. Stateless and thread-safe. */
public final class DynamicIndexReader {
  private DynamicIndexReader() {}

  /**
   * The dynamic index in blob {@code name}.
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   */
  public static DynamicIndex read(BlobName name, byte[] bytes) {
    return StreamedFrames.parse(
        name, bytes, DynamicIndexWriter.MAGIC, DynamicIndexWriter.VERSION, new Parser(name));
  }

  /**
   * Loads and parses dynamic index blob {@code name} from {@code store}: a large one (a long
   * stream's) streamed ({@link StreamedFrames#load}) into an index in temporary files, never whole
   * in memory.
   *
   * @throws NoSuchFileException if there is no such blob
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   * @throws IllegalArgumentException if the codec refuses it (damaged, or another key)
   */
  public static DynamicIndex load(BlobStore store, BlobCodec codec, BlobName name)
      throws IOException {
    return StreamedFrames.parse(
        store,
        codec,
        name,
        DynamicIndexWriter.MAGIC,
        DynamicIndexWriter.VERSION,
        () -> new Parser(name));
  }

  /** Parses the payload fed in order, an entry at a time. */
  private static final class Parser implements StreamedFrames.Parser<DynamicIndex> {
    private final BlobName name;
    final DynamicIndex index = new DynamicIndex();
    private final ByteBuffer entry = ByteBuffer.allocate(DynamicIndexWriter.ENTRY_SIZE).limit(8);
    private long expected = -1; // entries, once the count is read
    private long entries;
    private long extra;
    private long prev;

    Parser(BlobName name) {
      this.name = name;
    }

    @Override
    public void accept(ByteBuffer b) {
      while (b.hasRemaining()) {
        if (expected >= 0 && entries == expected) {
          extra += b.remaining();
          b.position(b.limit());
          return;
        }
        int k = Math.min(entry.remaining(), b.remaining());
        entry.put(b.duplicate().limit(b.position() + k));
        b.position(b.position() + k);
        if (entry.hasRemaining()) {
          return;
        }
        entry.flip();
        if (expected < 0) {
          expected = entry.getLong();
          if (expected < 0 || expected >= Integer.MAX_VALUE) {
            throw BlobFrames.corrupted(
                "dynamic index " + name, "invalid entry count", expected, "0 to 2^31 - 2");
          }
        } else {
          long end = entry.getLong();
          if (end <= prev || end - prev > Integer.MAX_VALUE) {
            throw BlobFrames.corrupted(
                "dynamic index " + name,
                "chunk ends out of order at entry " + entries,
                end,
                "> " + prev);
          }
          int p = index.append((int) (end - prev));
          index.set(p, ChunkId.read(entry));
          prev = end;
          entries++;
        }
        entry.clear();
      }
    }

    @Override
    public DynamicIndex finish() {
      if (expected < 0 || entries != expected || extra > 0) {
        throw BlobFrames.corrupted(
            "dynamic index " + name,
            "length does not match entry count",
            (8 + entries * DynamicIndexWriter.ENTRY_SIZE + extra) + " bytes",
            (8 + Math.max(0, expected) * DynamicIndexWriter.ENTRY_SIZE) + " bytes");
      }
      return index;
    }

    @Override
    public void abandon() {
      index.close();
    }
  }
}
