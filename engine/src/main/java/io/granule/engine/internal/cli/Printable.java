package io.granule.engine.internal.cli;

import java.util.Locale;

/**
 * Renders untrusted text (names from manifests, file names from inside a backed-up disk, error
 * messages quoting them) for a terminal or a plain-text listing: control characters (C0, DEL, C1)
 * are shown as {@code \xNN}, format characters (bidi overrides such as U+202E, zero-width ones),
 * line and paragraph separators and lone surrogates as <code>&#92;uXXXX</code> ({@code \UXXXXXXXX}
 * past the BMP), so escape sequences never reach the terminal and a name cannot hide or fake a
 * column (audit12 storage L2). Everything else is kept as it is. JSON output is not passed through
 * this: JSON escaping is exact and already safe.
 */
public final class Printable {
  private Printable() {}

  /** {@code s} with every character that could act on a terminal escaped; null stays null. */
  public static String text(String s) {
    return escape(s, false);
  }

  /** As {@link #text} but keeping line feeds and tabs: for messages of several lines. */
  public static String lines(String s) {
    return escape(s, true);
  }

  private static String escape(String s, boolean keepLines) {
    if (s == null) {
      return null;
    }
    StringBuilder out = null;
    for (int i = 0; i < s.length(); ) {
      int c = s.codePointAt(i);
      int n = Character.charCount(c);
      if (unsafe(c) && !(keepLines && (c == '\n' || c == '\t'))) {
        if (out == null) {
          out = new StringBuilder(s.length() + 16).append(s, 0, i);
        }
        if (c < 0x100) {
          out.append(String.format(Locale.ROOT, "\\x%02x", c));
        } else if (c < 0x10000) {
          out.append(String.format(Locale.ROOT, "\\u%04x", c));
        } else {
          out.append(String.format(Locale.ROOT, "\\U%08x", c));
        }
      } else if (out != null) {
        out.appendCodePoint(c);
      }
      i += n;
    }
    return out == null ? s : out.toString();
  }

  /**
   * Whether {@code c} is a control (C0, DEL, C1), format, line or paragraph separator or surrogate.
   */
  static boolean unsafe(int c) {
    return switch (Character.getType(c)) {
      case Character.CONTROL,
          Character.FORMAT,
          Character.LINE_SEPARATOR,
          Character.PARAGRAPH_SEPARATOR,
          Character.SURROGATE ->
          true;
      default -> false;
    };
  }
}
