package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.maintenance.Pruner;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule prune}: deletes data no snapshot references. */
@Command(
    name = "prune",
    mixinStandardHelpOptions = true,
    description = {
      "Delete data no snapshot references: packs with no live chunk are deleted, packs "
          + "whose live part is below --repack-below have their live chunks rewritten into new "
          + "packs first, and index blobs, fixed and dynamic indexes nothing references are "
          + "removed. Holds the repository's exclusive lock: backups and restores wait "
          + "(--retry-lock) or fail with exit code 9 meanwhile. A crash or failure at any point "
          + "leaves a valid repository; run prune again to finish."
    })
final class PruneCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(names = "--dry-run", description = "Only report what would be deleted and rewritten.")
  boolean dryRun;

  @Option(
      names = "--repack-below",
      paramLabel = "FRACTION",
      defaultValue = "0.5",
      description =
          "Rewrite packs whose live chunks fill less than FRACTION of them (0 never rewrites, 1"
              + " rewrites every pack with garbage); default: ${DEFAULT-VALUE}.")
  double repackBelow;

  @Option(
      names = "--keep-recent",
      paramLabel = "DURATION",
      defaultValue = "1h",
      converter = DurationConverter.class,
      description =
          "Delete and rewrite nothing written less than DURATION ago (packs, index blobs, fixed"
              + " and dynamic indexes): a backup whose lock went stale while its last uploads were"
              + " still on the way may yet save a snapshot that uses them. 0 turns it off (only"
              + " when no backup can be running); default: ${DEFAULT-VALUE}.")
  Duration keepRecent;

  @Option(names = "--json", description = "Print the report as JSON.")
  boolean json;

  @Option(names = "--no-progress", description = "Do not show progress.")
  boolean noProgress;

  @Override
  public Integer call() throws IOException {
    Pruner.Options options;
    try {
      options = new Pruner.Options(dryRun, repackBelow, keepRecent);
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    }
    CliContext ctx = context();
    Pruner.Report report;
    try (Repository r = repo.open(ctx, LockKind.EXCLUSIVE, "prune")) {
      report = run(ctx, r, options, json || noProgress);
      print(ctx.out(), report, json);
    }
    return exitCode(report);
  }

  /** 5 (damaged) if prune left damaged packs alone, else 0: it finished either way. */
  static int exitCode(Pruner.Report p) {
    return p.damagedPacks().isEmpty() ? ExitCodes.OK : ExitCodes.DAMAGED;
  }

  /** Runs prune on a repository locked exclusively, with a progress bar unless {@code quiet}. */
  static Pruner.Report run(CliContext ctx, Repository r, Pruner.Options options, boolean quiet) {
    ProgressBar bar =
        quiet ? null : new ProgressBar(ctx.err(), ProgressBar.isTerminal(), Duration.ofSeconds(10));
    try {
      return r.prune(
          options,
          (phase, done, total) -> {
            if (bar != null) {
              bar.updateCount("prune: " + phase, done, total, "items", "");
            }
          });
    } finally {
      if (bar != null) {
        bar.finish();
      }
    }
  }

  static void print(PrintWriter out, Pruner.Report p, boolean json) throws IOException {
    if (json) {
      java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
      m.put("report", p);
      m.put("bytesFreed", p.bytesFreed());
      out.println(Json.MAPPER.writeValueAsString(m));
      out.flush();
      return;
    }
    String verb = p.dryRun() ? "would " : "";
    out.printf(
        Locale.ROOT,
        "%s use %s; %s, %s (%d not in any index)%n",
        Sizes.count(p.snapshots(), "snapshot"),
        Sizes.count(p.liveChunks(), "chunk"),
        Sizes.count(p.packs(), "pack"),
        Sizes.human(p.packBytes()),
        p.orphanPacks());
    out.printf(
        Locale.ROOT,
        "%sdelete %s without live data, %srepack %s (%s live rewritten), keep %d%n",
        verb,
        Sizes.count(p.packsDeleted(), "pack"),
        verb,
        Sizes.count(p.packsRepacked(), "pack"),
        Sizes.human(p.bytesRepacked()),
        p.packsKept());
    out.printf(
        Locale.ROOT,
        "%sreplace %d index blobs, %sdelete %d fixed and %d dynamic indexes no snapshot uses%n",
        verb,
        p.indexesDeleted(),
        verb,
        p.fixedIndexesDeleted(),
        p.dynamicIndexesDeleted());
    if (p.leftoverBytesDeleted() > 0) {
      out.printf(
          Locale.ROOT,
          "deleted %s of temporary files interrupted writers left%n",
          Sizes.human(p.leftoverBytesDeleted()));
    }
    if (p.packsSpared() > 0 || p.itemIndexesSpared() > 0) {
      out.printf(
          Locale.ROOT,
          "%sspare %s (%s) and %d fixed or dynamic indexes written too recently to delete"
              + " (--keep-recent): a prune after that frees them%n",
          verb,
          Sizes.count(p.packsSpared(), "pack"),
          Sizes.human(p.bytesSpared()),
          p.itemIndexesSpared());
    }
    out.printf(
        Locale.ROOT,
        "%s %s in %.1f s%n",
        p.dryRun() ? "would free about" : "freed",
        Sizes.human(p.bytesFreed()),
        p.seconds());
    if (!p.damagedPacks().isEmpty()) {
      out.printf(
          Locale.ROOT,
          "left %s alone, found damaged while repacking (not rewritten, not deleted): %s;"
              + " run 'granule repair' to salvage what they hold and store the rest anew%n",
          Sizes.count(p.damagedPacks().size(), "pack"),
          String.join(", ", p.damagedPacks()));
    }
    out.flush();
  }
}
