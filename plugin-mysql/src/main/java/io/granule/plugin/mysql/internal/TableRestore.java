package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationPlugin.RestoreProgress;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.SnapshotView;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

/**
 * One single-table restore: locate the data directory in the snapshot, extract what a staging
 * server needs, start it (crash recovery brings the copy to the snapshot's point), dump the table's
 * rows, and load them into the target under the new name. Cleans up the staging server and files on
 * every path.
 *
 * <p>Options ({@link ObjectRestoreRequest#options}): {@code mysql-bin} (directory of the staging
 * server binaries), {@code staging-dir} (where staging copies go, default the temporary directory),
 * {@code staging-timeout} (seconds to wait for the staging server, default 600).
 */
final class TableRestore {
  private final ObjectRestoreRequest request;
  private final SnapshotView snapshot;
  private final ApplicationRecord record;

  /** How many times a staging server is started, each with more tablespaces extracted. */
  static final int MAX_STARTS = 8;

  private final RestoreProgress progress;
  private final String password;
  private final UnaryOperator<String> env;
  private final Map<String, Duration> phases = new LinkedHashMap<>();
  private final List<String> notes = new ArrayList<>();

  TableRestore(
      ObjectRestoreRequest request,
      SnapshotView snapshot,
      ApplicationRecord record,
      RestoreProgress progress,
      String password,
      UnaryOperator<String> env) {
    this.request = request;
    this.snapshot = snapshot;
    this.record = record;
    this.progress = progress == null ? (p, d) -> {} : progress;
    this.password = password;
    this.env = env;
  }

  @FunctionalInterface
  private interface Step<T> {
    T run() throws ApplicationException, IOException;
  }

  private <T> T phase(String name, String detail, Step<T> step)
      throws ApplicationException, IOException {
    progress.phase(name, detail);
    long start = System.nanoTime();
    try {
      return step.run();
    } finally {
      phases.merge(name, Duration.ofNanos(System.nanoTime() - start), Duration::plus);
    }
  }

