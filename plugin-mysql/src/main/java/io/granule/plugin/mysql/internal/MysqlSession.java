package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.Quiesce;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * A connection to one MariaDB or MySQL server for a backup. Quiescing uses a second, dedicated
 * connection (see {@link MysqlQuiesce}) so the timer can drop the locks by closing it without
 * touching this one. Not thread-safe beyond what the engine needs (one caller at a time).
 */
final class MysqlSession implements ApplicationSession {
  /** Server variables recorded as attributes; those a staging server must match are marked. */
  static final List<String> VARIABLES =
      List.of(
          "datadir",
          "innodb_data_home_dir",
          "innodb_log_group_home_dir",
          "innodb_undo_directory",
          "server_id",
          "log_bin",
          "log_bin_basename",
          "binlog_format",
          "gtid_mode",
          "gtid_strict_mode",
          "gtid_domain_id",
          "port",
          "version_comment",
          "innodb_page_size",
          "innodb_data_file_path",
          "innodb_undo_tablespaces",
          "lower_case_table_names",
          "innodb_checksum_algorithm");

  private final MysqlUrl url;
  private final String password;
  private final Connection connection;
  private final ServerVersion version;
  private final ApplicationInfo info;
  private final List<MysqlQuiesce> holds = new ArrayList<>();
  private boolean closed;

  private MysqlSession(
      MysqlUrl url,
      String password,
      Connection connection,
      ServerVersion version,
      ApplicationInfo info) {
    this.url = url;
    this.password = password;
    this.connection = connection;
    this.version = version;
    this.info = info;
  }

  /** Connects and reads what {@link #info} reports. */
  static MysqlSession open(MysqlUrl url, String password) throws ApplicationException {
    Connection c = Jdbc.connect(url, password, 10_000);
    try {
      String raw = Jdbc.queryString(c, "SELECT VERSION()");
      Map<String, String> vars = variables(c);
      ServerVersion v;
      try {
        v = ServerVersion.parse(raw, vars.get("version_comment"));
      } catch (IllegalArgumentException e) {
        throw new ApplicationException(
            Reason.UNSUPPORTED, "unrecognised server version '" + raw + "' at " + url, e);
      }
      if (!v.atLeast(5, 5)) {
        throw new ApplicationException(
            Reason.UNSUPPORTED,
            v
                + " at "
                + url
                + " is too old (supported: MariaDB 5.5 and later, MySQL 5.5 and later)");
      }
      Map<String, String> attributes = new LinkedHashMap<>(vars);
      String datadir = vars.get("datadir");
      Set<String> paths = new LinkedHashSet<>();
      if (datadir != null && !datadir.isEmpty()) {
        Path dd = Path.of(datadir).normalize();
        attributes.put("datadir", dd.toString());
        paths.add(dd.toString());
        for (String name :
            List.of("innodb_data_home_dir", "innodb_log_group_home_dir", "innodb_undo_directory")) {
          String resolved = resolve(dd, vars.get(name));
          if (resolved != null) {
            attributes.put(name, resolved);
            if (!Path.of(resolved).startsWith(dd)) {
              paths.add(resolved);
            }
          }
        }
      }
      attributes.put("dialect", Dialect.of(v).name().toLowerCase(Locale.ROOT));
      ApplicationInfo info =
          new ApplicationInfo(
              url.instance(), v.family().product(), raw, List.copyOf(paths), attributes);
      return new MysqlSession(url, password, c, v, info);
    } catch (SQLException e) {
      Jdbc.closeQuietly(c);
      throw Jdbc.translate(e, "unable to inspect " + url);
    } catch (ApplicationException | RuntimeException e) {
      Jdbc.closeQuietly(c);
      throw e;
    }
  }

  /** An InnoDB directory variable resolved against the data directory (empty means datadir). */
  private static String resolve(Path datadir, String value) {
    if (value == null) {
      return null;
    }
    try {
      Path p = value.isEmpty() ? datadir : datadir.resolve(value);
      return p.normalize().toString();
    } catch (InvalidPathException e) {
      return null;
    }
  }

