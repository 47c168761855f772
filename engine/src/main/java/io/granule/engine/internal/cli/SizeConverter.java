package io.granule.engine.internal.cli;

import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** Parses sizes like {@code 4096}, {@code 64K}, {@code 1M}, {@code 4MiB} (powers of 1024). */
final class SizeConverter implements ITypeConverter<Integer> {
  @Override
  public Integer convert(String value) {
    String v = value.trim().toUpperCase(Locale.ROOT).replace("IB", "").replace("B", "");
    long mult = 1;
    if (v.endsWith("K")) {
      mult = 1L << 10;
    } else if (v.endsWith("M")) {
      mult = 1L << 20;
    } else if (v.endsWith("G")) {
      mult = 1L << 30;
    }
    if (mult != 1) {
      v = v.substring(0, v.length() - 1);
    }
    try {
      long n = Long.parseLong(v) * mult;
      if (n <= 0 || n > Integer.MAX_VALUE) {
        throw new TypeConversionException("'" + value + "' is not a size between 1 and 2G");
      }
      return (int) n;
    } catch (NumberFormatException e) {
      throw new TypeConversionException("'" + value + "' is not a size like 4096, 64K or 1M");
    }
  }
}
