package io.granule.engine.internal.cli;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.DiskImageFormat;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.Function;

/** The command line's context as the CLI tests build it: no plugins but those a test registers. */
final class TestContexts {
  private TestContexts() {}

  /** An empty registry of disk image formats. */
  static PluginLeases<DiskImageFormat> formats() {
    return new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
  }

  /** An empty registry of application plugins. */
  static PluginLeases<ApplicationPlugin> applications() {
    return new PluginLeases<>("ApplicationPlugin", ApplicationPlugin::name, Duration.ofSeconds(1));
  }

  /**
   * A context over {@code formats} and {@code apps}, data in {@code dataDir}, printing to {@code
   * out} and {@code err}, with environment {@code env} and terminal {@code terminal}.
   */
  static CliContext of(
      PluginLeases<DiskImageFormat> formats,
      PluginLeases<ApplicationPlugin> apps,
      Path dataDir,
      StringWriter out,
      StringWriter err,
      Function<String, String> env,
      Terminal terminal) {
    return new CliContext(
        List::of,
        formats,
        new PluginLeases<>("SnapshotProvider", s -> s.name(), Duration.ofSeconds(1)),
        new PluginLeases<>("FileSystemType", s -> s.name(), Duration.ofSeconds(1)),
        apps,
        null,
        dataDir,
        "1.2.3",
        new PrintWriter(out, true),
        new PrintWriter(err, true),
        env,
        terminal);
  }
}
