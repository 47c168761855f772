package io.granule.engine.spi;

import java.util.Objects;

/**
 * One name in a directory and the object it names.
 *
 * <p>The name is never empty, {@code "."} or {@code ".."}, and never contains {@code '/'} or NUL:
 * readers skip on-disk entries that would break these rules. It is decoded from the filesystem's
 * encoding (UTF-8 for ext4 and XFS, UTF-16 for NTFS); bytes that are not valid in that encoding are
 * decoded as U+FFFD, so such a name can be listed but may not round-trip.
 *
 * @param name the entry's name, one path component
 * @param node the object it names
 */
public record DirectoryEntry(String name, FileNode node) {
  public DirectoryEntry {
    Objects.requireNonNull(node, "node");
    if (!isValidName(name)) {
      throw new IllegalArgumentException("invalid directory entry name: " + name);
    }
  }

  /**
   * Whether {@code name} may appear in a directory entry: not null, not empty, not {@code "."} or
   * {@code ".."}, and free of {@code '/'} and NUL.
   */
  public static boolean isValidName(String name) {
    return name != null
        && !name.isEmpty()
        && !name.equals(".")
        && !name.equals("..")
        && name.indexOf('/') < 0
        && name.indexOf('\0') < 0;
  }
}
