package io.granule.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;

/**
 * Where the run bundles are on disk.
 *
 * <p>The executable jar carries them under {@code bundles/}. On first use they are extracted once
 * into {@code $XDG_CACHE_HOME/granule/runtime-KEY} (KEY names this exact jar), so later starts
 * install them by reference without copying. Extraction goes through a temporary directory and an
 * atomic rename, so concurrent first starts are safe. The system property {@code granule.bundles}
 * names a directory of bundles to use instead (development and tests).
 */
final class BundleCache {
  static final String BUNDLES_PROPERTY = "granule.bundles";
  private static final String PREFIX = "bundles/";

  private final Path dir;

  private BundleCache(Path dir) {
    this.dir = dir;
  }

  static BundleCache locate() throws LaunchException {
    String override = System.getProperty(BUNDLES_PROPERTY);
    if (override != null) {
      return new BundleCache(Path.of(override));
    }
    Path self;
    try {
      self = Path.of(Launcher.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (URISyntaxException | RuntimeException e) {
      throw new LaunchException("unable to locate the granule jar: " + e.getMessage(), e);
    }
    if (Files.isDirectory(self)) {
      return new BundleCache(self.resolve("bundles"));
    }
    return new BundleCache(extract(self));
  }

  /** The bundle jars, sorted by file name. */
  List<Path> bundles() throws LaunchException {
    try (Stream<Path> s = Files.list(dir)) {
      List<Path> jars = s.filter(p -> p.toString().endsWith(".jar")).sorted().toList();
      if (jars.isEmpty()) {
        throw new LaunchException("no bundles in " + dir + ": rebuild granule (./mvnw package)");
      }
      return jars;
    } catch (IOException e) {
      throw new LaunchException("unable to list the bundles in " + dir + ": " + e.getMessage(), e);
    }
  }

  private static Path extract(Path jar) throws LaunchException {
    Path root = cacheRoot();
    try {
      Path target = root.resolve("runtime-" + key(jar));
      if (Files.isDirectory(target)) {
        return target;
      }
      Files.createDirectories(root);
      Path tmp = Files.createTempDirectory(root, "extract-");
      try (JarFile jf = new JarFile(jar.toFile())) {
        for (Enumeration<JarEntry> en = jf.entries(); en.hasMoreElements(); ) {
          JarEntry e = en.nextElement();
          String name = e.getName();
          if (name.startsWith(PREFIX)
              && name.endsWith(".jar")
              && name.indexOf('/', PREFIX.length()) < 0) {
            try (InputStream in = jf.getInputStream(e)) {
              Files.copy(in, tmp.resolve(name.substring(PREFIX.length())));
            }
          }
        }
      }
      try {
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException raced) {
        deleteTree(tmp);
      } catch (IOException e) {
        if (!Files.isDirectory(target)) {
          throw e;
        }
        deleteTree(tmp); // another process extracted the same jar first
      }
      return target;
    } catch (IOException e) {
      throw new LaunchException(
          "unable to extract the runtime bundles into "
              + root
              + ": "
              + e
              + " (set XDG_CACHE_HOME to a writable directory)",
          e);
    }
  }

  private static Path cacheRoot() {
    String xdg = System.getenv("XDG_CACHE_HOME");
    Path base =
        xdg != null && !xdg.isBlank()
            ? Path.of(xdg)
            : Path.of(System.getProperty("user.home"), ".cache");
    return base.resolve("granule");
  }

  private static String key(Path jar) throws IOException {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      String id =
          jar.toAbsolutePath()
              + "|"
              + Files.size(jar)
              + "|"
              + Files.getLastModifiedTime(jar).toMillis();
      return HexFormat.of().formatHex(md.digest(id.getBytes(StandardCharsets.UTF_8)), 0, 8);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static void deleteTree(Path dir) {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      List<Path> all = new ArrayList<>(s.toList());
      for (int i = all.size() - 1; i >= 0; i--) {
        Files.deleteIfExists(all.get(i));
      }
    } catch (IOException e) {
      // Best effort: a leftover temporary directory is harmless and cleaned on a later start.
    }
  }
}
