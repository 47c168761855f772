package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.plugin.PluginLeases;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Every command's help reads well at 80 columns (a pipe, a small terminal): a description line that
 * is followed by another one must fit, or picocli wraps it and leaves a stub of a few words on a
 * line of its own. A paragraph goes in one element, which picocli wraps evenly.
 */
class CliHelpLayoutTest {
  /** Usage width when the output is not a terminal. */
  private static final int WIDTH = 80;

  /** Width of the option description column at that width (picocli's default layout). */
  private static final int OPTION_COLUMN = WIDTH - 29;

  @TempDir Path tmp;

  @Test
  void noManualLineBreakLeavesAStub() {
    CliContext ctx =
        new CliContext(
            List::of,
            new PluginLeases<>("DiskImageFormat", f -> f.name(), Duration.ofSeconds(1)),
            new PluginLeases<>("SnapshotProvider", s -> s.name(), Duration.ofSeconds(1)),
            new PluginLeases<>("FileSystemType", s -> s.name(), Duration.ofSeconds(1)),
            new PluginLeases<>("ApplicationPlugin", s -> s.name(), Duration.ofSeconds(1)),
            null,
            tmp,
            "1.2.3",
            new PrintWriter(new StringWriter(), true),
            new PrintWriter(new StringWriter(), true));
    List<String> ragged = new ArrayList<>();
    check(new Cli(ctx).commandLine(), ragged);
    assertThat(ragged).as("help lines wider than the column, followed by a line break").isEmpty();
  }

  private static void check(CommandLine cl, List<String> ragged) {
    CommandSpec spec = cl.getCommandSpec();
    String name = spec.qualifiedName();
    lines(name + " (description)", spec.usageMessage().description(), WIDTH, ragged);
    lines(name + " (footer)", spec.usageMessage().footer(), WIDTH, ragged);
    List<ArgSpec> args = new ArrayList<>(spec.options());
    args.addAll(spec.positionalParameters());
    for (ArgSpec a : args) {
      String label =
          a.isOption() ? ((CommandLine.Model.OptionSpec) a).longestName() : a.paramLabel();
      lines(name + " " + label, a.description(), OPTION_COLUMN, ragged);
    }
    for (CommandLine sub : cl.getSubcommands().values()) {
      if (sub.getParent() == cl) {
        check(sub, ragged);
      }
    }
  }

  private static void lines(String where, String[] text, int width, List<String> ragged) {
    for (int i = 0; i + 1 < text.length; i++) {
      String line = text[i].replace("%n", "\n").replace("%%", "%");
      String[] parts = line.split("\n", -1);
      String last = parts[parts.length - 1];
      if (last.length() > width && !text[i + 1].isBlank()) {
        ragged.add(where + ": \"" + last + "\" (" + last.length() + " > " + width + ")");
      }
    }
  }
}
