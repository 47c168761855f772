package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.LockManager;
import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule unlock}: removes stale repository locks. */
@Command(
    name = "unlock",
    mixinStandardHelpOptions = true,
    description = {
      "Remove stale repository locks: those not refreshed for 30 minutes, those of "
          + "processes that no longer run on this host, and unreadable ones. With --remove-all, "
          + "remove every lock: only when you are sure no granule process uses the repository (a "
          + "running operation whose lock is removed stops at its next write)."
    })
final class UnlockCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(names = "--remove-all", description = "Remove every lock, stale or not.")
  boolean removeAll;

  @Override
  public Integer call() {
    PrintWriter out = context().out();
    try (Repository r = repo.open(context())) {
      List<LockManager.Status> removed = r.locks().remove(removeAll);
      for (LockManager.Status s : removed) {
        out.printf(Locale.ROOT, "removed %s%n", Printable.text(s.describe()));
      }
      List<LockManager.Status> left = r.locks().list();
      if (removed.isEmpty()) {
        out.println(removeAll ? "no locks" : "no stale locks");
      }
      for (LockManager.Status s : left) {
        out.printf(Locale.ROOT, "still held: %s%n", Printable.text(s.describe()));
      }
    }
    out.flush();
    return ExitCodes.OK;
  }
}
