package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule snapshots}: lists snapshots, oldest first. */
@Command(
    name = "snapshots",
    mixinStandardHelpOptions = true,
    description = {
      "List the snapshots (recovery points) in the repository, oldest first: size of their"
          + " disks and streams, and ADDED, the stored (compressed) bytes of the chunks the"
          + " backup that made it added to the repository."
    })
final class SnapshotsCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Mixin SnapshotFilterOption filter;

  @Option(
      names = "--last",
      paramLabel = "N",
      description = "Only the N latest (of those the filters pass).")
  Integer last;

  @Option(names = "--json", description = "Print JSON (the full manifests).")
  boolean json;

  @Override
  public Integer call() throws IOException {
    List<Manifest> snaps;
    if (last != null && last < 1) {
      throw new CommandException(ExitCodes.USAGE, "--last must be 1 or more, not " + last);
    }
    try (Repository r = repo.open(context())) {
      snaps = r.snapshots().stream().filter(filter.filter()::matches).toList();
    }
    if (last != null && snaps.size() > last) {
      snaps = snaps.subList(snaps.size() - last, snaps.size());
    }
    PrintWriter out = context().out();
    if (json) {
      out.println(Json.MAPPER.writeValueAsString(snaps));
    } else if (snaps.isEmpty()) {
      out.println(
          filter.filter().isAny() ? "no snapshots" : "no snapshots " + filter.filter().describe());
    } else {
      String fmt = "%-12s  %-20s  %-16s  %10s  %10s  %-24s  %-24s  %s%n";
      out.printf(Locale.ROOT, fmt, "ID", "TIME", "HOST", "SIZE", "ADDED", "DISKS", "APPS", "TAGS");
      for (Manifest m : snaps) {
        long size =
            m.disks().stream().mapToLong(Manifest.DiskEntry::size).sum()
                + m.streams().stream().mapToLong(Manifest.StreamEntry::size).sum();
        long added =
            m.disks().stream().mapToLong(Manifest.DiskEntry::bytesStored).sum()
                + m.streams().stream().mapToLong(Manifest.StreamEntry::bytesStored).sum();
        out.printf(
            Locale.ROOT,
            fmt,
            m.id().substring(0, 12),
            Printable.text(m.time().length() > 19 ? m.time().substring(0, 19) + "Z" : m.time()),
            Printable.text(m.host()),
            Sizes.human(size),
            Sizes.human(added),
            java.util.stream.Stream.concat(
                    m.disks().stream().map(d -> Printable.text(d.name())),
                    m.streams().stream().map(st -> Printable.text(st.name()) + " (stream)"))
                .collect(Collectors.joining(",")),
            m.applications().isEmpty()
                ? "-"
                : Printable.text(
                    String.join(",", new java.util.TreeSet<>(m.applications().keySet()))),
            Printable.text(String.join(",", m.tags())));
      }
    }
    out.flush();
    return ExitCodes.OK;
  }
}
