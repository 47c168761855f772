package io.granule.engine.internal.repo;

import java.security.SecureRandom;

/**
 * The name of a snapshot: 32 random bytes, shown as 64 lowercase hex digits. Users may refer to a
 * snapshot by any unique prefix of its hex form.
 */
public record SnapshotId(String hex) {
  /** Length of an id in bytes. */
  public static final int BYTES = 32;

  private static final SecureRandom RANDOM = new SecureRandom();

  public SnapshotId {
    Hex.decode(hex, BYTES);
  }

  /** A fresh random id. */
  public static SnapshotId random() {
    byte[] b = new byte[BYTES];
    RANDOM.nextBytes(b);
    return new SnapshotId(Hex.encode(b));
  }

  /** The first 8 hex digits, for display. */
  public String shortForm() {
    return hex.substring(0, 8);
  }

  @Override
  public String toString() {
    return hex;
  }
}
