package io.granule.runtime;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A private OSGi framework storage directory per process, under the system temporary directory.
 *
 * <p>Named {@code granule-osgi-PID-…}; directories left behind by processes that no longer exist
 * (killed with SIGKILL) are removed at the next start.
 */
final class FrameworkStorage {
  private static final String PREFIX = "granule-osgi-";

  private FrameworkStorage() {}

  static Path create() throws LaunchException {
    Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
    removeStale(tmp);
    try {
      return Files.createTempDirectory(tmp, PREFIX + ProcessHandle.current().pid() + "-");
    } catch (IOException e) {
      throw new LaunchException(
          "unable to create the runtime's storage in " + tmp + ": " + e + " (check free space)", e);
    }
  }

  static void delete(Path storage) {
    BundleCache.deleteTree(storage);
  }

  private static void removeStale(Path tmp) {
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(tmp, PREFIX + "*")) {
      for (Path p : ds) {
        String rest = p.getFileName().toString().substring(PREFIX.length());
        int dash = rest.indexOf('-');
        if (dash <= 0) {
          continue;
        }
        try {
          long pid = Long.parseLong(rest.substring(0, dash));
          if (ProcessHandle.of(pid).isEmpty()) {
            BundleCache.deleteTree(p);
          }
        } catch (NumberFormatException ignored) {
          // Not one of ours.
        }
      }
    } catch (IOException ignored) {
      // Cleaning up is best effort.
    }
  }
}