  ObjectRestoreReport run() throws ApplicationException {
    TableName source = TableName.parse(request.objectId());
    MysqlUrl target = MysqlUrl.parse(request.target());
    String tag = snapshot.id().substring(0, Math.min(8, snapshot.id().length()));
    TableName dest = destination(source, request.as(), request.replace(), tag);
    Path parent =
        Path.of(
            request.options().getOrDefault("staging-dir", System.getProperty("java.io.tmpdir")));
    Duration timeout =
        Duration.ofSeconds(
            Long.parseLong(request.options().getOrDefault("staging-timeout", "600")));
    // Fail fast on the target (credentials, a name taken) before any heavy work.
    try (Connection c = Jdbc.connect(target.withDatabase(null), password, 10_000)) {
      if (!request.replace() && Schema.tableExists(c, dest)) {
        throw new ApplicationException(
            Reason.TARGET_EXISTS,
            "table "
                + dest
                + " already exists at "
                + target
                + ": choose another name (--as DB.TABLE) or replace it");
      }
    } catch (SQLException e) {
      throw Jdbc.translate(e, "unable to inspect the target " + target);
    }
    Path work;
    try {
      Files.createDirectories(parent);
      work = Files.createTempDirectory(parent, "granule-mysql-");
    } catch (IOException e) {
      throw new ApplicationException(
          Reason.FAILED, "unable to create a staging directory in " + parent, e);
    }
    StagingServer staging = null;
    try {
      Locator.Found found =
          phase("locate", "looking for the data directory", () -> Locator.locate(snapshot, record));
      if (found.searched()) {
        notes.add("data directory found by searching the snapshot at " + found.datadir());
      }
      Path datadir = work.resolve("data");
      Set<String> extra = new TreeSet<>();
      Locator.Binlog[] binlog = {Locator.binlog(found, record)};
      long bytes =
          phase(
              "extract",
              found.datadir().toString(),
              () -> extract(found, source, datadir, extra, binlog[0]));
      ServerVersion wanted = snapshotVersion(found, datadir);
      ServerVersion.Family family =
          wanted != null
              ? wanted.family()
              : found.family() != null ? found.family() : ServerVersion.Family.MARIADB;
      Binaries bin =
          Binaries.find(family, wanted, request.options().get("mysql-bin"), env.apply("PATH"));
      if (wanted == null) {
        notes.add("the snapshot does not tell the server version: staged with " + bin.version());
      }
      Map<String, String> settings = record == null ? Map.of() : record.attributes();
      for (int attempt = 1; ; attempt++) {
        try {
          long extracted = bytes;
          staging =
              phase(
                  "staging start",
                  bin.version() + ", " + extracted + " bytes extracted",
                  () ->
                      StagingServer.start(
                          datadir,
                          work,
                          bin,
                          settings,
                          timeout,
                          binlog[0] == null ? null : datadir.resolve(binlog[0].baseName())));
          break;
        } catch (StagingServer.StartException e) {
          // Crash recovery may need tablespaces of other tables (the redo log holds changes to
          // them, e.g. their creation): extract those too, on a fresh copy, and start again.
          Set<String> missing = new TreeSet<>(e.missing());
          missing.removeAll(extra);
          if (attempt >= MAX_STARTS || (missing.isEmpty() && binlog[0] == null)) {
            throw e;
          }
          if (missing.isEmpty()) {
            // The binary log files given did not do (e.g. its last checkpoint is in an older
            // file): recover without it, which rolls back undecided prepared transactions.
            notes.add(
                "staging could not recover with the binary log files "
                    + binlog[0].files()
                    + ": started without them");
            binlog[0] = null;
          }
          extra.addAll(missing);
          deleteTree(datadir);
          bytes =
              phase(
                  "extract",
                  missing.isEmpty()
                      ? "again, without the binary log"
                      : "tablespaces recovery needs: " + missing,
                  () -> extract(found, source, datadir, extra, binlog[0]));
        }
      }
      if (!extra.isEmpty()) {
        notes.add(
            "extracted "
                + extra.size()
                + " other tablespace(s) crash recovery needed: "
                + String.join(", ", extra));
      }
      StagingServer s = staging;
      if (s.rolledBackPreparedTransactions()) {
        notes.add(
            "rolled back transactions the snapshot holds as prepared: without the binary log"
                + " nothing tells whether they committed");
      }
      Loader loader =
          new Loader(
              s,
              source,
              dest,
              target,
              password,
              request.replace(),
              tag,
              !"dump".equals(request.options().getOrDefault("transport", "auto")));
      phase("dump", source.toString(), () -> loader.dump(work.resolve("rows.sql"), timeout));
      ObjectRestoreReport report = phase("load", dest + " at " + target, () -> loader.load());
      notes.addAll(loader.notes());
      return new ObjectRestoreReport(
          report.restoredAs(), report.rows(), report.checksum(), phases, notes);
    } catch (ApplicationException e) {
      throw e;
    } catch (IOException e) {
      throw new ApplicationException(
          Reason.FAILED, "unable to restore " + source + ": " + e.getMessage(), e);
    } finally {
      if (staging != null) {
        staging.close();
      }
      deleteTree(work);
    }
  }

  /**
   * Where the table goes: {@code --as}; else its own name when replacing; else a new database named
   * after the snapshot.
   */
  static TableName destination(TableName source, String as, boolean replace, String tag)
      throws ApplicationException {
    String suffix = "_granule_" + tag;
    String db = source.db();
    if (db.length() + suffix.length() > 64) {
      db = db.substring(0, 64 - suffix.length());
    }
    String snapshotDb = db + suffix;
    if (as != null && !as.isBlank()) {
      // DB.TABLE as given; a bare TABLE goes into the snapshot's database, like PostgreSQL's.
      return as.contains(".") || as.startsWith("`")
          ? TableName.parse(as)
          : new TableName(snapshotDb, as);
    }
    return replace ? source : new TableName(snapshotDb, source.table());
  }

