package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.maintenance.Repairer;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule repair}: salvages what damaged packs still hold and drops the rest. */
@Command(
    name = "repair",
    mixinStandardHelpOptions = true,
    description = {
      "Repair damaged packs: read every pack (as verify --read-data does), write the chunks of"
          + " damaged ones that still read (decrypt, decompress, hash to their ids) into new"
          + " packs, and take the damaged packs out of the index, then out of the repository, so"
          + " that the next backups store the lost chunks anew instead of reusing them. Names the"
          + " snapshots that use lost chunks; exit code 5 while any does. Holds the repository's"
          + " exclusive lock. A crash or failure at any point leaves a valid repository; run"
          + " repair again to finish."
    })
public final class RepairCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(
      names = "--dry-run",
      description = "Read everything and report what repair would do; change nothing.")
  boolean dryRun;

  /** The operation a dry run's lock names. */
  public static final String DRY_RUN = "repair --dry-run";

  @Option(
      names = "--pack",
      paramLabel = "NAME",
      description =
          "Read only this pack's data (repeatable; data/NAME as verify prints it, or NAME): the"
              + " packs verify named, instead of every pack. Missing packs are repaired either"
              + " way.")
  java.util.List<String> packs = new java.util.ArrayList<>();

  @Option(names = "--json", description = "Print the report as JSON.")
  boolean json;

  @Option(names = "--no-progress", description = "Do not show progress.")
  boolean noProgress;

  @Override
  public Integer call() throws IOException {
    CliContext ctx = context();
    ProgressBar bar =
        json || noProgress
            ? null
            : new ProgressBar(ctx.err(), ProgressBar.isTerminal(), Duration.ofSeconds(10));
    java.util.Set<String> named;
    try {
      named = Repository.packNames(new java.util.LinkedHashSet<>(packs));
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, "--pack " + e.getMessage(), e);
    }
    Repository.RepairResult result;
    // A dry run changes nothing: a shared lock, as verify takes (backups go on; a prune waits),
    // and on a medium no lock can be written (a read-only mount), none (audit K6).
    try (Repository r =
        repo.open(
            ctx, dryRun ? LockKind.SHARED : LockKind.EXCLUSIVE, dryRun ? DRY_RUN : "repair")) {
      try {
        result =
            r.repair(
                dryRun,
                named,
                (phase, done, total) -> {
                  if (bar != null) {
                    bar.updateCount("repair: " + phase, done, total, "items", "");
                  }
                });
      } finally {
        if (bar != null) {
          bar.finish();
        }
      }
    }
    PrintWriter out = ctx.out();
    if (json) {
      out.println(Json.MAPPER.writeValueAsString(json(result)));
    } else {
      print(out, result);
    }
    out.flush();
    if (damaged(result)) {
      java.util.Optional<String> changed = repo.changedWhileUnlocked();
      if (changed.isPresent()) {
        ctx.err().println("granule: " + Cli.unlockedDamage(changed.get()));
        ctx.err().flush();
        return ExitCodes.LOCKED;
      }
      return ExitCodes.DAMAGED;
    }
    return ExitCodes.OK;
  }

  /** {@code result} as {@code --json} prints it (and the REST API's repair job keeps it). */
  public static Map<String, Object> json(Repository.RepairResult result) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("report", result.repair());
    m.put("bytesRead", result.bytesRead());
    m.put("otherDamage", result.otherDamage());
    m.put("otherSnapshots", result.otherSnapshots());
    m.put("putBack", result.putBack());
    m.put("keptIndexed", result.keptIndexed());
    return m;
  }

  /**
   * Whether {@code result} means exit code 5: snapshots (or indexes no snapshot read names) use
   * lost chunks, a damaged pack was left alone (not all its records could be located), damage
   * repair does not repair was found, or a dry run found damaged packs or metadata it would put
   * back from this host's cache.
   */
  public static boolean damaged(Repository.RepairResult result) {
    Repairer.Report p = result.repair();
    return !p.snapshots().isEmpty()
        || !p.unlistedIndexes().isEmpty()
        || !p.leftAlone().isEmpty()
        || !p.damagedCopies().isEmpty()
        || !result.otherDamage().isEmpty()
        || (p.dryRun()
            && (!p.damaged().isEmpty()
                || !result.putBack().isEmpty()
                || !result.keptIndexed().isEmpty()));
  }

  private static void print(PrintWriter out, Repository.RepairResult result) {
    Repairer.Report p = result.repair();
    String verb = p.dryRun() ? "would " : "";
    if (!result.putBack().isEmpty()) {
      out.printf(
          Locale.ROOT,
          "%sput back from this host's cache %s the storage had damaged or lost (%s): %s%n",
          verb,
          Sizes.count(result.putBack().size(), "metadata blob"),
          p.dryRun() ? "each cached copy reads whole" : "each read back whole from the storage",
          String.join(", ", result.putBack()));
    }
    for (String k : result.keptIndexed()) {
      out.printf(
          Locale.ROOT,
          "%sindex %s: copies this host kept of index blobs the repository no longer lists locate"
              + " those records of damaged packs, each read whole%n",
          verb,
          k);
    }
    // a pack repaired but kept (or deleted and still there) is in both lists: counted once
    java.util.Set<String> packs = new java.util.HashSet<>();
    p.damaged().forEach(d -> packs.add(d.pack()));
    java.util.Set<String> kept = new java.util.HashSet<>();
    for (String s : p.leftAlone()) {
      int colon = s.indexOf(':');
      kept.add(colon < 0 ? s : s.substring(0, colon));
    }
    packs.addAll(kept);
    out.printf(
        Locale.ROOT,
        "read %s (%s): %s damaged%s%n",
        Sizes.count(p.packsChecked(), "pack"),
        Sizes.human(result.bytesRead()),
        Sizes.count(packs.size(), "pack"),
        kept.isEmpty() ? "" : " (" + kept.size() + " kept)");
    for (Repairer.PackRepair d : p.damaged()) {
      out.printf(
          Locale.ROOT,
          "damaged: %s%s%n  %s: %d of its %d chunks %ssalvaged, %d held by other packs, %d lost%n",
          d.pack(),
          d.missing() ? " (missing)" : "",
          Printable.lines(d.problem() == null ? "damaged" : d.problem()),
          d.salvaged(),
          d.indexed(),
          verb.isEmpty() ? "" : "would be ",
          d.elsewhere(),
          d.lost());
    }
    for (String s : p.leftAlone()) {
      out.printf(
          Locale.ROOT,
          "damaged, kept: %s (restore what you need from the snapshots"
              + " verify does not name; run 'granule verify' to see which are damaged)%n",
          Printable.lines(s));
    }
    for (String s : p.damagedCopies()) {
      out.printf(
          Locale.ROOT,
          "damaged too: %s (a copy of a chunk of the damaged packs does not read there; the chunk"
              + " was %ssalvaged from them instead): run 'granule repair --pack %s'%n",
          s,
          verb.isEmpty() ? "" : "would be ",
          s);
    }
    for (String s : p.intactOnRereading()) {
      out.printf(
          Locale.ROOT,
          "pack %s read whole the second time: left alone (run 'granule verify --read-data'"
              + " again; a pack that reads differently each time means unreliable storage)%n",
          s);
    }
    if (p.chunksIndexed() > 0) {
      out.printf(
          Locale.ROOT,
          "%sindex %s of packs that no index blob listed (each record read; left by an interrupted"
              + " backup or repair, or their index blob was lost)%n",
          verb,
          Sizes.count(p.chunksIndexed(), "chunk"));
    }
    if (!p.damaged().isEmpty()) {
      out.printf(
          Locale.ROOT,
          "%ssalvage %s into %s, %sreplace %d index blobs, %sdelete %s; %s lost%n",
          verb,
          Sizes.count(p.chunksSalvaged(), "chunk"),
          p.dryRun() ? "new packs" : Sizes.count(p.packsWritten(), "new pack"),
          verb,
          p.indexesReplaced(),
          verb,
          Sizes.count(
              p.dryRun()
                  ? p.damaged().stream()
                      .filter(d -> !d.missing() && !kept.contains(d.pack()))
                      .count()
                  : p.packsDeleted(),
              "damaged pack"),
          Sizes.count(p.chunksLost(), "chunk"));
    }
    if (!p.snapshots().isEmpty()) {
      out.printf(
          Locale.ROOT, "snapshots that use lost chunks: %s%n", String.join(", ", p.snapshots()));
      out.println(
          "next: back up the disks and streams of those snapshots again (a chunk a source still"
              + " has is stored anew, and every snapshot that used it restores whole again), or"
              + " forget those snapshots ('granule forget ID'); 'granule verify' names what stays"
              + " damaged");
    }
    if (!p.unlistedIndexes().isEmpty()) {
      out.printf(
          Locale.ROOT,
          "indexes no snapshot read here names that use lost chunks: %s (a crashed backup's, which"
              + " prune deletes; or a snapshot's whose manifest did not read or was not listed:"
              + " run 'granule verify' once the storage is healthy)%n",
          String.join(", ", p.unlistedIndexes()));
    }
    List<String> other = result.otherDamage();
    if (!other.isEmpty()) {
      out.printf(
          Locale.ROOT, "damaged, not packs (repair leaves them): %s%n", String.join(", ", other));
      if (!result.otherSnapshots().isEmpty()) {
        out.printf(
            Locale.ROOT, "snapshots they affect: %s%n", String.join(", ", result.otherSnapshots()));
      }
      out.println(
          "a snapshot that uses chunks no index lists (lost with a damaged or missing pack) is"
              + " whole again once its disks are backed up again; 'granule verify' says what"
              + " each damaged file affects");
    }
    boolean leftOver =
        !p.leftAlone().isEmpty() || !p.damagedCopies().isEmpty() || !p.unlistedIndexes().isEmpty();
    if (p.damaged().isEmpty() && other.isEmpty() && !leftOver) {
      out.println(
          result.putBack().isEmpty() && result.keptIndexed().isEmpty()
              ? "no damaged packs found"
              : p.dryRun()
                  ? "no damaged packs found once those are put back"
                  : "repaired: no damaged packs found once those were put back");
    } else if (p.snapshots().isEmpty() && other.isEmpty() && !leftOver && !p.dryRun()) {
      out.println("repaired: no snapshot uses a lost chunk");
    }
  }
}
