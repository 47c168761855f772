package io.granule.engine.internal.repo;

import java.nio.ByteBuffer;
import java.security.SecureRandom;

/**
 * The 16-byte random name of a pack. Random rather than content-derived: a pack is named before its
 * last chunk is known, and its integrity is guarded by its own checksums.
 */
public record PackId(long hi, long lo) {
  /** Length of an id in bytes. */
  public static final int BYTES = 16;

  private static final SecureRandom RANDOM = new SecureRandom();

  /** A fresh random id. */
  public static PackId random() {
    return new PackId(RANDOM.nextLong(), RANDOM.nextLong());
  }

  /** Reads an id from the next {@code BYTES} bytes of {@code src}. */
  public static PackId read(ByteBuffer src) {
    return new PackId(src.getLong(), src.getLong());
  }

  /** Parses 32 hex digits. */
  public static PackId parse(String hex) {
    return read(ByteBuffer.wrap(Hex.decode(hex, BYTES)));
  }

  /** Writes the id as the next {@code BYTES} bytes of {@code dst}. */
  public void write(ByteBuffer dst) {
    dst.putLong(hi).putLong(lo);
  }

  /** 32 lowercase hex digits. */
  @Override
  public String toString() {
    ByteBuffer b = ByteBuffer.allocate(BYTES);
    write(b);
    return Hex.encode(b.array());
  }
}
