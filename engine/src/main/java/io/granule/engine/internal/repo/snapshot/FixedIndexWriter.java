package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PagedFile;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.zip.CRC32C;

/**
 * Serializes a {@link FixedIndex}: a {@link BlobFrames} frame (magic "GFIX", version 1) around
 * {@code u32 chunkSize, u64 diskSize, u64 count} and {@code count} ids of 32 bytes (all-zero =
 * chunk of zeros). Stateless and thread-safe.
 */
public final class FixedIndexWriter {
  /** Magic of fixed index blobs: "GFIX". */
  public static final int MAGIC = 0x47464958;

  public static final int VERSION = 1;

  /** Bytes before the ids: the frame's header, then chunk size, disk size, count. */
  static final int HEADER = 8 + 20;

  /** Plain bytes encoded at a time when a large index is streamed. */
  static final int STEP = 1 << 20;

  private FixedIndexWriter() {}

  /** The framed bytes of {@code index} (before any {@code BlobCodec}), in an array. */
  public static byte[] write(FixedIndex index) {
    long length = plainLength(index);
    if (length > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException("a fixed index of " + length + " bytes is no array");
    }
    ByteBuffer b = ByteBuffer.allocate((int) length);
    new Plain(index).fill(b);
    return b.array();
  }

  /** Bytes of the framed index. */
  static long plainLength(FixedIndex index) {
    return HEADER + (long) index.count() * ChunkId.BYTES + 4;
  }

  /**
   * Saves {@code index} as blob {@code name}, encoded by {@code codec}: a small one through an
   * array, a large one (a large disk's: 64 MiB per TiB at 512 KiB chunks) streamed a step at a time
   * from its temporary file through the codec into another temporary file, which the store copies:
   * neither the heap nor the process's memory holds it whole.
   */
  public static void save(BlobStore store, BlobCodec codec, BlobName name, FixedIndex index)
      throws IOException {
    long plainLength = plainLength(index);
    BlobCodec.Pieces pieces = index.paged() ? codec.encoder(name, plainLength) : null;
    long storedLength = codec.encodedLength(plainLength);
    if (pieces == null || storedLength < 0) {
      store.save(name, codec.encode(name, write(index)));
      return;
    }
    String what = "fixed index " + name;
    try (FileChannel out = PagedFile.temporary(storedLength, what)) {
      Plain plain = new Plain(index);
      int step = Math.max(1, STEP / pieces.unit()) * pieces.unit();
      ByteBuffer in = ByteBuffer.allocate(step);
      ByteBuffer encoded = ByteBuffer.allocate(pieces.room(step));
      long pos = 0;
      for (long done = 0; done < plainLength; ) {
        in.clear().limit((int) Math.min(step, plainLength - done));
        plain.fill(in);
        in.flip();
        done += in.remaining();
        encoded.clear();
        pieces.next(in, encoded, done == plainLength);
        encoded.flip();
        try {
          while (encoded.hasRemaining()) {
            pos += out.write(encoded, pos);
          }
        } catch (IOException e) {
          throw PagedFile.noRoom(what, storedLength, e);
        }
      }
      if (pos != storedLength) {
        throw new IllegalStateException(
            what + ": encoded to " + pos + " bytes, not " + storedLength);
      }
      store.save(name, out, storedLength);
    }
  }

  /** The framed bytes of an index, produced in order. */
  private static final class Plain {
    private final FixedIndex index;
    private final long idsEnd;
    private final ByteBuffer header = ByteBuffer.allocate(HEADER);
    private final CRC32C crc = new CRC32C();
    private long at; // bytes produced

    Plain(FixedIndex index) {
      this.index = index;
      this.idsEnd = HEADER + (long) index.count() * ChunkId.BYTES;
      header.putInt(MAGIC).putShort((short) VERSION).putShort((short) 0);
      header.putInt(index.chunkSize()).putLong(index.diskSize()).putLong(index.count()).flip();
    }

    /** Puts the next bytes into {@code dst} until it is full or the frame ends. */
    void fill(ByteBuffer dst) {
      while (dst.hasRemaining() && at < idsEnd + 4) {
        int start = dst.position();
        if (at < HEADER) {
          ByteBuffer h = header.duplicate().position((int) at);
          h.limit((int) Math.min(HEADER, at + dst.remaining()));
          dst.put(h);
        } else if (at < idsEnd) {
          int n = (int) Math.min(dst.remaining(), idsEnd - at);
          ByteBuffer part = dst.duplicate().limit(dst.position() + n);
          index.readIds(at - HEADER, part);
          dst.position(dst.position() + n);
        } else {
          ByteBuffer sum = ByteBuffer.allocate(4).putInt(0, (int) crc.getValue());
          sum.position((int) (at - idsEnd));
          sum.limit(sum.position() + Math.min(sum.remaining(), dst.remaining()));
          int n = sum.remaining();
          dst.put(sum);
          at += n;
          continue;
        }
        crc.update(dst.duplicate().flip().position(start));
        at += dst.position() - start;
      }
    }
  }
}
