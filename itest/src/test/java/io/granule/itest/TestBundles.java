package io.granule.itest;

import aQute.bnd.osgi.Builder;
import aQute.bnd.osgi.Jar;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;

/** Builds plugin bundles from this module's test classes with bnd, as a plugin author would. */
final class TestBundles {
  private TestBundles() {}

  static final String SLOW = "io.granule.itest.slowformat";
  static final String FAILING = "io.granule.itest.failing";
  static final String BROKEN = "io.granule.itest.broken";

  /** The slow test format, at {@code version}. */
  static Path slow(Path dir, String version) throws Exception {
    return build(dir, SLOW, version, "io.granule.itest.plugin.slow", Map.of());
  }

  static final String CONFIGURED = "io.granule.itest.configured";

  /** A format with one instance per factory configuration. */
  static Path configured(Path dir) throws Exception {
    return build(dir, CONFIGURED, "1.0.0", "io.granule.itest.plugin.configured", Map.of());
  }

  /** A bundle whose component throws on activation. */
  static Path failing(Path dir) throws Exception {
    return build(dir, FAILING, "1.0.0", "io.granule.itest.plugin.failing", Map.of());
  }

  /** A bundle importing a package nothing exports. */
  static Path broken(Path dir) throws Exception {
    return build(
        dir,
        BROKEN,
        "1.0.0",
        "io.granule.itest.plugin.slow",
        Map.of("Import-Package", "io.granule.itest.missing;version=\"[1,2)\",*"));
  }

  private static Path build(
      Path dir, String bsn, String version, String pkg, Map<String, String> extra)
      throws Exception {
    Path out = dir.resolve(bsn + "-" + version + ".jar");
    try (Builder b = new Builder()) {
      b.setProperty("Bundle-SymbolicName", bsn);
      b.setProperty("Bundle-Version", version);
      b.setProperty("Private-Package", pkg);
      b.setProperty("Granule-Plugin", "test");
      b.setProperty("-dsannotations", "*");
      b.setProperty("-noextraheaders", "true");
      extra.forEach(b::setProperty);
      b.addClasspath(new File("target/test-classes"));
      b.addClasspath(new File(System.getProperty("granule.engine.jar")));
      Jar jar = b.build();
      if (!b.isOk()) {
        throw new IllegalStateException("bnd failed for " + bsn + ": " + b.getErrors());
      }
      jar.write(out.toFile());
    }
    return out;
  }

  /** Puts a bundle into a watched folder in one step, as a careful operator's `mv` would. */
  static void deploy(Path bundle, Path pluginsDir, String fileName) throws Exception {
    Path tmp = pluginsDir.getParent().resolve(fileName + ".tmp");
    Files.copy(bundle, tmp, StandardCopyOption.REPLACE_EXISTING);
    Files.move(
        tmp,
        pluginsDir.resolve(fileName),
        StandardCopyOption.REPLACE_EXISTING,
        StandardCopyOption.ATOMIC_MOVE);
  }
}
