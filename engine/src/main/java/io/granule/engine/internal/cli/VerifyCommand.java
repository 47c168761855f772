package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.backup.Damage;
import io.granule.engine.internal.repo.backup.DataSubset;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.lock.LockKind;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule verify}: checks the repository. */
@Command(
    name = "verify",
    mixinStandardHelpOptions = true,
    description = {
      "Check the repository: every snapshot's indexes reference chunks that exist, every "
          + "pack's trailer agrees with the index. With --read-data, also read every chunk and "
          + "check its checksum and hash; with --read-data-subset, those of some packs. Names each damaged file and the snapshots it affects; "
          + "exit code 5 when anything is damaged."
    })
final class VerifyCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(names = "--read-data", description = "Read and check every chunk (slow).")
  boolean readData;

  @Option(
      names = "--read-data-subset",
      paramLabel = "SUBSET",
      description = {
        "Read and check the chunks of some packs only: N/T, group N of T, the same packs each"
            + " time (1/7 … 7/7 over a week read every pack once); P%%, a random share of the"
            + " packs; or a size (10G), random packs up to that many bytes."
      })
  String readDataSubset;

  @Option(names = "--json", description = "Print the report as JSON.")
  boolean json;

  @Override
  public Integer call() throws IOException {
    CliContext ctx = context();
    DataSubset data;
    try {
      data = DataSubset.of(readData, readDataSubset, "--read-data", "--read-data-subset");
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    }
    ProgressBar bar =
        json ? null : new ProgressBar(ctx.err(), ProgressBar.isTerminal(), Duration.ofSeconds(10));
    VerifyReport report;
    try (Repository r = repo.open(context(), LockKind.SHARED, "verify")) {
      report =
          r.verify(
              data,
              (file, done, total) -> {
                if (bar != null) {
                  bar.updateCount("verify", done, total, "files", file);
                }
              });
    }
    if (bar != null) {
      bar.finish();
    }
    PrintWriter out = ctx.out();
    if (json) {
      out.println(Json.MAPPER.writeValueAsString(report));
    } else {
      out.printf(
          Locale.ROOT,
          "checked %s, %s, %s%s%n",
          Sizes.count(report.snapshots(), "snapshot"),
          Sizes.count(report.packs(), "pack"),
          Sizes.count(report.chunks(), "chunk"),
          report.dataRead()
              ? " (data read)"
              : report.dataSubset().equals("none")
                  ? ""
                  : String.format(
                      Locale.ROOT,
                      " (data read of %s, %s: subset %s)",
                      Sizes.count(report.dataPacks(), "pack"),
                      Sizes.human(report.dataBytes()),
                      report.dataSubset()));
      for (Damage d : report.damages()) {
        out.printf(Locale.ROOT, "damaged: %s%n", Printable.text(d.file()));
        for (String p : d.problems()) {
          out.printf(Locale.ROOT, "  %s%n", Printable.lines(p));
        }
        if (!d.snapshots().isEmpty()) {
          out.printf(Locale.ROOT, "  affects snapshots: %s%n", String.join(", ", d.snapshots()));
        }
      }
      if (report.damages().stream().anyMatch(d -> d.file().startsWith("data/"))) {
        // a pack that is there but damaged stays in the index: later backups of the same data
        // reuse its chunks, and their snapshots cannot be restored either (audit15 G F1)
        out.println(
            "to heal what damaged packs held: run 'granule repair' (it writes the chunks they still"
                + " hold into new packs, takes them out of the index and the repository, and names"
                + " the snapshots that use chunks lost with them), then back up the affected disks"
                + " again: a chunk a disk still has is stored anew, which makes every snapshot"
                + " that used it whole again. 'granule verify' then names what stays damaged");
      }
      out.println(
          report.ok()
              ? "no damage found"
              : "damage found; snapshots affected: "
                  + (report.affectedSnapshots().isEmpty()
                      ? "none"
                      : String.join(", ", report.affectedSnapshots())));
    }
    out.flush();
    if (!report.ok()) {
      java.util.Optional<String> changed = repo.changedWhileUnlocked();
      if (changed.isPresent()) {
        ctx.err().println("granule: " + Cli.unlockedDamage(changed.get()));
        ctx.err().flush();
        return ExitCodes.LOCKED;
      }
    }
    return report.ok() ? ExitCodes.OK : ExitCodes.DAMAGED;
  }
}
