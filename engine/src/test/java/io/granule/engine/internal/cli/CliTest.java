package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.api.PluginInfo;
import io.granule.engine.api.PluginInfo.PluginService;
import io.granule.engine.api.PluginState;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.DiskImageFormat;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The CLI without a framework: parsing, output and exit codes. */
class CliTest {
  @TempDir Path tmp;
  final StringWriter out = new StringWriter();
  final StringWriter err = new StringWriter();
  final PluginLeases<DiskImageFormat> formats =
      new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
  List<PluginInfo> plugins =
      List.of(
          new PluginInfo(
              "io.granule.plugin.vmdisk",
              "1.0.0",
              PluginState.ACTIVE,
              "file:/x.jar",
              List.of(new PluginService("DiskImageFormat", "qcow2")),
              null),
          new PluginInfo(
              "io.example.broken",
              "0.1.0",
              PluginState.FAILED,
              "file:/y.jar",
              List.of(),
              "unresolved: missing requirement package (osgi.wiring.package=x)"));

  int run(String... args) {
    return new Cli(context()).run(args);
  }

  CliContext context() {
    return new CliContext(
        () -> plugins,
        formats,
        new PluginLeases<>("SnapshotProvider", s -> s.name(), Duration.ofSeconds(1)),
        new PluginLeases<>("FileSystemType", s -> s.name(), Duration.ofSeconds(1)),
        new PluginLeases<>("ApplicationPlugin", s -> s.name(), Duration.ofSeconds(1)),
        null,
        tmp,
        "1.2.3",
        new PrintWriter(out, true),
        new PrintWriter(err, true));
  }

  @Test
  void versionAndHelp() {
    assertThat(run("--version")).isZero();
    assertThat(out.toString()).startsWith("granule 1.2.3");
    assertThat(run("--help")).isZero();
    assertThat(out.toString()).contains("plugins").contains("server").contains("Exit codes");
    out.getBuffer().setLength(0);
    assertThat(run("restore", "disk", "--version")).isZero();
    assertThat(out.toString()).startsWith("granule 1.2.3");
  }

  @Test
  void onlyTheNamedSubcommandIsBuiltAndHelpStillListsThemAll() {
    assertThat(Cli.subcommandNamed("--data", "d", "backup", "--disk", "x")).isEqualTo("backup");
    assertThat(Cli.subcommandNamed("restore", "table", "latest")).isEqualTo("restore");
    assertThat(Cli.subcommandNamed("--help")).isNull();
    assertThat(Cli.subcommandNamed("nosuch", "backup")).isNull();
    assertThat(Cli.subcommandNamed()).isNull();
    assertThat(run("--data", tmp.toString(), "backup", "--help")).isZero();
    assertThat(out.toString()).contains("--disk").contains("--app").contains("--data");
    assertThat(run("--help")).isZero();
    assertThat(out.toString()).contains("catalog").contains("prune").contains("serve");
  }

  /**
   * Every command's help renders as written: a '%' not doubled in a description makes picocli print
   * it raw with a warning on the process's standard error (not the context's).
   */
  @Test
  void everyCommandsHelpRendersWithoutFormatWarnings() {
    java.io.PrintStream saved = System.err;
    java.io.ByteArrayOutputStream stderr = new java.io.ByteArrayOutputStream();
    List<String> commands = new java.util.ArrayList<>();
    try {
      System.setErr(new java.io.PrintStream(stderr, true, java.nio.charset.StandardCharsets.UTF_8));
      CommandLine all = new Cli(context()).commandLine();
      java.util.ArrayDeque<CommandLine> todo = new java.util.ArrayDeque<>(List.of(all));
      while (!todo.isEmpty()) {
        CommandLine c = todo.poll();
        commands.add(c.getCommandSpec().qualifiedName());
        c.getUsageMessage();
        todo.addAll(c.getSubcommands().values());
      }
    } finally {
      System.setErr(saved);
    }
    assertThat(commands).contains("granule verify", "granule restore disk", "granule key passwd");
    assertThat(stderr.toString(java.nio.charset.StandardCharsets.UTF_8)).isEmpty();
  }

  @Test
  void unknownCommandIsAUsageError() {
    assertThat(run("frobnicate")).isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("granule: Unmatched argument").contains("--help");
  }

  @Test
  void freezeTimeoutTakesADurationAndRefusesZeroOrNonsense() {
    assertThat(run("backup", "--repo", tmp.toString(), "--disk", "x", "--freeze-timeout", "0"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("--freeze-timeout must be longer than 0");
    err.getBuffer().setLength(0);
    // a limit past a day means nothing (a huge one overflowed the watchdog's timer)
    assertThat(run("backup", "--repo", tmp.toString(), "--disk", "x", "--freeze-timeout", "25h"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("at most a day");
    err.getBuffer().setLength(0);
    assertThat(run("backup", "--repo", tmp.toString(), "--disk", "x", "--freeze-timeout", "-5ms"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("'-5ms' is not a duration");
  }

  @Test
  void pluginsTableShowsStateServicesAndFailureReason() {
    assertThat(run("plugins")).isZero();
    assertThat(out.toString())
        .contains("io.granule.plugin.vmdisk")
        .contains("DiskImageFormat qcow2")
        .contains("failed")
        .contains("failure: unresolved: missing requirement");
  }

  @Test
  void pluginsJsonRoundTrips() throws Exception {
    assertThat(run("plugins", "--json")).isZero();
    List<PluginInfo> back =
        Json.MAPPER.readValue(
            out.toString(),
            new com.fasterxml.jackson.core.type.TypeReference<List<PluginInfo>>() {});
    assertThat(back).isEqualTo(plugins);
  }

  @Test
  void pluginsFromAServerThatDoesNotAnswerIsAServerError() {
    assertThat(run("plugins", "--server", "http://127.0.0.1:1")).isEqualTo(ExitCodes.SERVER);
    assertThat(err.toString()).contains("no granule server answers at http://127.0.0.1:1");
  }

  @Test
  void imageInfoOfAMissingFileIsASourceError() {
    assertThat(run("image", "info", tmp.resolve("nope.img").toString()))
        .isEqualTo(ExitCodes.SOURCE);
    assertThat(err.toString()).contains("unable to open disk image").contains("no such file");
  }

  @Test
  void imageInfoWithAnUnknownFormatIsAPluginError() throws Exception {
    Path img = Files.write(tmp.resolve("a.img"), new byte[4096]);
    assertThat(run("image", "info", "--format", "qcow9", img.toString()))
        .isEqualTo(ExitCodes.PLUGIN);
    assertThat(err.toString()).contains("no plugin provides DiskImageFormat 'qcow9'");
  }

  @Test
  void serverOutsideAServerRuntimeIsRefused() {
    assertThat(run("server")).isEqualTo(ExitCodes.RUNTIME);
  }
}
