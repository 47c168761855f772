package io.granule.engine.internal.repo;

import java.util.HexFormat;

/** Lowercase hexadecimal encoding of identifiers. Stateless and thread-safe. */
public final class Hex {
  private static final HexFormat FORMAT = HexFormat.of();

  private Hex() {}

  /** Lowercase hex of {@code bytes}. */
  public static String encode(byte[] bytes) {
    return FORMAT.formatHex(bytes);
  }

  /**
   * Decodes {@code hex} of exactly {@code length} bytes.
   *
   * @throws IllegalArgumentException if {@code hex} is not {@code 2 * length} hex digits
   */
  public static byte[] decode(String hex, int length) {
    if (hex.length() != 2 * length) {
      throw new IllegalArgumentException(
          "invalid id '" + hex + "': expected " + 2 * length + " hex digits");
    }
    try {
      return FORMAT.parseHex(hex);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("invalid id '" + hex + "': not hexadecimal", e);
    }
  }
}
