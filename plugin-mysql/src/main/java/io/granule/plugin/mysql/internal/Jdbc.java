package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import org.mariadb.jdbc.Driver;

/** Opens connections with MariaDB Connector/J and turns driver errors into plugin errors. */
final class Jdbc {
  /** The server's "access denied" error. */
  static final int ER_ACCESS_DENIED = 1045;

  static final int ER_BAD_DB = 1049;

  private static final Driver DRIVER = new Driver();

  private Jdbc() {}

  /**
   * Connects to {@code url} as its user with {@code password} (null for none).
   *
   * @throws ApplicationException {@link Reason#AUTH}, {@link Reason#UNREACHABLE}, {@link
   *     Reason#NOT_FOUND} for an unknown database, {@link Reason#FAILED} otherwise
   */
  static Connection connect(MysqlUrl url, String password, int connectTimeoutMillis)
      throws ApplicationException {
    Properties p = new Properties();
    p.putAll(url.options());
    p.setProperty("user", url.user());
    if (password != null) {
      p.setProperty("password", password);
    }
    p.putIfAbsent("connectTimeout", Integer.toString(connectTimeoutMillis));
    // Nothing this plugin sends uses server-side prepared statements; keep it simple for proxies.
    p.putIfAbsent("useServerPrepStmts", "false");
    try {
      Connection c = DRIVER.connect(url.jdbcUrl(), p);
      if (c == null) {
        throw new ApplicationException(Reason.FAILED, "driver refused URL " + url);
      }
      return c;
    } catch (SQLException e) {
      throw translate(e, "unable to connect to " + url);
    }
  }

  /** Maps a driver error to a plugin error whose message starts with {@code what}. */
  static ApplicationException translate(SQLException e, String what) {
    String msg = what + ": " + e.getMessage();
    if (e.getErrorCode() == ER_ACCESS_DENIED) {
      return new ApplicationException(
          Reason.AUTH, what + ": access denied (check the user and MYSQL_PWD)", e);
    }
    if (e.getErrorCode() == ER_BAD_DB) {
      return new ApplicationException(Reason.NOT_FOUND, msg, e);
    }
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof ConnectException
          || t instanceof UnknownHostException
          || t instanceof NoRouteToHostException
          || t instanceof SocketTimeoutException) {
        return new ApplicationException(Reason.UNREACHABLE, what + ": " + t.getMessage(), e);
      }
    }
    if (e.getSQLState() != null && e.getSQLState().startsWith("08") && e.getErrorCode() == 0) {
      return new ApplicationException(Reason.UNREACHABLE, msg, e);
    }
    return new ApplicationException(Reason.FAILED, msg, e);
  }

  /** Runs one statement. */
  static void execute(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  /** The first column of the first row, or null when there is no row. */
  static String queryString(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(sql)) {
      return rs.next() ? rs.getString(1) : null;
    }
  }

  /** Quotes an identifier with backticks. */
  static String quote(String identifier) {
    return "`" + identifier.replace("`", "``") + "`";
  }

  /** Closes {@code c}, ignoring failures. */
  static void closeQuietly(AutoCloseable c) {
    if (c == null) {
      return;
    }
    try {
      c.close();
    } catch (Exception e) {
      // Closing is best effort: the server drops the session and its locks either way.
    }
  }
}
