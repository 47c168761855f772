package io.granule.plugin.mysql.internal;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A server's family and version, parsed from what it reports ({@code SELECT VERSION()},
 * {@code @@version_comment}, {@code mariadbd --version}).
 *
 * @param family MariaDB or MySQL (Percona Server and other MySQL builds count as MySQL)
 * @param major the major version, e.g. 10 or 8
 * @param minor the minor version, e.g. 11 or 0
 * @param patch the patch level
 * @param raw the version string as reported
 */
record ServerVersion(Family family, int major, int minor, int patch, String raw) {

  /** The two server families: their data directories are not interchangeable. */
  enum Family {
    MARIADB("MariaDB"),
    MYSQL("MySQL");

    private final String product;

    Family(String product) {
      this.product = product;
    }

    /** The product name, as stored in {@link io.granule.engine.spi.ApplicationInfo#product}. */
    String product() {
      return product;
    }

    /** The family of a stored product name, or null. */
    static Family ofProduct(String product) {
      for (Family f : values()) {
        if (f.product.equalsIgnoreCase(product)) {
          return f;
        }
      }
      return null;
    }
  }

  private static final Pattern NUMBERS = Pattern.compile("(\\d+)\\.(\\d+)(?:\\.(\\d+))?");

  /**
   * Parses a version string such as {@code 10.11.6-MariaDB-0+deb12u1-log} or {@code 8.0.36}, using
   * {@code comment} ({@code @@version_comment}, may be null) to tell the families apart when the
   * version string does not say.
   *
   * @throws IllegalArgumentException if no version number is found
   */
  static ServerVersion parse(String version, String comment) {
    Matcher m = NUMBERS.matcher(version == null ? "" : version);
    if (!m.find()) {
      throw new IllegalArgumentException("no version number in '" + version + "'");
    }
    String all = (version + " " + (comment == null ? "" : comment)).toLowerCase(Locale.ROOT);
    Family family = all.contains("mariadb") ? Family.MARIADB : Family.MYSQL;
    int major = Integer.parseInt(m.group(1));
    int minor = Integer.parseInt(m.group(2));
    int patch = m.group(3) == null ? 0 : Integer.parseInt(m.group(3));
    // MariaDB 10.x servers speaking to old clients prefix "5.5.5-": skip it.
    if (family == Family.MARIADB && major == 5 && minor == 5 && patch == 5) {
      Matcher next = NUMBERS.matcher(version);
      if (next.find(m.end())) {
        major = Integer.parseInt(next.group(1));
        minor = Integer.parseInt(next.group(2));
        patch = next.group(3) == null ? 0 : Integer.parseInt(next.group(3));
      }
    }
    return new ServerVersion(family, major, minor, patch, version);
  }

  /** True if this version is {@code major.minor} or newer. */
  boolean atLeast(int major, int minor) {
    return this.major > major || (this.major == major && this.minor >= minor);
  }

  /** The release series whose data directories are interchangeable, e.g. {@code 10.11}. */
  String series() {
    return major + "." + minor;
  }

  /** True if a server of {@code other}'s version can open this version's data directory. */
  boolean sameSeries(ServerVersion other) {
    return family == other.family && major == other.major && minor == other.minor;
  }

  @Override
  public String toString() {
    return family.product() + " " + major + "." + minor + "." + patch;
  }
}
