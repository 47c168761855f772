package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.util.List;

/**
 * Serializes an index blob: a {@link BlobFrames} frame (magic "GIDX", version 1) around {@code u32
 * n} then n entries of 65 bytes: chunk id[32], pack id[16], u64 offset, u32 stored length, u32 raw
 * length, u8 flags. Stateless and thread-safe.
 */
public final class IndexWriter {
  /** Magic of index blobs: "GIDX". */
  public static final int MAGIC = 0x47494458;

  public static final int VERSION = 1;

  /** Bytes per entry of an index blob (before its codec). */
  static final int ENTRY_SIZE = 65;

  /**
   * The most entries a writer puts in one index blob (2 MiB of entries), whatever the number of
   * packs it lists: reading a blob costs a bounded heap (its bytes, and ~130 bytes per entry while
   * they are put into the off-heap chunk index), however small and compressible the chunks are.
   */
  public static final int MAX_ENTRIES = 32_768;

  private static final SecureRandom RANDOM = new SecureRandom();

  private IndexWriter() {}

  /**
   * Saves {@code entries} to {@code store} through {@code codec} as new index blobs (random names)
   * of at most {@link #MAX_ENTRIES} each; returns how many.
   */
  public static int save(BlobStore store, BlobCodec codec, List<IndexEntry> entries)
      throws IOException {
    int blobs = 0;
    for (int from = 0; from < entries.size(); from += MAX_ENTRIES) {
      byte[] id = new byte[32];
      RANDOM.nextBytes(id);
      BlobName name = new BlobName(BlobType.INDEX, Hex.encode(id));
      List<IndexEntry> part = entries.subList(from, Math.min(entries.size(), from + MAX_ENTRIES));
      store.save(name, codec.encode(name, write(part)));
      blobs++;
    }
    return blobs;
  }

  /** The framed bytes of an index blob holding {@code entries} (before any {@code BlobCodec}). */
  public static byte[] write(List<IndexEntry> entries) {
    ByteBuffer b = ByteBuffer.allocate(4 + entries.size() * ENTRY_SIZE);
    b.putInt(entries.size());
    for (IndexEntry e : entries) {
      ChunkLocation l = e.location();
      e.id().write(b);
      l.pack().write(b);
      b.putLong(l.offset()).putInt(l.storedLength()).putInt(l.rawLength()).put((byte) l.flags());
    }
    return BlobFrames.frame(MAGIC, VERSION, b.array());
  }
}
