package io.granule.plugin.vmdisk.internal.fs;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Helpers shared by the filesystem readers: name decoding, path splitting, hex offsets. */
public final class Names {
  private Names() {}

  /** Decodes an on-disk name as UTF-8; invalid bytes become U+FFFD. */
  public static String utf8(ByteBuffer b, int at, int length) {
    byte[] raw = new byte[length];
    b.get(at, raw);
    return new String(raw, StandardCharsets.UTF_8);
  }

  /**
   * The components of an absolute or relative path, without empty ones.
   *
   * @throws java.io.IOException if a component is {@code "."} or {@code ".."}, or contains NUL
   */
  public static List<String> components(String path, String fs) throws java.io.IOException {
    List<String> out = new ArrayList<>();
    for (String part : path.split("/", -1)) {
      if (part.isEmpty()) {
        continue;
      }
      if (part.equals(".") || part.equals("..") || part.indexOf('\0') >= 0) {
        throw new java.io.IOException(
            fs
                + ": path '"
                + path
                + "': component '"
                + part
                + "' is not allowed; use a plain path");
      }
      out.add(part);
    }
    return out;
  }

  /** {@code 0x...} in lowercase. */
  public static String hex(long v) {
    return "0x" + Long.toHexString(v);
  }

  /** {@code String.format} with {@link Locale#ROOT}. */
  public static String fmt(String format, Object... args) {
    return String.format(Locale.ROOT, format, args);
  }
}
