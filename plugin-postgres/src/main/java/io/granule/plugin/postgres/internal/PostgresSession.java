package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.Quiesce;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A connection to one PostgreSQL instance (version 15 or later) for a backup. Quiescing opens a
 * second, dedicated connection that holds non-exclusive backup mode ({@link BackupHold}).
 */
final class PostgresSession implements ApplicationSession {
  /** The oldest major version with {@code pg_backup_start}/{@code pg_backup_stop}. */
  static final int MIN_VERSION_NUM = 150000;

  private final PgUrl url;
  private final Connection conn;
  private final ApplicationInfo info;
  private final Path dataDirectory;
  private final List<BackupHold> holds = new CopyOnWriteArrayList<>();
  private volatile boolean closed;

  private PostgresSession(PgUrl url, Connection conn, ApplicationInfo info, Path dataDirectory) {
    this.url = url;
    this.conn = conn;
    this.info = info;
    this.dataDirectory = dataDirectory;
  }

  static PostgresSession open(PgUrl url) throws ApplicationException {
    Connection conn = Jdbc.connect(url);
    try {
      int versionNum = Integer.parseInt(query(conn, "SHOW server_version_num"));
      String version = query(conn, "SHOW server_version");
      if (versionNum < MIN_VERSION_NUM) {
        throw new ApplicationException(
            Reason.UNSUPPORTED,
            "postgres "
                + url
                + ": server version "
                + version
                + " is not supported (15 or later is: the plugin quiesces with pg_backup_start)");
      }
      String dataDir = query(conn, "SHOW data_directory");
      String port = query(conn, "SHOW port");
      String sysid = query(conn, "SELECT system_identifier::text FROM pg_control_system()");
      List<String> dataPaths = new ArrayList<>();
      dataPaths.add(dataDir);
      try (Statement st = conn.createStatement();
          ResultSet rs =
              st.executeQuery(
                  "SELECT pg_tablespace_location(oid) FROM pg_tablespace"
                      + " WHERE pg_tablespace_location(oid) <> '' ORDER BY spcname")) {
        while (rs.next()) {
          dataPaths.add(rs.getString(1));
        }
      }
      Path dataDirectory = Path.of(dataDir);
      Path wal = dataDirectory.resolve("pg_wal");
      if (Files.isSymbolicLink(wal)) {
        try {
          dataPaths.add(wal.toRealPath().toString());
        } catch (IOException e) {
          dataPaths.add(dataDirectory.resolve(Files.readSymbolicLink(wal)).toString());
        }
      }
      Map<String, String> attributes = new LinkedHashMap<>();
      attributes.put("system_identifier", sysid);
      attributes.put("port", port);
      attributes.put("data_directory", dataDir);
      attributes.put("server_version_num", Integer.toString(versionNum));
      ApplicationInfo info =
          new ApplicationInfo(url.instanceKey(), "PostgreSQL", version, dataPaths, attributes);
      return new PostgresSession(url, conn, info, dataDirectory);
    } catch (SQLException e) {
      Jdbc.closeQuietly(conn);
      throw new ApplicationException(
          Reason.FAILED,
          "postgres "
              + url
              + ": reading the server's settings failed ("
              + e.getMessage()
              + "); the role needs superuser or pg_read_all_settings and pg_backup_start rights",
          e);
    } catch (IOException | RuntimeException e) {
      Jdbc.closeQuietly(conn);
      if (e instanceof ApplicationException ae) {
        throw ae;
      }
      throw new ApplicationException(Reason.FAILED, "postgres " + url + ": " + e.getMessage(), e);
    }
  }

  static String query(Connection c, String sql) throws SQLException {
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery(sql)) {
      if (!rs.next()) {
        throw new SQLException("no result from " + sql);
      }
      return rs.getString(1);
    }
  }

  @Override
  public ApplicationInfo info() {
    return info;
  }

  @Override
  public Quiesce quiesce(Duration maxHold) throws ApplicationException {
    if (closed) {
      throw new ApplicationException(Reason.FAILED, "postgres " + url + ": session is closed");
    }
    BackupHold hold = BackupHold.start(url, dataDirectory, maxHold, holds::remove);
    holds.add(hold);
    return hold;
  }

  @Override
  public List<CatalogEntry> catalog() throws ApplicationException {
    if (closed) {
      throw new ApplicationException(Reason.FAILED, "postgres " + url + ": session is closed");
    }
    return CatalogReader.read(url, conn);
  }

  @Override
  public void close() {
    closed = true;
    // Ends backup mode of holds not released yet; what a release handed out stays until the
    // engine closes that Quiesce, since it may still be storing the captured files.
    for (BackupHold hold : holds) {
      hold.abort();
    }
    holds.clear();
    Jdbc.closeQuietly(conn);
  }
}
