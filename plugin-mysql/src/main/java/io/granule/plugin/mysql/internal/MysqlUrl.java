package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * A parsed {@code mysql://user@host:port/db?option=value} or {@code mariadb://…} URL. A password in
 * the URL is refused: it comes from {@code MYSQL_PWD}.
 *
 * @param user the user name; the operating system user's name when the URL has none
 * @param host the host, {@code localhost} when absent
 * @param port the TCP port, 3306 when absent
 * @param database the database, or null
 * @param options driver options passed on to MariaDB Connector/J (e.g. {@code sslMode=verify-full})
 */
record MysqlUrl(String user, String host, int port, String database, Map<String, String> options) {

  static final Set<String> SCHEMES = Set.of("mysql", "mariadb");

  MysqlUrl {
    options = Map.copyOf(options);
  }

  /** True if {@code url}'s scheme is one this plugin serves. */
  static boolean handles(URI url) {
    return url != null
        && url.getScheme() != null
        && SCHEMES.contains(url.getScheme().toLowerCase(Locale.ROOT));
  }

  /** Parses {@code url}, throwing {@link Reason#UNSUPPORTED} for anything else. */
  static MysqlUrl parse(URI url) throws ApplicationException {
    if (!handles(url)) {
      throw new ApplicationException(
          Reason.UNSUPPORTED,
          "not a MariaDB or MySQL URL: '" + url + "' (expected mysql://user@host:port/db)");
    }
    String user = url.getUserInfo();
    if (user != null && user.contains(":")) {
      throw new ApplicationException(
          Reason.UNSUPPORTED,
          "refusing a password in the URL: set MYSQL_PWD instead (URLs get logged)");
    }
    if (user == null || user.isEmpty()) {
      user = System.getProperty("user.name", "root");
    }
    String host = url.getHost() == null ? "localhost" : url.getHost();
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    int port = url.getPort() < 0 ? 3306 : url.getPort();
    String path = url.getPath();
    String database = null;
    if (path != null && path.length() > 1) {
      database = path.substring(1);
      if (database.contains("/")) {
        throw new ApplicationException(
            Reason.UNSUPPORTED, "the URL path must be one database name: '" + path + "'");
      }
    }
    Map<String, String> options = new LinkedHashMap<>();
    if (url.getRawQuery() != null) {
      for (String kv : url.getRawQuery().split("&")) {
        if (kv.isEmpty()) {
          continue;
        }
        int eq = kv.indexOf('=');
        String k = decode(eq < 0 ? kv : kv.substring(0, eq));
        String v = eq < 0 ? "" : decode(kv.substring(eq + 1));
        if (k.equalsIgnoreCase("password")) {
          throw new ApplicationException(
              Reason.UNSUPPORTED, "refusing a password in the URL: set MYSQL_PWD instead");
        }
        options.put(k, v);
      }
    }
    return new MysqlUrl(user, host, port, database, options);
  }

  private static String decode(String s) {
    return URLDecoder.decode(s, StandardCharsets.UTF_8);
  }

  /** The instance key: {@code host-port}, with characters outside the allowed set replaced. */
  String instance() {
    return (host + "-" + port).replaceAll("[^A-Za-z0-9._-]", "_");
  }

  /** True if the server runs on this machine (a transportable tablespace could be copied). */
  boolean isLocal() {
    return host.equals("localhost") || host.equals("127.0.0.1") || host.equals("::1");
  }

  /** The same server with another database (null for none). */
  MysqlUrl withDatabase(String db) {
    return new MysqlUrl(user, host, port, db, options);
  }

  /** The JDBC URL for MariaDB Connector/J, without credentials. */
  String jdbcUrl() {
    StringBuilder sb = new StringBuilder("jdbc:mariadb://");
    sb.append(host.contains(":") ? "[" + host + "]" : host).append(':').append(port).append('/');
    if (database != null) {
      sb.append(database);
    }
    return sb.toString();
  }

  @Override
  public String toString() {
    return "mysql://" + user + "@" + host + ":" + port + "/" + (database == null ? "" : database);
  }
}
