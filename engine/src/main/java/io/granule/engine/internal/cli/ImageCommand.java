package io.granule.engine.internal.cli;

import io.granule.engine.internal.image.ImageInfo;
import io.granule.engine.internal.image.ImageInspector;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code granule image}: look at disk images before backing them up. */
@Command(
    name = "image",
    mixinStandardHelpOptions = true,
    description = "Inspect disk images.",
    subcommands = {ImageCommand.Info.class})
final class ImageCommand extends ContextCommand {
  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    spec.commandLine().usage(context().err());
    return ExitCodes.USAGE;
  }

  @Command(
      name = "info",
      mixinStandardHelpOptions = true,
      description = "Show a disk image's format, virtual size and allocated bytes.")
  static final class Info extends ContextCommand {
    @Parameters(paramLabel = "FILE", description = "Disk image file or block device.")
    Path file;

    @Option(names = "--format", paramLabel = "NAME", description = "Skip detection: raw, qcow2…")
    String format;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public Integer call() throws IOException {
      ImageInfo info = new ImageInspector(context().formats()).inspect(file, format);
      PrintWriter out = context().out();
      if (json) {
        out.println(Json.MAPPER.writeValueAsString(info));
      } else {
        out.printf(Locale.ROOT, "image:          %s%n", info.path());
        out.printf(Locale.ROOT, "format:         %s (plugin %s)%n", info.format(), info.plugin());
        out.printf(
            Locale.ROOT,
            "virtual size:   %s (%d bytes)%n",
            Sizes.human(info.virtualSize()),
            info.virtualSize());
        out.printf(Locale.ROOT, "allocated:      %s%n", Sizes.human(info.allocatedBytes()));
        out.printf(Locale.ROOT, "file size:      %s%n", Sizes.human(info.fileSize()));
      }
      out.flush();
      return ExitCodes.OK;
    }
  }
}
