package io.granule.engine.internal.repo;

import java.nio.ByteBuffer;

/**
 * The 32-byte content address of a chunk: SHA-256 of its plaintext (see {@link ChunkHasher}), held
 * as four big-endian longs so that equality and hashing are cheap. The all-zero value {@link #ZERO}
 * is reserved: it marks a chunk of zeros, which is never stored.
 */
public record ChunkId(long w0, long w1, long w2, long w3) {
  /** Length of an id in bytes. */
  public static final int BYTES = 32;

  /** The marker of an all-zero chunk in a fixed index; no stored chunk has this id. */
  public static final ChunkId ZERO = new ChunkId(0, 0, 0, 0);

  /** Reads an id from {@code BYTES} bytes of {@code src} at {@code offset}. */
  public static ChunkId of(byte[] src, int offset) {
    ByteBuffer b = ByteBuffer.wrap(src, offset, BYTES);
    return new ChunkId(b.getLong(), b.getLong(), b.getLong(), b.getLong());
  }

  /** Reads an id from the next {@code BYTES} bytes of {@code src}. */
  public static ChunkId read(ByteBuffer src) {
    return new ChunkId(src.getLong(), src.getLong(), src.getLong(), src.getLong());
  }

  /** Parses 64 hex digits. */
  public static ChunkId parse(String hex) {
    return of(Hex.decode(hex, BYTES), 0);
  }

  /** Writes the id as the next {@code BYTES} bytes of {@code dst}. */
  public void write(ByteBuffer dst) {
    dst.putLong(w0).putLong(w1).putLong(w2).putLong(w3);
  }

  /** The id as 32 bytes. */
  public byte[] toBytes() {
    ByteBuffer b = ByteBuffer.allocate(BYTES);
    write(b);
    return b.array();
  }

  /** Whether this is the {@link #ZERO} marker. */
  public boolean isZero() {
    return (w0 | w1 | w2 | w3) == 0;
  }

  /** 64 lowercase hex digits. */
  @Override
  public String toString() {
    return Hex.encode(toBytes());
  }
}
