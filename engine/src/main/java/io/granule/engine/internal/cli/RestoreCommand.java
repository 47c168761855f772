package io.granule.engine.internal.cli;

import io.granule.engine.internal.app.AppUrls;
import io.granule.engine.internal.app.Catalogs;
import io.granule.engine.internal.app.ObjectRestore;
import io.granule.engine.internal.ops.FileBrowser;
import io.granule.engine.internal.ops.FileRestorer;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.backup.RestoreListener;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ObjectRestoreReport;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code granule restore}: restores from a snapshot. */
@Command(
    name = "restore",
    mixinStandardHelpOptions = true,
    description = "Restore from a snapshot.",
    subcommands = {
      RestoreCommand.Disk.class,
      RestoreCommand.FileTree.class,
      RestoreCommand.Stream.class,
      RestoreCommand.Table.class
    })
final class RestoreCommand extends ContextCommand {
  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    spec.commandLine().usage(context().err());
    return ExitCodes.USAGE;
  }

  /** {@code granule restore disk SNAP[:DISK] --to FILE [--format FMT]}. */
  @Command(
      name = "disk",
      mixinStandardHelpOptions = true,
      description = {
        "Restore a whole disk to a file or block device. SNAP is a snapshot id, a unique",
        "prefix, or 'latest'; DISK may be left out when the snapshot has one disk.",
        "A new file is written as FILE.partial and renamed when complete and synced, so a",
        "failed restore never leaves a file that looks whole.",
        "The file is a raw image unless --format or its extension (.qcow2, .vmdk, .vhdx)",
        "names a VM image format; zero ranges stay unallocated. A block device is written raw."
      })
  static final class Disk extends ContextCommand {
    @Mixin RepoOption repo;

    @Mixin SnapshotFilterOption filter;

    @Parameters(paramLabel = "SNAP[:DISK]", description = "What to restore.")
    String what;

    @Option(
        names = "--to",
        required = true,
        paramLabel = "FILE",
        description = "Target file or block device.")
    Path to;

    @Option(
        names = "--force",
        description = {
          "Overwrite an existing file or block device (its old contents are lost). A file is"
              + " replaced once the restored copy is complete (keeping its owner and mode), so a"
              + " failed restore leaves it as it was; a block device is written in place."
        })
    boolean force;

    @Option(
        names = "--in-place",
        description = {
          "With --force, write an existing raw file in place (no room needed for a second copy;"
              + " a failed restore leaves it part restored)."
        })
    boolean inPlace;

    @Option(
        names = "--format",
        paramLabel = "FMT",
        description = {
          "Image format of FILE: raw, qcow2, vmdk (monolithicSparse) or vhdx (dynamic);"
              + " by default from FILE's extension, else raw."
        })
    String format;

    @Option(names = "--no-progress", description = "Do not show progress.")
    boolean noProgress;

    /**
     * Runs {@code restore}; a failure that may have left its target part restored (a block device,
     * a file written with --in-place) says so after its own message, keeping its exit code.
     */
    private static RestoreResult restoreNoting(
        DiskRestore restore,
        Repository r,
        Manifest snap,
        String diskName,
        RestoreListener progress,
        java.util.function.Consumer<String> info)
        throws IOException {
      try {
        return restore.run(r, snap, diskName, progress, info);
      } catch (IOException | RuntimeException e) {
        String note = restore.partRestoredNote();
        if (note == null) {
          throw e;
        }
        throw new CommandException(
            Cli.exitCode(e),
            (e.getMessage() == null ? e.toString() : e.getMessage()) + "\ngranule: " + note,
            e);
      }
    }

    @Override
    public Integer call() throws IOException {
      int colon = what.indexOf(':');
      String snapRef = colon < 0 ? what : what.substring(0, colon);
      DiskRestore restore = DiskRestore.prepare(context().formats(), to, force, format, inPlace);
      try (Repository r = repo.open(context(), LockKind.SHARED, "restore")) {
        String asked = colon < 0 ? null : what.substring(colon + 1);
        Manifest snap = r.resolve(snapRef, filter.filter(), asked);
        String diskName = DiskRestore.diskName(snap, asked);
        PrintWriter out = context().out();
        long t0 = System.nanoTime();
        ProgressBar bar =
            noProgress
                ? null
                : new ProgressBar(
                    context().err(), ProgressBar.isTerminal(), Duration.ofSeconds(10));
        String label = "restore " + diskName;
        RestoreListener progress =
            bar == null
                ? RestoreListener.NONE
                : (done, total) -> {
                  double s = (System.nanoTime() - t0) / 1e9;
                  bar.update(label, done, total, null, s > 0.5 ? done / s : 0);
                };
        RestoreResult res;
        try {
          res =
              restoreNoting(
                  restore,
                  r,
                  snap,
                  diskName,
                  progress,
                  line -> {
                    out.println(Printable.text(line));
                    out.flush();
                  });
        } finally {
          if (bar != null) {
            bar.finish();
          }
        }
        double secs = Math.max(0.001, (System.nanoTime() - t0) / 1e9);
        out.printf(
            Locale.ROOT,
            "restored disk %s of snapshot %s to %s (%s): %s in %.1f s (%s/s), %d chunks fetched%n",
            Printable.text(diskName),
            snap.id().substring(0, 12),
            Printable.text(String.valueOf(to)),
            restore.format(),
            Sizes.human(res.bytes()),
            secs,
            Sizes.human((long) (res.bytes() / secs)),
            res.chunksFetched());
        out.flush();
      }
      return ExitCodes.OK;
    }
  }

  /** {@code granule restore stream SNAP:NAME --to FILE}. */
  @Command(
      name = "stream",
      mixinStandardHelpOptions = true,
      description = {
        "Restore a stream (a dump, a log) to a file, or to standard output with --to -.",
        "A new file is written as FILE.partial and renamed when complete."
      })
  static final class Stream extends ContextCommand {
    @Mixin RepoOption repo;

    @Mixin SnapshotFilterOption filter;

    @Parameters(paramLabel = "SNAP:NAME", description = "What to restore.")
    String what;

    @Option(
        names = "--to",
        required = true,
        paramLabel = "FILE",
        description = "Target file, or - for standard output.")
    String to;

    @Option(names = "--force", description = "Overwrite an existing file.")
    boolean force;

    @Override
    public Integer call() throws IOException {
      int colon = what.indexOf(':');
      if (colon <= 0 || colon == what.length() - 1) {
        throw new CommandException(ExitCodes.USAGE, "name the stream as SNAP:NAME, e.g. latest:db");
      }
      String snapRef = what.substring(0, colon);
      String name = what.substring(colon + 1);
      try (Repository r = repo.open(context(), LockKind.SHARED, "restore")) {
        Manifest snap = r.resolve(snapRef, filter.filter(), name);
        if (to.equals("-")) {
          Path tmp = Files.createTempFile("granule-stream-", ".tmp");
          try {
            r.restoreStream(snap, name, tmp);
            Files.copy(tmp, System.out);
            System.out.flush();
          } finally {
            Files.deleteIfExists(tmp);
          }
          return ExitCodes.OK;
        }
        Path target = Path.of(to);
        boolean exists = Files.exists(target, LinkOption.NOFOLLOW_LINKS);
        if (exists && Files.isDirectory(target)) {
          throw new CommandException(
              ExitCodes.TARGET, "restore target '" + target + "' is a directory: name a file");
        }
        if (exists && !force) {
          throw new CommandException(
              ExitCodes.TARGET,
              "restore target '" + target + "' exists: add --force to overwrite it");
        }
        if (exists && !Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS)) {
          // the new file is renamed over it: a device node or a link would be replaced
          throw new CommandException(
              ExitCodes.TARGET,
              "restore target '"
                  + target
                  + "' is "
                  + (Files.isSymbolicLink(target)
                      ? "a symbolic link"
                      : java.util.Objects.requireNonNullElse(
                          io.granule.engine.internal.image.ImageInspector.describeType(target),
                          "not a regular file") // null: changed as it was looked at
                  )
                  + ": a stream is restored to a regular file (name one, or '-' for stdout)");
        }
        DiskRestore.requireOutsideRepository(r, target);
        long bytes;
        io.granule.engine.internal.ops.SafePath.Location at;
        try {
          at = io.granule.engine.internal.ops.SafePath.locate(target);
        } catch (java.nio.file.FileSystemException e) {
          throw new CommandException(ExitCodes.TARGET, e.getMessage(), e);
        }
        try (io.granule.engine.internal.ops.DirectoryHandle dir = at.dir();
            PartialFile held = PartialFile.take(target, dir)) {
          if (at.name() == null) {
            throw new CommandException(
                ExitCodes.TARGET,
                "the directory of restore target '" + target + "' is missing: create it");
          }
          // FILE.partial made afresh through the directory as resolved, and written through its
          // own descriptor: reopened by name, a file another user renamed over it was truncated
          try {
            // written through the descriptor that created it (its identity and locks are that
            // descriptor's): a file another user renamed over the name is never written
            Path out = held.create();
            try {
              bytes = r.restoreStream(snap, name, out);
            } catch (io.granule.engine.internal.repo.RestoreTargetException e) {
              // named as the user knows it, not as the descriptor it was written through
              String m = e.getMessage();
              throw m != null && m.contains(out.toString())
                  ? new io.granule.engine.internal.repo.RestoreTargetException(
                      m.replace(out.toString(), held.path().toString()), e.getCause())
                  : e;
            }
          } catch (RuntimeException | IOException e) {
            held.discard();
            throw e;
          }
          // over the target only if it existed and --force said so; one created meanwhile stays
          held.publish(exists);
        }
        PrintWriter out = context().out();
        out.printf(
            Locale.ROOT,
            "restored stream %s of snapshot %s to %s: %s%n",
            Printable.text(name),
            snap.id().substring(0, 12),
            Printable.text(String.valueOf(target)),
            Sizes.human(bytes));
        out.flush();
      }
      return ExitCodes.OK;
    }
  }

  /** {@code granule restore file SNAP[:DISK[/PART]] PATH --to DIR}. */
  @Command(
      name = "file",
      mixinStandardHelpOptions = true,
      description = {
        "Restore a file or a directory tree from inside a disk of a snapshot into DIR, "
            + "reading only the chunks that hold it. Mode, times, symlinks, hard links and sparse "
            + "files are kept, and the owner when run as root (set-user-ID and set-group-ID bits "
            + "only with --keep-set-id). Nothing outside DIR is ever written and nothing in DIR is "
            + "overwritten."
      })
  static final class FileTree extends ContextCommand {
    @Mixin RepoOption repo;

    @Mixin SnapshotFilterOption filter;

    @Parameters(index = "0", paramLabel = "SNAP[:DISK[/PART]]", description = "Where from.")
    String where;

    @Parameters(index = "1", paramLabel = "PATH", description = "File or directory to restore.")
    String path;

    @Option(names = "--to", required = true, paramLabel = "DIR", description = "Target directory.")
    Path to;

    @Option(
        names = "--keep-set-id",
        description =
            "As root, restore set-user-ID and set-group-ID bits too (cleared by default: a"
                + " set-user-ID program of uid 0 from a tenant's disk would make the tenant root)."
                + " Only for a disk whose every owner you trust, such as a bare-metal restore.")
    boolean keepSetId;

    @Override
    public Integer call() throws IOException {
      long t0 = System.nanoTime();
      try (Repository r = repo.open(context(), LockKind.SHARED, "restore");
          FileBrowser b = FileBrowser.open(r, where, filter.filter(), context().fileSystems())) {
        LsCommand.lookup(b, path);
        DiskRestore.requireOutsideRepository(r, to);
        FileRestorer.Result res =
            new FileRestorer(b.fileSystem(), to).keepSetId(keepSetId).restore(path);
        double secs = Math.max(0.001, (System.nanoTime() - t0) / 1e9);
        PrintWriter out = context().out();
        out.printf(
            Locale.ROOT,
            "restored %s from %s/%s of snapshot %s into %s: %d files, %d directories, %d symlinks,"
                + " %d hard links, %s in %.1f s; %d of %d chunks fetched (%.1f%%)%n",
            Printable.text(path),
            Printable.text(b.disk().disk().name()),
            Printable.text(b.volume().name()),
            b.snapshot().id().substring(0, 12),
            Printable.text(String.valueOf(to)),
            res.files(),
            res.directories(),
            res.symlinks(),
            res.hardLinks(),
            Sizes.human(res.bytes()),
            secs,
            b.chunksFetched(),
            b.chunksWithData(),
            b.chunksWithData() == 0 ? 0.0 : 100.0 * b.chunksFetched() / b.chunksWithData());
        if (res.setIdCleared() > 0) {
          out.printf(
              Locale.ROOT,
              "set-user-ID/set-group-ID bits not restored on %d file(s) (--keep-set-id restores"
                  + " them)%n",
              res.setIdCleared());
        }
        out.flush();
      }
      return ExitCodes.OK;
    }
  }

  /** {@code granule restore table SNAP PLUGIN:ID --to URL [--as NAME] [--replace]}. */
  @Command(
      name = "table",
      mixinStandardHelpOptions = true,
      description = {
        "Restore one table (or other application object) from a snapshot into a live server, "
            + "without restoring the disk: the plugin finds the data directory inside the backed-up "
            + "disk, extracts only what a staging server needs (fetching only those chunks), starts "
            + "a staging server of the same version on a free port, copies the table out and loads "
            + "it into the target. By default the table lands under a new name made from the "
            + "snapshot (PostgreSQL: schema granule_<id8>), so nothing live is touched; --replace "
            + "swaps it in for the live table in one transaction. Prints the rows restored and a "
            + "checksum."
      })
  static final class Table extends ContextCommand {
    @Mixin RepoOption repo;

    @Mixin SnapshotFilterOption filter;

    @Parameters(index = "0", paramLabel = "SNAP", description = "The snapshot.")
    String snap;

    @Parameters(
        index = "1",
        paramLabel = "PLUGIN:ID",
        description = "The object as 'granule catalog' lists it, e.g. postgres:shop/public.orders.")
    String object;

    @Option(
        names = "--to",
        required = true,
        paramLabel = "URL",
        description = "The live server and database, e.g. postgres://dba@db1:5432/shop.")
    String to;

    @Option(
        names = "--as",
        paramLabel = "NAME",
        description = "Name in the target (schema.table for PostgreSQL, db.table for MySQL).")
    String as;

    @Option(
        names = "--replace",
        description =
            "Replace the live table of the same name (in one transaction where possible).")
    boolean replace;

    @Option(
        names = "--instance",
        paramLabel = "KEY",
        description = "The instance, when the snapshot holds several of the plugin's.")
    String instance;

    @Option(
        names = "--pg-bin",
        paramLabel = "DIR",
        description = "PostgreSQL binaries for the staging server (default: found by version).")
    Path pgBin;

    @Option(
        names = "--mysql-bin",
        paramLabel = "DIR",
        description = "MariaDB/MySQL binaries for the staging server (default: found by version).")
    Path mysqlBin;

    @Option(
        names = "--option",
        paramLabel = "KEY=VALUE",
        description = "A plugin-specific option; repeatable.")
    Map<String, String> options = new LinkedHashMap<>();

    @Option(names = "--json", description = "Print the result as JSON.")
    boolean json;

    @Override
    public Integer call() throws IOException {
      CliContext ctx = context();
      URI target;
      try {
        target = AppUrls.parse(to);
      } catch (IllegalArgumentException e) {
        throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
      }
      Map<String, String> opts = new LinkedHashMap<>(options);
      if (pgBin != null) {
        opts.put("pg-bin", pgBin.toString());
      }
      if (mysqlBin != null) {
        opts.put("mysql-bin", mysqlBin.toString());
      }
      PrintWriter err = ctx.err();
      ObjectRestore.Result res;
      try (Repository r = repo.open(ctx, LockKind.SHARED, "restore table")) {
        Manifest m = r.resolve(snap, filter.filter(), null);
        long[] phaseStart = {System.nanoTime()};
        res =
            ObjectRestore.run(
                r,
                m,
                object,
                target,
                as,
                replace,
                opts,
                instance,
                ctx.applications(),
                ctx.fileSystems(),
                Catalogs.cacheDir(RepoOption.metadataCache(ctx), r),
                (phase, detail) -> {
                  if (!json) {
                    err.printf(
                        Locale.ROOT,
                        "%s%s%n",
                        phase,
                        detail == null || detail.isEmpty() ? "" : ": " + Printable.text(detail));
                    err.flush();
                  }
                });
      } catch (IllegalArgumentException e) {
        throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
      }
      PrintWriter out = ctx.out();
      ObjectRestoreReport rep = res.report();
      double pct = res.dataChunks() == 0 ? 0 : 100.0 * res.chunksFetched() / res.dataChunks();
      if (json) {
        Map<String, Object> o = res.summary();
        out.println(Json.MAPPER.writeValueAsString(o));
      } else {
        out.printf(
            Locale.ROOT,
            "restored %s from snapshot %s (%s-consistent) as %s: %d rows, checksum %s%n",
            Printable.text(object),
            Printable.text(snap),
            res.consistency(),
            Printable.text(String.valueOf(rep.restoredAs())),
            rep.rows(),
            rep.checksum());
        StringBuilder phases = new StringBuilder();
        rep.phases()
            .forEach(
                (k, v) ->
                    phases
                        .append(phases.length() == 0 ? "" : ", ")
                        .append(String.format(Locale.ROOT, "%s %.2f s", k, v.toNanos() / 1e9)));
        out.printf(
            Locale.ROOT,
            "  %.1f s (%s); fetched %s in %d of %d data chunks (%.1f%%) of %s of disk%n",
            res.elapsed().toNanos() / 1e9,
            phases,
            Sizes.human(res.bytesFetched()),
            res.chunksFetched(),
            res.dataChunks(),
            pct,
            Sizes.human(res.diskBytes()));
        for (String n : rep.notes()) {
          out.println("  note: " + Printable.text(n));
        }
      }
      out.flush();
      return ExitCodes.OK;
    }
  }
}
