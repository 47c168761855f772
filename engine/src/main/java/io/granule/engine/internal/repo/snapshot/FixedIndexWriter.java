package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.StreamedFrames;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
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

  /** Payload bytes before the ids: chunk size, disk size, count. */
  static final int HEADER = 20;

  private FixedIndexWriter() {}

  /** The framed bytes of {@code index} (before any {@code BlobCodec}), in an array. */
  public static byte[] write(FixedIndex index) {
    return StreamedFrames.frame(MAGIC, VERSION, payloadLength(index), payload(index));
  }

  /**
   * Saves {@code index} as blob {@code name}, encoded by {@code codec}: a large one (a large
   * disk's: 64 MiB per TiB at 512 KiB chunks) streamed from its temporary file ({@link
   * StreamedFrames}), never whole in memory.
   */
  public static void save(BlobStore store, BlobCodec codec, BlobName name, FixedIndex index)
      throws IOException {
    StreamedFrames.save(store, codec, name, MAGIC, VERSION, payloadLength(index), payload(index));
  }

  private static long payloadLength(FixedIndex index) {
    return HEADER + (long) index.count() * ChunkId.BYTES;
  }

  /** The payload of an index, produced in order. */
  private static StreamedFrames.Source payload(FixedIndex index) {
    ByteBuffer header = ByteBuffer.allocate(HEADER);
    header.putInt(index.chunkSize()).putLong(index.diskSize()).putLong(index.count()).flip();
    long end = HEADER + (long) index.count() * ChunkId.BYTES;
    long[] at = {0};
    return dst -> {
      while (dst.hasRemaining() && at[0] < end) {
        if (at[0] < HEADER) {
          int n = (int) Math.min(HEADER - at[0], dst.remaining());
          dst.put(header.duplicate().position((int) at[0]).limit((int) at[0] + n));
          at[0] += n;
        } else {
          int n = (int) Math.min(dst.remaining(), end - at[0]);
          ByteBuffer part = dst.duplicate().limit(dst.position() + n);
          index.readIds(at[0] - HEADER, part);
          dst.position(dst.position() + n);
          at[0] += n;
        }
      }
    };
  }
}
