package io.granule.engine.internal.osgi;

import java.nio.file.Path;
import java.util.List;
import org.osgi.framework.BundleContext;

/** Framework properties the launcher sets for the engine. */
final class RuntimeProperties {
  private RuntimeProperties() {}

  /** The data directory ({@code granule.data}); {@code ./granule-data} when not launched by us. */
  static Path dataDir(BundleContext context) {
    String d = context.getProperty("granule.data");
    return Path.of(d == null ? "granule-data" : d).toAbsolutePath().normalize();
  }

  /** The one-shot command's arguments ({@code granule.cli.args}, NUL-separated); empty if none. */
  static List<String> cliArgs(BundleContext context) {
    String a = context.getProperty("granule.cli.args");
    return a == null || a.isEmpty() ? List.of() : List.of(a.split("\0", -1));
  }

  /** True in a {@code granule server} process. */
  static boolean server(BundleContext context) {
    return "server".equals(context.getProperty("granule.mode"));
  }
}
