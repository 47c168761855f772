package io.granule.engine.internal.repo.pack;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.blob.DirectIo;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Assembles one pack in memory in the layout of {@link PackFormat}: {@link #add} chunk records (or
 * write them in place: {@link #reserve}, then {@link #commit}), then {@link #finish} to get the
 * bytes to save. The pack is assembled in a direct buffer, so that compression, encryption and the
 * file write read and write it without copies through the Java heap; its address is aligned for
 * {@code O_DIRECT} writes. Memory use is the pack size plus its trailer; the buffer can be handed
 * in and reused for the next pack. Not thread-safe.
 */
public final class PackWriter {
  private ByteBuffer buf;
  private int size;
  private final List<PackEntry> entries = new ArrayList<>();
  private boolean finished;
  private int length = -1;
  // crc32c of buf[0, size), combined from the records' own checksums: no second pass over the data
  private int crc;

  /** A writer expecting about {@code expectedSize} bytes. */
  public PackWriter(int expectedSize) {
    this(DirectIo.allocate(Math.max(expectedSize + 4096, 64), DirectIo.MIN_ALIGN).clear());
  }

  /**
   * A writer that assembles the pack in {@code buffer}, a direct buffer (from index 0, whatever its
   * position; grown if a pack outgrows it).
   */
  public PackWriter(ByteBuffer buffer) {
    buf = buffer.isDirect() && buffer.capacity() >= 64 ? buffer : ByteBuffer.allocateDirect(64);
    buf.clear();
    buf.putInt(0, PackFormat.MAGIC).putShort(4, (short) PackFormat.VERSION).putShort(6, (short) 0);
    size = PackFormat.HEADER_SIZE;
    crc = crc32c(0, size);
  }

  /** Appends the stored bytes of chunk {@code id}; returns its trailer entry. */
  public PackEntry add(ChunkId id, byte[] stored, int rawLength, int flags) {
    reserve(stored.length).put(size, stored);
    return commit(id, stored.length, rawLength, flags);
  }

  /**
   * Makes room for a record of up to {@code max} bytes and returns the buffer to write it into
   * (absolute puts at {@link #size()} on, or a duplicate positioned there); then {@link #commit}
   * it. The buffer may change from call to call.
   */
  public ByteBuffer reserve(int max) {
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
    if (finished || storedLength < 0 || size + storedLength > buf.capacity()) {
      throw new IllegalStateException("record not reserved");
    }
    int recordCrc = crc32c(size, storedLength);
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
    byte[] file = new byte[finishInPlace()];
    buf.get(0, file);
    return file;
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
    ByteBuffer b = buf.duplicate().clear().position(size);
    for (PackEntry e : entries) {
      e.id().write(b);
      b.putLong(e.offset()).putInt(e.storedLength()).putInt(e.rawLength());
      b.putInt(e.flags()).putInt(e.crc());
    }
    int trailerLength = b.position() - trailerOffset;
    b.putLong(trailerOffset).putInt(entries.size());
    b.putInt(crc32c(trailerOffset, trailerLength));
    int tail = b.position() - size;
    b.putInt(BlobFrames.crc32cCombine(crc, crc32c(size, tail), tail));
    b.putInt(PackFormat.FOOTER_MAGIC);
    length = b.position();
    return length;
  }

  /**
   * The direct buffer holding the pack (after {@link #finishInPlace}: the file in its first bytes).
   * Its position and limit mean nothing.
   */
  public ByteBuffer buffer() {
    return buf;
  }

  private int crc32c(int from, int len) {
    java.util.zip.CRC32C c = new java.util.zip.CRC32C();
    c.update(buf.duplicate().clear().position(from).limit(from + len));
    return (int) c.getValue();
  }

  private void ensure(int more) {
    if (size + more > buf.capacity()) {
      ByteBuffer bigger =
          DirectIo.allocate(Math.max(buf.capacity() * 2, size + more), DirectIo.MIN_ALIGN).clear();
      bigger.put(0, buf, 0, size);
      buf = bigger;
    }
  }
}
