package io.granule.engine.internal.repo.pack;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Assembles one pack in memory in the layout of {@link PackFormat}: {@link #add} chunk records (or
 * write them in place: {@link #reserve}, then {@link #commit}), then {@link #finish} to get the
 * bytes to save. Memory use is the pack size plus its trailer; the buffer can be handed in and
 * reused for the next pack. Not thread-safe.
 */
public final class PackWriter {
  private byte[] buf;
  private int size;
  private final List<PackEntry> entries = new ArrayList<>();
  private boolean finished;
  private int length = -1;
  // crc32c of buf[0, size), combined from the records' own checksums: no second pass over the data
  private int crc;

  /** A writer expecting about {@code expectedSize} bytes. */
  public PackWriter(int expectedSize) {
    this(new byte[Math.max(expectedSize + 4096, 64)]);
  }

  /** A writer that assembles the pack in {@code buffer} (grown if a pack outgrows it). */
  public PackWriter(byte[] buffer) {
    buf = buffer.length >= 64 ? buffer : new byte[64];
    ByteBuffer.wrap(buf)
        .putInt(PackFormat.MAGIC)
        .putShort((short) PackFormat.VERSION)
        .putShort((short) 0);
    size = PackFormat.HEADER_SIZE;
    crc = BlobFrames.crc32c(buf, 0, size);
  }

  /** Appends the stored bytes of chunk {@code id}; returns its trailer entry. */
  public PackEntry add(ChunkId id, byte[] stored, int rawLength, int flags) {
    System.arraycopy(stored, 0, reserve(stored.length), size, stored.length);
    return commit(id, stored.length, rawLength, flags);
  }

  /**
   * Makes room for a record of up to {@code max} bytes and returns the buffer to write it into, at
   * offset {@link #size()}; then {@link #commit} it. The buffer may change from call to call.
   */
  public byte[] reserve(int max) {
    if (finished) {
      throw new IllegalStateException("pack already finished");
    }
    ensure(max);
    return buf;
  }

  /**
   * Appends the record of chunk {@code id} that the caller wrote, {@code storedLength} bytes at
   * {@link #size()} of the {@link #reserve}d buffer; returns its trailer entry.
   */
  public PackEntry commit(ChunkId id, int storedLength, int rawLength, int flags) {
    if (finished || size + storedLength > buf.length) {
      throw new IllegalStateException("record not reserved");
    }
    int recordCrc = BlobFrames.crc32c(buf, size, storedLength);
    PackEntry e = new PackEntry(id, size, storedLength, rawLength, flags, recordCrc);
    crc = BlobFrames.crc32cCombine(crc, recordCrc, storedLength);
    size += storedLength;
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
    return Arrays.copyOf(buf, finishInPlace());
  }

  /**
   * Appends trailer and footer and returns the pack file's length: it is the first that many bytes
   * of {@link #buffer()}.
   */
  public int finishInPlace() {
    if (finished) {
      return length;
    }
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
    int tail = b.position() - size;
    b.putInt(BlobFrames.crc32cCombine(crc, BlobFrames.crc32c(buf, size, tail), tail));
    b.putInt(PackFormat.FOOTER_MAGIC);
    length = b.position();
    return length;
  }

  /** The buffer holding the pack (after {@link #finishInPlace}: the file in its first bytes). */
  public byte[] buffer() {
    return buf;
  }

  private void ensure(int more) {
    if (size + more > buf.length) {
      buf = Arrays.copyOf(buf, Math.max(buf.length * 2, size + more));
    }
  }
}
