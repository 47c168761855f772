package io.granule.engine.internal.cli;

import io.granule.engine.internal.app.Catalogs;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.CatalogEntry;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code granule catalog}: the application objects (databases, tables, ...) of snapshots. */
@Command(
    name = "catalog",
    mixinStandardHelpOptions = true,
    description = {
      "List the application objects (databases, schemas, tables, indexes, mailboxes, ...) "
          + "that plugins cataloged in a snapshot taken with --app, or with --find search every "
          + "snapshot for objects whose id or name contains TEXT (case-insensitive): which "
          + "recovery points hold this table, and how large was it in each. Catalogs are stored "
          + "in the repository and cached locally, so a search reads each snapshot's catalog from "
          + "the repository once."
    })
final class CatalogCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Mixin SnapshotFilterOption filter;

  @Parameters(
      arity = "0..1",
      paramLabel = "SNAP",
      description = "The snapshot (id, unique prefix or 'latest'); all with --find.")
  String snap;

  @Option(names = "--find", paramLabel = "TEXT", description = "Search every snapshot.")
  String find;

  @Option(
      names = "--kind",
      paramLabel = "KIND",
      description = "Only objects of this kind (database, schema, table, index, ...).")
  String kind;

  @Option(names = "--json", description = "Print JSON.")
  boolean json;

  @Override
  public Integer call() throws IOException {
    if (snap == null && find == null) {
      throw new CommandException(
          ExitCodes.USAGE, "name a snapshot (granule catalog SNAP) or search (--find TEXT)");
    }
    CliContext ctx = context();
    List<Catalogs.Hit> rows;
    int snapshotsWithCatalog = 0;
    try (Repository r = repo.open(ctx, LockKind.SHARED, "catalog")) {
      Path cache = Catalogs.cacheDir(RepoOption.metadataCache(ctx), r);
      List<Manifest> snaps;
      if (snap != null) {
        snaps = List.of(r.resolve(snap, filter.filter(), null));
      } else {
        List<Manifest> all = r.snapshots();
        Set<String> live = new HashSet<>();
        all.forEach(m -> live.add(m.id())); // every snapshot's, not only those the filter passes
        Catalogs.forgetOthers(cache, live);
        snaps = all.stream().filter(filter.filter()::matches).toList();
      }
      for (Manifest m : snaps) {
        if (!m.applications().isEmpty()) {
          snapshotsWithCatalog++;
        }
      }
      rows = Catalogs.search(r, snaps, find, kind, cache);
    }
    PrintWriter out = ctx.out();
    if (json) {
      List<Map<String, Object>> o = new ArrayList<>();
      for (Catalogs.Hit row : rows) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("snapshot", row.snapshot());
        m.put("time", row.time());
        m.put("host", row.host());
        m.put("object", row.object());
        m.put("kind", row.entry().kind());
        m.put("name", row.entry().name());
        m.put("parent", row.entry().parent());
        m.put("size", row.entry().size());
        m.put("rows", row.entry().rows());
        m.put("files", row.entry().files());
        m.put("attributes", row.entry().attributes());
        o.add(m);
      }
      out.println(Json.MAPPER.writeValueAsString(o));
    } else if (rows.isEmpty()) {
      if (snapshotsWithCatalog == 0) {
        out.println(
            snap != null
                ? "snapshot has no catalog: it was taken without --app (its databases can still"
                    + " be restored from a crash-consistent copy)"
                : "no snapshot has a catalog: back up with --app to catalog applications");
      } else {
        out.println(
            find != null ? "no object matches '" + Printable.text(find) + "'" : "no objects");
      }
    } else {
      for (Catalogs.Hit row : rows) {
        CatalogEntry e = row.entry();
        String prefix =
            snap == null
                ? String.format(
                    Locale.ROOT,
                    "%-12s  %-20s  ",
                    row.snapshot().substring(0, 12),
                    Printable.text(
                        row.time().length() > 19 ? row.time().substring(0, 19) + "Z" : row.time()))
                : "";
        out.printf(
            Locale.ROOT,
            "%s%-48s  %-17s  %10s  %s%n",
            prefix,
            Printable.text(row.object()),
            Printable.text(e.kind()),
            e.size() < 0 ? "-" : Sizes.human(e.size()),
            e.rows() < 0 ? "" : "~" + e.rows() + " rows");
      }
    }
    out.flush();
    return ExitCodes.OK;
  }
}