  private static Map<String, String> variables(Connection c) throws SQLException {
    Map<String, String> vars = new LinkedHashMap<>();
    StringBuilder in = new StringBuilder();
    for (String name : VARIABLES) {
      in.append(in.length() == 0 ? "" : ",").append('\'').append(name).append('\'');
    }
    try (Statement s = c.createStatement();
        ResultSet rs =
            s.executeQuery("SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + in + ")")) {
      while (rs.next()) {
        String value = rs.getString(2);
        vars.put(rs.getString(1).toLowerCase(Locale.ROOT), value == null ? "" : value);
      }
    }
    return vars;
  }

  ServerVersion version() {
    return version;
  }

  @Override
  public ApplicationInfo info() {
    return info;
  }

  @Override
  public synchronized Quiesce quiesce(Duration maxHold) throws ApplicationException {
    if (closed) {
      throw new ApplicationException(Reason.FAILED, "session to " + url + " is closed");
    }
    if (maxHold.isNegative() || maxHold.isZero()) {
      throw new IllegalArgumentException("maxHold must be positive: " + maxHold);
    }
    Dialect dialect = Dialect.of(version);
    Connection lock = Jdbc.connect(url, password, 10_000);
    try {
      boolean nonTransactional = dialect == Dialect.MYSQL_BACKUP_LOCK && hasNonInnodbTables(lock);
      // Never wait for a lock longer than we may hold one.
      long seconds = Math.max(1, maxHold.toSeconds());
      Jdbc.execute(lock, "SET SESSION lock_wait_timeout = " + seconds);
      for (String sql : dialect.quiesce(nonTransactional)) {
        Jdbc.execute(lock, sql);
      }
      Map<String, String> metadata = new LinkedHashMap<>();
      metadata.put("quiesce", dialect.name().toLowerCase(Locale.ROOT));
      metadata.put("server_version", version.raw());
      readCoordinates(lock, metadata);
      metadata.put(
          "coordinates",
          dialect.blocksCommits(nonTransactional) ? "exact" : "during-hold-commits-not-blocked");
      MysqlQuiesce q = new MysqlQuiesce(lock, dialect, nonTransactional, metadata, maxHold);
      holds.add(q);
      return q;
    } catch (SQLException e) {
      Jdbc.closeQuietly(lock);
      throw new ApplicationException(
          Reason.FAILED, "unable to quiesce " + url + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      Jdbc.closeQuietly(lock);
      throw e;
    }
  }

  private static boolean hasNonInnodbTables(Connection c) throws SQLException {
    String n =
        Jdbc.queryString(
            c,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'"
                + " AND ENGINE IS NOT NULL AND ENGINE <> 'InnoDB' AND TABLE_SCHEMA NOT IN"
                + " ('mysql','information_schema','performance_schema','sys')");
    return n != null && Long.parseLong(n) > 0;
  }

  private void readCoordinates(Connection c, Map<String, String> metadata) throws SQLException {
    try (Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(Dialect.binlogStatus(version))) {
      if (rs.next()) {
        ResultSetMetaData md = rs.getMetaData();
        metadata.put("binlog_file", rs.getString(1));
        metadata.put("binlog_position", rs.getString(2));
        for (int i = 3; i <= md.getColumnCount(); i++) {
          if (md.getColumnLabel(i).equalsIgnoreCase("Executed_Gtid_Set")) {
            String gtid = rs.getString(i);
            metadata.put("gtid_executed", gtid == null ? "" : gtid.replace("\n", ""));
          }
        }
      }
    }
    for (String var : Dialect.gtidVariables(version)) {
      if (!metadata.containsKey(var)) {
        String value = Jdbc.queryString(c, "SELECT @@GLOBAL." + var);
        metadata.put(var, value == null ? "" : value.replace("\n", ""));
      }
    }
  }

  @Override
  public synchronized List<CatalogEntry> catalog() throws ApplicationException {
    if (closed) {
      throw new ApplicationException(Reason.FAILED, "session to " + url + " is closed");
    }
    try {
      return Catalog.read(connection, version);
    } catch (SQLException e) {
      throw Jdbc.translate(e, "unable to read the catalog of " + url);
    }
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (MysqlQuiesce q : holds) {
      q.close();
    }
    holds.clear();
    Jdbc.closeQuietly(connection);
  }
}
