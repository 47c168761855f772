package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.sql.Connection;
import java.sql.SQLException;

/** Opens pgjdbc connections and turns their failures into {@link ApplicationException}s. */
final class Jdbc {
  private Jdbc() {}

  /**
   * Connects to {@code url}. The driver is called directly rather than through {@code
   * DriverManager}, which does not see drivers embedded in an OSGi bundle.
   *
   * @throws ApplicationException AUTH for refused credentials, UNREACHABLE when nothing answers,
   *     NOT_FOUND for a database that does not exist, FAILED otherwise
   */
  static Connection connect(PgUrl url) throws ApplicationException {
    return connect(url, "granule");
  }

  /** {@link #connect(PgUrl)} under another application name. */
  static Connection connect(PgUrl url, String applicationName) throws ApplicationException {
    try {
      Connection c =
          new org.postgresql.Driver().connect(url.jdbcUrl(), url.properties(applicationName));
      if (c == null) {
        throw new ApplicationException(Reason.FAILED, "pgjdbc refused url " + url);
      }
      return c;
    } catch (SQLException e) {
      throw translate(url, e);
    }
  }

  /** Maps a connection failure to a reason by its SQLSTATE and cause. */
  static ApplicationException translate(PgUrl url, SQLException e) {
    String state = e.getSQLState() == null ? "" : e.getSQLState();
    String message = e.getMessage() == null ? state : e.getMessage();
    if (state.equals("28P01") || state.equals("28000")) {
      return new ApplicationException(
          Reason.AUTH,
          "postgres "
              + url
              + ": credentials refused ("
              + message
              + "); set PGPASSWORD or add the role to ~/.pgpass",
          e);
    }
    if (state.equals("3D000")) {
      return new ApplicationException(
          Reason.NOT_FOUND, "postgres " + url + ": database does not exist (" + message + ")", e);
    }
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof ConnectException
          || t instanceof UnknownHostException
          || t instanceof NoRouteToHostException
          || t instanceof SocketTimeoutException) {
        return new ApplicationException(
            Reason.UNREACHABLE,
            "postgres " + url + ": nothing answers (" + t + "); is the server running?",
            e);
      }
    }
    if (state.startsWith("08")) {
      return new ApplicationException(
          Reason.UNREACHABLE, "postgres " + url + ": cannot connect (" + message + ")", e);
    }
    return new ApplicationException(Reason.FAILED, "postgres " + url + ": " + message, e);
  }

  /** Closes {@code c} quietly. */
  static void closeQuietly(AutoCloseable c) {
    if (c == null) {
      return;
    }
    try {
      c.close();
    } catch (Exception e) {
      // Nothing to do: the connection is gone either way.
    }
  }
}
