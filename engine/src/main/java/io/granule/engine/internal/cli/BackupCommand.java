package io.granule.engine.internal.cli;

import io.granule.engine.internal.app.AppUrls;
import io.granule.engine.internal.app.StoredApplication;
import io.granule.engine.internal.image.FsFreeze;
import io.granule.engine.internal.ops.BackupOperation;
import io.granule.engine.internal.ops.BackupOperation.AppSpec;
import io.granule.engine.internal.ops.BackupOperation.ConsistencySpec;
import io.granule.engine.internal.ops.BackupOperation.DiskSpec;
import io.granule.engine.internal.ops.BackupOperation.StreamSpec;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.backup.BackupProgress;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
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
      "Back up disks (image files or block devices) and streams into a new snapshot.",
      "Each disk is cut into fixed-size chunks; only chunks the repository lacks are",
      "compressed and stored. Unallocated ranges of an image are neither read nor stored."
    })
final class BackupCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(
      names = "--stream",
      paramLabel = "NAME=FILE",
      description =
          "A stream (database dump, log, archive) to back up with content-defined chunks; FILE"
              + " may be - for standard input. Repeatable.")
  List<String> streams = new ArrayList<>();

  @Option(
      names = "--disk",
      paramLabel = "[NAME=]FILE",
      description =
          "A disk image or block device; repeat for several disks. The disk is named after the"
              + " file (without its directory) unless NAME= is given.")
  List<String> disks = new ArrayList<>();

  @Option(
      names = "--format",
      paramLabel = "NAME",
      description =
          "Image format of every --disk, skipping detection (raw, qcow2, …); a block device is"
              + " read as raw without it.")
  String format;

  @Option(
      names = "--freeze",
      paramLabel = "MOUNT",
      description =
          "Freeze this mounted filesystem (fsfreeze) while the disks are read, so the snapshot is"
              + " consistent; thawed right after, on every path. Repeatable. Never '/'.")
  List<Path> freeze = new ArrayList<>();

  @Option(
      names = "--freeze-timeout",
      paramLabel = "DURATION",
      defaultValue = "120",
      converter = DurationConverter.class,
      description =
          "Longest a filesystem may stay frozen (writers to it wait meanwhile), e.g. 90 (seconds),"
              + " 30s, 2m; past it the filesystem is thawed and the backup fails (default:"
              + " ${DEFAULT-VALUE} s).")
  Duration freezeTimeout;

  @Option(
      names = "--app",
      paramLabel = "URL",
      description =
          "An application to quiesce for the snapshot and catalog, e.g."
              + " postgres://backup@db1:5432/shop or mysql://root@127.0.0.1:3306/. Order of a"
              + " backup: quiesce apps, freeze, read, thaw, release apps, store, catalog; every"
              + " app is released on every path. Passwords come from the product's usual place"
              + " (PGPASSWORD, ~/.pgpass, MYSQL_PWD), never from the command line. Repeatable.")
  List<String> apps = new ArrayList<>();

  @Option(
      names = "--app-max-hold",
      paramLabel = "SECONDS",
      defaultValue = "600",
      description =
          "Longest an application may stay quiesced (MariaDB blocks commits meanwhile); past it"
              + " the application is released and the backup fails (default: ${DEFAULT-VALUE}).")
  long appMaxHold;

  @Option(
      names = "--cbt",
      description =
          "Changed-block tracking with qcow2 persistent dirty bitmaps: read only what changed"
              + " since the previous snapshot of each disk from this host, and leave a new bitmap"
              + " (granule-…) in the image for the next backup. Modifies the image's bitmap"
              + " metadata (with qemu-img); refused for an image a running VM holds. A disk"
              + " without a trustworthy bitmap is read in full, and the output says why.")
  boolean cbt;

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
    if (disks.isEmpty() && streams.isEmpty()) {
      throw new CommandException(
          ExitCodes.USAGE, "nothing to back up: give --disk [NAME=]FILE or --stream NAME=FILE");
    }
    List<DiskSpec> specs = new ArrayList<>();
    List<StreamSpec> streamSpecs = new ArrayList<>();
    List<URI> appUrls = new ArrayList<>();
    try {
      for (String a : apps) {
        appUrls.add(AppUrls.parse(a));
      }
      for (String d : disks) {
        specs.add(DiskSpec.parse(d, format));
      }
      for (String st : streams) {
        streamSpecs.add(StreamSpec.parse(st));
      }
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    }
    if (freezeTimeout.isZero()) {
      throw new CommandException(
          ExitCodes.USAGE, "--freeze-timeout must be longer than 0 (e.g. 120, 30s, 2m)");
    }
    if (freezeTimeout.compareTo(BackupOperation.MAX_HOLD) > 0
        || appMaxHold > BackupOperation.MAX_HOLD.toSeconds()) {
      // past this a limit means nothing (and a huge one overflowed the watchdog's timer)
      throw new CommandException(
          ExitCodes.USAGE, "--freeze-timeout and --app-max-hold are at most a day (86400 s)");
    }
    ProgressBar bar =
        noProgress || json
            ? null
            : new ProgressBar(ctx.err(), ProgressBar.isTerminal(), Duration.ofSeconds(10));
    BackupResult result;
    BackupOperation op =
        new BackupOperation(ctx.formats(), ctx.snapshotProviders(), ctx.applications())
            .withChangeTracking(cbt)
            .withReadLocks(DiskRestore::lockForReading);
    try (Repository r = repo.open(context(), LockKind.SHARED, "backup")) {
      result =
          op.run(
              r,
              specs,
              streamSpecs,
              freeze.isEmpty() ? null : new ConsistencySpec(FsFreeze.NAME, freeze, freezeTimeout),
              appUrls.isEmpty() ? null : new AppSpec(appUrls, Duration.ofSeconds(appMaxHold)),
              host,
              tags,
              p -> {
                if (bar != null) {
                  bar.update(
                      "backup " + p.disk(), p.bytesRead(), p.bytesTotal(), detail(p), p.rate());
                }
              });
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    } finally {
      if (bar != null) {
        bar.finish();
      }
    }
    print(ctx.out(), result, op.notes());
    return ExitCodes.OK;
  }

  private static String detail(BackupProgress p) {
    return "new " + Sizes.human(p.bytesNew());
  }

  private void print(PrintWriter out, BackupResult result, List<String> notes) throws IOException {
    Manifest m = result.manifest();
    BackupProgress p = result.progress();
    if (json) {
      Map<String, Object> o = new LinkedHashMap<>();
      o.put("snapshot", m);
      o.put("bytesRead", p.bytesRead());
      o.put("bytesNew", p.bytesNew());
      o.put("bytesDeduplicated", p.bytesDeduplicated());
      o.put("bytesZero", p.bytesZero());
      o.put("bytesUnchanged", p.bytesUnchanged());
      o.put("notes", notes);
      o.put("seconds", p.elapsed().toMillis() / 1000.0);
      o.put("packsWritten", result.packsWritten());
      out.println(Json.MAPPER.writeValueAsString(o));
    } else {
      out.printf(Locale.ROOT, "snapshot %s saved%n", m.id());
      for (Manifest.DiskEntry d : m.disks()) {
        out.printf(
            Locale.ROOT,
            "  disk %-16s %10s  %s, new %s (stored %s)%s%n",
            Printable.text(d.name()),
            Sizes.human(d.size()),
            d.format(),
            Sizes.human(d.bytesNew()),
            Sizes.human(d.bytesStored()),
            d.changedSince() == null
                ? ""
                : ", unchanged "
                    + Sizes.human(d.bytesUnchanged())
                    + " since "
                    + d.changedSince().substring(0, 12)
                    + " (not read)");
      }
      List<StoredApplication> apps = StoredApplication.of(m);
      for (Manifest.StreamEntry st : m.streams()) {
        if (apps.stream().anyMatch(a -> st.name().startsWith(a.streamPrefix()))) {
          continue;
        }
        out.printf(
            Locale.ROOT,
            "  stream %-14s %10s%n",
            Printable.text(st.name()),
            Sizes.human(st.size()));
      }
      for (StoredApplication a : apps) {
        long captured =
            m.streams().stream()
                .filter(st -> st.name().startsWith(a.streamPrefix()))
                .mapToLong(Manifest.StreamEntry::size)
                .sum();
        out.printf(
            Locale.ROOT,
            "  app  %-16s %s %s, %s-consistent, %d objects cataloged, %s captured%s%n",
            a.key(),
            a.record().product(),
            a.record().version(),
            a.record().consistency(),
            a.objects(),
            Sizes.human(captured),
            a.seconds().isEmpty()
                ? ""
                : "; "
                    + String.join(
                        ", ",
                        a.seconds().entrySet().stream()
                            .map(
                                e ->
                                    String.format(
                                        Locale.ROOT, "%s %.2f s", e.getKey(), e.getValue()))
                            .toList()));
      }
      for (String n : notes) {
        out.println("  note: " + n);
      }
      double secs = Math.max(0.001, p.elapsed().toNanos() / 1e9);
      out.printf(
          Locale.ROOT,
          "read %s: stored %s new (compressed), deduplicated %s, zero %s; %.1f s (%s/s)%n",
          Sizes.human(p.bytesRead()),
          Sizes.human(p.bytesNew()),
          Sizes.human(p.bytesDeduplicated()),
          Sizes.human(p.bytesZero()),
          secs,
          Sizes.human((long) (p.bytesRead() / secs)));
    }
    out.flush();
  }
}