  private long extract(
      Locator.Found found, TableName table, Path datadir, Set<String> extra, Locator.Binlog binlog)
      throws IOException, ApplicationException {
    Predicate<String> filter = ExtractFilter.forTable(table);
    Set<String> dirs = new HashSet<>();
    for (String f : extra) {
      int slash = f.indexOf('/');
      if (slash > 0) {
        dirs.add(f.substring(0, slash));
      }
    }
    long bytes =
        snapshot.extract(
            found.datadir().volume(),
            found.datadir().path(),
            datadir,
            filter.or(extra::contains).or(dirs::contains));
    int i = 0;
    for (Locator.Place home : found.innodbHomes()) {
      Path tmp = datadir.resolveSibling("innodb-" + i++);
      bytes += snapshot.extract(home.volume(), home.path(), tmp, ExtractFilter.innodbOnly());
      try (Stream<Path> files = Files.list(tmp)) {
        for (Path f : files.toList()) {
          Files.move(f, datadir.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
      }
    }
    if (binlog != null) {
      // The last binary log files, for crash recovery to decide prepared transactions, and an
      // index naming them where they now are.
      Set<String> names = Set.copyOf(binlog.files());
      Path tmp = datadir.resolveSibling("binlog");
      bytes += snapshot.extract(binlog.dir().volume(), binlog.dir().path(), tmp, names::contains);
      List<String> index = new ArrayList<>();
      for (String name : binlog.files()) {
        Files.move(tmp.resolve(name), datadir.resolve(name), StandardCopyOption.REPLACE_EXISTING);
        index.add(datadir.resolve(name).toAbsolutePath().toString());
      }
      deleteTree(tmp);
      Files.write(datadir.resolve(binlog.baseName() + ".index"), index, StandardCharsets.UTF_8);
    }
    // Leave nothing from the live server that would confuse a new one on the copy.
    for (String stale : List.of("mysql.sock", "ib_buffer_pool")) {
      Files.deleteIfExists(datadir.resolve(stale));
    }
    if (found.family() != ServerVersion.Family.MYSQL && FileNames.isExact(table.db())) {
      // MariaDB keeps a .frm for every table: no file means no such table in the snapshot.
      Path dbDir = datadir.resolve(FileNames.encode(table.db()));
      boolean any = false;
      if (Files.isDirectory(dbDir)) {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dbDir)) {
          for (Path f : ds) {
            any |= !f.getFileName().toString().equals("db.opt");
          }
        }
      }
      if (!any) {
        throw new ApplicationException(
            Reason.NOT_FOUND,
            "table "
                + table
                + " is not in the snapshot (no "
                + FileNames.encode(table.db())
                + "/"
                + FileNames.encode(table.table())
                + ".* in the data directory at "
                + found.datadir()
                + ")");
      }
    }
    return bytes;
  }

  /** The version of the backed-up server: from the record, else from {@code mysql_upgrade_info}. */
  private ServerVersion snapshotVersion(Locator.Found found, Path datadir) {
    if (record != null && record.version() != null) {
      try {
        ServerVersion v = ServerVersion.parse(record.version(), record.product());
        if (ServerVersion.Family.ofProduct(record.product()) != null) {
          return new ServerVersion(
              ServerVersion.Family.ofProduct(record.product()),
              v.major(),
              v.minor(),
              v.patch(),
              v.raw());
        }
        return v;
      } catch (IllegalArgumentException e) {
        // fall through to the files
      }
    }
    Path info = datadir.resolve("mysql_upgrade_info");
    if (Files.isRegularFile(info)) {
      try {
        String text = Files.readString(info, StandardCharsets.UTF_8).strip();
        ServerVersion v = ServerVersion.parse(text, null);
        if (found.family() == null || found.family() == v.family()) {
          return v;
        }
      } catch (IOException | IllegalArgumentException e) {
        // no usable version file
      }
    }
    return null;
  }

  static void deleteTree(Path root) {
    if (root == null || !Files.exists(root)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      // Best effort: a leftover staging copy is named granule-mysql-* in the temporary directory.
    }
  }
}
