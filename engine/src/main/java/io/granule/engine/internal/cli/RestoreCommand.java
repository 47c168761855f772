package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
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
    subcommands = {RestoreCommand.Disk.class})
final class RestoreCommand extends ContextCommand {
  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    spec.commandLine().usage(context().err());
    return ExitCodes.USAGE;
  }

  /** {@code granule restore disk SNAP[:DISK] --to FILE}. */
  @Command(
      name = "disk",
      mixinStandardHelpOptions = true,
      description = {
        "Restore a whole disk to a file or block device. SNAP is a snapshot id, a unique",
        "prefix, or 'latest'; DISK may be left out when the snapshot has one disk.",
        "A new file is written as FILE.partial and renamed when complete and synced, so a",
        "failed restore never leaves a file that looks whole."
      })
  static final class Disk extends ContextCommand {
    @Mixin RepoOption repo;

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
        description = "Overwrite an existing file or block device (its old contents are lost).")
    boolean force;

    @Override
    public Integer call() throws IOException {
      int colon = what.indexOf(':');
      String snapRef = colon < 0 ? what : what.substring(0, colon);
      String diskName = colon < 0 ? null : what.substring(colon + 1);
      boolean exists = Files.exists(to, LinkOption.NOFOLLOW_LINKS);
      if (exists && !force) {
        throw new CommandException(
            ExitCodes.TARGET,
            "restore target '" + to + "' exists: add --force to overwrite it, or choose another");
      }
      if (exists && Files.isDirectory(to)) {
        throw new CommandException(
            ExitCodes.TARGET, "restore target '" + to + "' is a directory: name a file");
      }
      try (Repository r = repo.open(context())) {
        Manifest snap = r.resolve(snapRef);
        if (diskName == null) {
          if (snap.disks().size() != 1) {
            throw new CommandException(
                ExitCodes.USAGE,
                "snapshot "
                    + snap.id().substring(0, 12)
                    + " has "
                    + snap.disks().size()
                    + " disks: name one as SNAP:DISK ("
                    + String.join(
                        ", ", snap.disks().stream().map(Manifest.DiskEntry::name).toList())
                    + ")");
          }
          diskName = snap.disks().get(0).name();
        }
        Path target = exists ? to : to.resolveSibling(to.getFileName() + ".partial");
        long t0 = System.nanoTime();
        RestoreResult res;
        try {
          res = r.restoreDisk(snap, diskName, target);
          if (!exists) {
            Files.move(target, to, StandardCopyOption.ATOMIC_MOVE);
          }
        } catch (RuntimeException | IOException e) {
          if (!exists) {
            Files.deleteIfExists(target);
          }
          throw e;
        }
        double secs = Math.max(0.001, (System.nanoTime() - t0) / 1e9);
        PrintWriter out = context().out();
        out.printf(
            Locale.ROOT,
            "restored disk %s of snapshot %s to %s: %s in %.1f s (%s/s), %d chunks fetched%n",
            diskName,
            snap.id().substring(0, 12),
            to,
            Sizes.human(res.bytes()),
            secs,
            Sizes.human((long) (res.bytes() / secs)),
            res.chunksFetched());
        out.flush();
      }
      return ExitCodes.OK;
    }
  }
}
