package io.granule.engine.internal.cli;

import io.granule.engine.internal.image.ImageInspector;
import io.granule.engine.internal.image.LeasedDiskImage;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.backup.BackupProgress;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule backup}: backs up disks into a new snapshot. */
@Command(
    name = "backup",
    mixinStandardHelpOptions = true,
    description = {
      "Back up one or more disks (image files or block devices) into a new snapshot.",
      "Each disk is cut into fixed-size chunks; only chunks the repository lacks are",
      "compressed and stored. Unallocated ranges of an image are neither read nor stored."
    })
final class BackupCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(
      names = "--disk",
      required = true,
      paramLabel = "[NAME=]FILE",
      description =
          "A disk image or block device; repeat for several disks. The disk is named after the"
              + " file (without its directory) unless NAME= is given.")
  List<String> disks;

  @Option(
      names = "--format",
      paramLabel = "NAME",
      description = "Image format of every --disk, skipping detection (raw, qcow2, …).")
  String format;

  @Option(names = "--host", paramLabel = "HOST", description = "Host name to record.")
  String host;

  @Option(names = "--tag", paramLabel = "TAG", description = "Tag to record; repeatable.")
  List<String> tags = new ArrayList<>();

  @Option(names = "--json", description = "Print the result as JSON.")
  boolean json;

  @Option(names = "--no-progress", description = "Do not show progress.")
  boolean noProgress;

  @Override
  public Integer call() throws IOException {
    CliContext ctx = context();
    Map<String, Path> named = parseDisks();
    ImageInspector inspector = new ImageInspector(ctx.formats());
    List<LeasedDiskImage> opened = new ArrayList<>();
    try (Repository r = repo.open()) {
      List<NamedDisk> nd = new ArrayList<>();
      for (Map.Entry<String, Path> e : named.entrySet()) {
        LeasedDiskImage img = inspector.open(e.getValue(), format);
        opened.add(img);
        nd.add(new NamedDisk(e.getKey(), img));
      }
      ProgressBar bar =
          noProgress || json
              ? null
              : new ProgressBar(ctx.err(), ProgressBar.isTerminal(), Duration.ofSeconds(10));
      BackupRequest req = new BackupRequest(nd, host == null ? hostName() : host, tags, null);
      BackupResult result =
          r.backup(
              req,
              p -> {
                if (bar != null) {
                  bar.update(
                      "backup " + p.disk(), p.bytesRead(), p.bytesTotal(), detail(p), p.rate());
                }
              });
      if (bar != null) {
        bar.finish();
      }
      print(ctx.out(), result);
    } finally {
      for (LeasedDiskImage img : opened) {
        img.close();
      }
    }
    return ExitCodes.OK;
  }

  private static String detail(BackupProgress p) {
    return "new " + Sizes.human(p.bytesNew());
  }

  private void print(PrintWriter out, BackupResult result) throws IOException {
    Manifest m = result.manifest();
    BackupProgress p = result.progress();
    if (json) {
      Map<String, Object> o = new LinkedHashMap<>();
      o.put("snapshot", m);
      o.put("bytesRead", p.bytesRead());
      o.put("bytesNew", p.bytesNew());
      o.put("bytesDeduplicated", p.bytesDeduplicated());
      o.put("bytesZero", p.bytesZero());
      o.put("seconds", p.elapsed().toMillis() / 1000.0);
      o.put("packsWritten", result.packsWritten());
      out.println(Json.MAPPER.writeValueAsString(o));
    } else {
      out.printf(Locale.ROOT, "snapshot %s saved%n", m.id());
      for (Manifest.DiskEntry d : m.disks()) {
        out.printf(
            Locale.ROOT,
            "  disk %-16s %10s  %s, new %s%n",
            d.name(),
            Sizes.human(d.size()),
            d.format(),
            Sizes.human(d.bytesNew()));
      }
      double secs = Math.max(0.001, p.elapsed().toNanos() / 1e9);
      out.printf(
          Locale.ROOT,
          "read %s, new %s, deduplicated %s, zero %s in %.1f s (%s/s)%n",
          Sizes.human(p.bytesRead()),
          Sizes.human(p.bytesNew()),
          Sizes.human(p.bytesDeduplicated()),
          Sizes.human(p.bytesZero()),
          secs,
          Sizes.human((long) (p.bytesRead() / secs)));
    }
    out.flush();
  }

  private Map<String, Path> parseDisks() {
    Map<String, Path> out = new LinkedHashMap<>();
    for (String d : disks) {
      int eq = d.indexOf('=');
      String name;
      Path path;
      if (eq > 0) {
        name = d.substring(0, eq);
        path = Path.of(d.substring(eq + 1));
      } else {
        path = Path.of(d);
        Path fn = path.getFileName();
        name = fn == null ? d : fn.toString();
      }
      if (name.isEmpty() || name.contains("/") || name.contains(":")) {
        throw new CommandException(
            ExitCodes.USAGE, "invalid disk name '" + name + "': no '/' or ':' (use NAME=FILE)");
      }
      if (out.put(name, path) != null) {
        throw new CommandException(
            ExitCodes.USAGE, "two disks are named '" + name + "': name them apart with NAME=FILE");
      }
    }
    return out;
  }

  private static String hostName() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (IOException e) {
      return "localhost";
    }
  }
}
