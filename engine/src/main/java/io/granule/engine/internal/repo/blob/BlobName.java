package io.granule.engine.internal.repo.blob;

import java.util.regex.Pattern;

/**
 * The name of a blob: its type and a name unique within that type. Names are lowercase letters,
 * digits, {@code -} and {@code _}, at least 2 characters (so packs can be fanned out by their first
 * two characters), and never start with a dot (temporary files do).
 */
public record BlobName(BlobType type, String name) {
  private static final Pattern VALID = Pattern.compile("[0-9a-z_-]{2,128}");

  /** The name of the repository config blob. */
  public static final BlobName CONFIG = new BlobName(BlobType.CONFIG, "config");

  /** Whether {@code name} is a valid blob name. */
  public static boolean isValid(String name) {
    return VALID.matcher(name).matches();
  }

  public BlobName {
    if (type == null || name == null || !VALID.matcher(name).matches()) {
      throw new IllegalArgumentException("invalid blob name: " + type + "/" + name);
    }
  }

  /** {@code type-directory/name}, as shown in messages. */
  @Override
  public String toString() {
    return type == BlobType.CONFIG ? name : type.directory() + "/" + name;
  }
}
