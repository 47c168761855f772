package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.Lock;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.maintenance.ForgetPolicy;
import io.granule.engine.internal.repo.maintenance.Pruner;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code granule forget}: removes snapshots by policy (or by id). */
@Command(
    name = "forget",
    mixinStandardHelpOptions = true,
    description = {
      "Remove snapshots (their manifests only: run prune, or give --prune, to free their "
          + "data). Either name snapshots (ids or unique prefixes), or give keep rules: snapshots "
          + "are grouped by host and the set of their disk and stream names; in each group the N "
          + "newest (--keep-last) and the newest of each of the last N hours, days, ISO weeks, "
          + "months and years that have snapshots are kept (local time; TZ=UTC for UTC); a "
          + "snapshot kept by any rule stays, the rest of the group is removed. Snapshots outside "
          + "--host/--tag are not touched: an id given with them must be one of theirs (exit code "
          + "4 otherwise, before anything is removed). Without a keep rule or an id nothing is "
          + "removed (exit code 2)."
    })
final class ForgetCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Parameters(paramLabel = "ID", arity = "0..*", description = "Snapshots to remove.")
  List<String> ids = new ArrayList<>();

  @Option(names = "--keep-last", paramLabel = "N", description = "Keep the N newest snapshots.")
  int last;

  @Option(names = "--keep-hourly", paramLabel = "N", description = "Keep one per hour, N hours.")
  int hourly;

  @Option(names = "--keep-daily", paramLabel = "N", description = "Keep one per day, N days.")
  int daily;

  @Option(names = "--keep-weekly", paramLabel = "N", description = "Keep one per week, N weeks.")
  int weekly;

  @Option(names = "--keep-monthly", paramLabel = "N", description = "Keep one per month, N months.")
  int monthly;

  @Option(names = "--keep-yearly", paramLabel = "N", description = "Keep one per year, N years.")
  int yearly;

  @Option(names = "--host", paramLabel = "HOST", description = "Only snapshots of this host.")
  String host;

  @Option(
      names = "--tag",
      paramLabel = "TAG",
      description = "Only snapshots carrying this tag (repeat: all of them).")
  List<String> tags;

  @Option(names = "--dry-run", description = "Only show what would be removed.")
  boolean dryRun;

  @Option(names = "--prune", description = "Run prune afterwards (exclusive lock).")
  boolean prune;

  @Option(
      names = "--repack-below",
      paramLabel = "FRACTION",
      defaultValue = "0.5",
      description = "With --prune: see 'granule prune --help' (default: ${DEFAULT-VALUE}).")
  double repackBelow;

  @Option(
      names = "--keep-recent",
      paramLabel = "DURATION",
      defaultValue = "1h",
      converter = DurationConverter.class,
      description = "With --prune: see 'granule prune --help' (default: ${DEFAULT-VALUE}).")
  java.time.Duration keepRecent;

  @Option(names = "--json", description = "Print JSON.")
  boolean json;

  @Option(names = "--no-progress", description = "With --prune: do not show its progress.")
  boolean noProgress;

  @Override
  public Integer call() throws IOException {
    ForgetPolicy policy;
    Pruner.Options pruneOptions;
    try {
      policy = new ForgetPolicy(last, hourly, daily, weekly, monthly, yearly);
      pruneOptions = new Pruner.Options(false, repackBelow, keepRecent);
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    }
    if (policy.isEmpty() && ids.isEmpty()) {
      throw new CommandException(
          ExitCodes.USAGE,
          "no keep rule and no snapshot id given: refusing to remove every snapshot (give"
              + " --keep-last N, --keep-daily N, ... or the ids to remove)");
    }
    if (!policy.isEmpty() && !ids.isEmpty()) {
      throw new CommandException(
          ExitCodes.USAGE, "give either snapshot ids or keep rules, not both");
    }
    SnapshotFilter filter = new SnapshotFilter(host, tags);
    CliContext ctx = context();
    PrintWriter out = ctx.out();
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("dryRun", dryRun);
    int exit = ExitCodes.OK;
    try (Repository r = repo.open(ctx)) {
      Lock shared = r.lock(LockKind.SHARED, "forget", repo.retryLock);
      int removed;
      if (!ids.isEmpty()) {
        List<String> gone = r.forgetSnapshots(ids, filter, dryRun);
        removed = gone.size();
        result.put("removed", gone);
        if (!json) {
          for (String id : gone) {
            out.printf(Locale.ROOT, "%s %s%n", dryRun ? "would remove" : "removed", id);
          }
        }
      } else {
        List<ForgetPolicy.Group> groups = r.forget(policy, filter, ZoneId.systemDefault(), dryRun);
        removed = print(out, groups, result);
      }
      r.release(shared);
      if (!json) {
        out.printf(
            Locale.ROOT,
            "%s %s%s%n",
            dryRun ? "would remove" : "removed",
            Sizes.count(removed, "snapshot"),
            prune || dryRun ? "" : " (run 'granule prune' to free their data)");
      }
      if (prune && !dryRun) {
        r.lock(LockKind.EXCLUSIVE, "prune", repo.retryLock);
        Pruner.Report report = PruneCommand.run(ctx, r, pruneOptions, json || noProgress);
        exit = PruneCommand.exitCode(report);
        if (json) {
          result.put("prune", report);
        } else {
          PruneCommand.print(out, report, false);
        }
      }
    }
    if (json) {
      out.println(Json.MAPPER.writeValueAsString(result));
    }
    out.flush();
    return exit;
  }

  private int print(PrintWriter out, List<ForgetPolicy.Group> groups, Map<String, Object> result) {
    int removed = 0;
    List<Map<String, Object>> jsonGroups = new ArrayList<>();
    for (ForgetPolicy.Group g : groups) {
      List<Map<String, Object>> keep = new ArrayList<>();
      List<Map<String, Object>> remove = new ArrayList<>();
      for (ForgetPolicy.Decision d : g.decisions()) {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("id", d.snapshot().id());
        s.put("time", d.snapshot().time());
        if (d.keep()) {
          s.put("reasons", d.reasons());
          keep.add(s);
        } else {
          remove.add(s);
          removed++;
        }
      }
      Map<String, Object> jg = new LinkedHashMap<>();
      jg.put("host", g.host());
      jg.put("items", g.items());
      jg.put("keep", keep);
      jg.put("remove", remove);
      jsonGroups.add(jg);
      if (!json) {
        out.printf(
            Locale.ROOT,
            "host %s, items %s: keep %d, remove %d%n",
            Printable.text(g.host()),
            Printable.text(String.join(",", g.items())),
            keep.size(),
            remove.size());
        for (ForgetPolicy.Decision d : g.decisions()) {
          Manifest m = d.snapshot();
          out.printf(
              Locale.ROOT,
              "  %-6s  %s  %s  %s%n",
              d.keep() ? "keep" : "remove",
              m.id().substring(0, 12),
              Printable.text(m.time()),
              String.join(", ", d.reasons()));
        }
      }
    }
    result.put("groups", jsonGroups);
    return removed;
  }
}
