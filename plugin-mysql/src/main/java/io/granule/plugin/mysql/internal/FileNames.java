package io.granule.plugin.mysql.internal;

import java.util.Locale;

/**
 * How the server names database directories and table files: letters, digits and '_' stay, other
 * ASCII characters become {@code @} and four hex digits ({@code my-db} → {@code my@002ddb}). Names
 * with characters beyond ASCII use a server-internal table this class does not reproduce: {@link
 * #isExact} tells callers to fall back to whole directories for them.
 */
final class FileNames {
  private FileNames() {}

  /** True if {@link #encode} gives exactly the server's file name for {@code name}. */
  static boolean isExact(String name) {
    return name.chars().allMatch(ch -> ch < 0x80);
  }

  /** The file name the server uses for a database or table name. */
  static String encode(String name) {
    StringBuilder sb = new StringBuilder(name.length());
    name.codePoints()
        .forEach(
            cp -> {
              if ((cp >= 'a' && cp <= 'z')
                  || (cp >= 'A' && cp <= 'Z')
                  || (cp >= '0' && cp <= '9')
                  || cp == '_') {
                sb.appendCodePoint(cp);
              } else {
                sb.append('@').append(String.format(Locale.ROOT, "%04x", cp));
              }
            });
    return sb.toString();
  }
}
