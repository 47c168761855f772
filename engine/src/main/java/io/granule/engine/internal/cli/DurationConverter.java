package io.granule.engine.internal.cli;

import java.time.Duration;
import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** Parses durations like {@code 90} (seconds), {@code 30s}, {@code 5m}, {@code 2h}, {@code 1d}. */
final class DurationConverter implements ITypeConverter<Duration> {
  @Override
  public Duration convert(String value) {
    String v = value.trim().toLowerCase(Locale.ROOT);
    long unit = 1;
    if (v.endsWith("ms")) {
      long ms;
      try {
        ms = Long.parseLong(v.substring(0, v.length() - 2));
      } catch (NumberFormatException e) {
        throw invalid(value);
      }
      if (ms < 0) {
        throw invalid(value);
      }
      return Duration.ofMillis(ms);
    }
    if (v.endsWith("s")) {
      v = v.substring(0, v.length() - 1);
    } else if (v.endsWith("m")) {
      unit = 60;
      v = v.substring(0, v.length() - 1);
    } else if (v.endsWith("h")) {
      unit = 3600;
      v = v.substring(0, v.length() - 1);
    } else if (v.endsWith("d")) {
      unit = 86400;
      v = v.substring(0, v.length() - 1);
    }
    try {
      long n = Long.parseLong(v);
      if (n < 0) {
        throw invalid(value);
      }
      return Duration.ofSeconds(n * unit);
    } catch (NumberFormatException e) {
      throw invalid(value);
    }
  }

  private static TypeConversionException invalid(String value) {
    return new TypeConversionException(
        "'" + value + "' is not a duration like 90, 30s, 5m, 2h or 1d");
  }
}
