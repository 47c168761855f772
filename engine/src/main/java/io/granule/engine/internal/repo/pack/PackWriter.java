package io.granule.engine.internal.repo.pack;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Assembles one pack in memory in the layout of {@link PackFormat}: {@link #add} chunk records,
 * then {@link #finish} to get the bytes to save. Memory use is the pack size plus its trailer. Not
 * thread-safe.
 */
public final class PackWriter {
  private byte[] buf;
  private int size;
  private final List<PackEntry> entries = new ArrayList<>();
  private boolean finished;

  /** A writer expecting about {@code expectedSize} bytes. */
  public PackWriter(int expectedSize) {
    buf = new byte[Math.max(expectedSize + 4096, 64)];
    ByteBuffer.wrap(buf)
        .putInt(PackFormat.MAGIC)
        .putShort((short) PackFormat.VERSION)
        .putShort((short) 0);
    size = PackFormat.HEADER_SIZE;
  }

  /** Appends the stored bytes of chunk {@code id}; returns its trailer entry. */
  public PackEntry add(ChunkId id, byte[] stored, int rawLength, int flags) {
    if (finished) {
      throw new IllegalStateException("pack already finished");
    }
    ensure(stored.length);
    System.arraycopy(stored, 0, buf, size, stored.length);
    PackEntry e =
        new PackEntry(
            id, size, stored.length, rawLength, flags, BlobFrames.crc32c(stored, 0, stored.length));
    size += stored.length;
    entries.add(e);
    return e;
  }

  /** Bytes written so far (header and records). */
  public int size() {
    return size;
  }

  /** Number of chunk records. */
  public int count() {
    return entries.size();
  }

  /** The entries added so far, in order. */
  public List<PackEntry> entries() {
    return List.copyOf(entries);
  }

  /** Appends trailer and footer; returns the complete pack file. */
  public byte[] finish() {
    finished = true;
    int trailerOffset = size;
    ensure(entries.size() * PackFormat.ENTRY_SIZE + PackFormat.FOOTER_SIZE);
    ByteBuffer b = ByteBuffer.wrap(buf);
    b.position(size);
    for (PackEntry e : entries) {
      e.id().write(b);
      b.putLong(e.offset()).putInt(e.storedLength()).putInt(e.rawLength());
      b.putInt(e.flags()).putInt(e.crc());
    }
    int trailerLength = b.position() - trailerOffset;
    b.putLong(trailerOffset).putInt(entries.size());
    b.putInt(BlobFrames.crc32c(buf, trailerOffset, trailerLength));
    b.putInt(BlobFrames.crc32c(buf, 0, b.position()));
    b.putInt(PackFormat.FOOTER_MAGIC);
    return Arrays.copyOf(buf, b.position());
  }

  private void ensure(int more) {
    if (size + more > buf.length) {
      buf = Arrays.copyOf(buf, Math.max(buf.length * 2, size + more));
    }
  }
}
