package io.granule.runtime;

import ch.qos.logback.classic.pattern.ClassicConverter;
import ch.qos.logback.classic.spi.ILoggingEvent;
import java.util.Locale;

/**
 * {@code %safemsg}: the message with control characters (C0 but line feed and tab, DEL, C1), format
 * characters (bidi overrides), line/paragraph separators and lone surrogates shown as {@code \xNN}
 * or <code>&#92;uXXXX</code>: warnings quote names read from a repository or a disk, and the
 * console is an operator's terminal (audit12 storage L2). The same rendering as the CLI's listings.
 */
public final class SafeMessageConverter extends ClassicConverter {
  @Override
  public String convert(ILoggingEvent event) {
    return escape(event.getFormattedMessage());
  }

  static String escape(String s) {
    if (s == null) {
      return null;
    }
    StringBuilder out = null;
    for (int i = 0; i < s.length(); ) {
      int c = s.codePointAt(i);
      boolean unsafe =
          c != '\n'
              && c != '\t'
              && switch (Character.getType(c)) {
                case Character.CONTROL,
                    Character.FORMAT,
                    Character.LINE_SEPARATOR,
                    Character.PARAGRAPH_SEPARATOR,
                    Character.SURROGATE ->
                    true;
                default -> false;
              };
      if (unsafe) {
        if (out == null) {
          out = new StringBuilder(s.length() + 16).append(s, 0, i);
        }
        out.append(
            String.format(
                Locale.ROOT, c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x", c));
      } else if (out != null) {
        out.appendCodePoint(c);
      }
      i += Character.charCount(c);
    }
    return out == null ? s : out.toString();
  }
}
