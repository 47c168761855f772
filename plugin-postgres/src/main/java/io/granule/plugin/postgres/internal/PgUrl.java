package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * A parsed {@code postgres://user@host:port/db} (or {@code postgresql://}) URL.
 *
 * <p>A password in the URL is accepted but discouraged: it is kept out of {@link #toString} and
 * every message. Without one, it comes from {@code PGPASSWORD} or the password file ({@link
 * Passwords}).
 *
 * @param host host name or address, {@code localhost} when absent
 * @param port TCP port, 5432 when absent
 * @param database database name, the user name when absent (as libpq does)
 * @param user role name, {@code postgres} when absent
 * @param password the URL's password or null
 * @param params query parameters passed on to pgjdbc (e.g. {@code sslmode})
 */
record PgUrl(
    String host,
    int port,
    String database,
    String user,
    String password,
    Map<String, String> params) {

  static final int DEFAULT_PORT = 5432;

  PgUrl {
    params = Map.copyOf(params);
  }

  static boolean handles(URI url) {
    String scheme = url.getScheme();
    if (scheme == null) {
      return false;
    }
    String s = scheme.toLowerCase(Locale.ROOT);
    return s.equals("postgres") || s.equals("postgresql");
  }

  static PgUrl parse(URI url) throws ApplicationException {
    if (!handles(url)) {
      throw new ApplicationException(
          Reason.UNSUPPORTED,
          "not a PostgreSQL url (expected postgres://user@host:port/db): scheme '"
              + url.getScheme()
              + "'");
    }
    String host = url.getHost();
    if (host == null || host.isEmpty()) {
      host = "localhost";
    } else if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1); // IPv6 literal
    }
    int port = url.getPort() < 0 ? DEFAULT_PORT : url.getPort();
    String user = null;
    String password = null;
    String info = url.getRawUserInfo();
    if (info != null && !info.isEmpty()) {
      int colon = info.indexOf(':');
      user = decode(colon < 0 ? info : info.substring(0, colon));
      password = colon < 0 ? null : decode(info.substring(colon + 1));
    }
    if (user == null || user.isEmpty()) {
      user = "postgres";
    }
    String path = url.getRawPath();
    String database = path == null || path.length() <= 1 ? user : decode(path.substring(1));
    Map<String, String> params = new LinkedHashMap<>();
    String query = url.getRawQuery();
    if (query != null && !query.isEmpty()) {
      for (String kv : query.split("&")) {
        int eq = kv.indexOf('=');
        if (eq > 0) {
          params.put(decode(kv.substring(0, eq)), decode(kv.substring(eq + 1)));
        }
      }
    }
    return new PgUrl(host, port, database, user, password, params);
  }

  private static String decode(String s) {
    return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
  }

  /** The same instance, another database. */
  PgUrl withDatabase(String db) {
    return new PgUrl(host, port, db, user, password, params);
  }

  /** The pgjdbc URL (without credentials or parameters). */
  String jdbcUrl() {
    String h = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
    return "jdbc:postgresql://"
        + h
        + ":"
        + port
        + "/"
        + URLEncoder.encode(database, StandardCharsets.UTF_8);
  }

  /** pgjdbc connection properties: user, password if one is configured, parameters. */
  Properties properties() {
    return properties("granule");
  }

  /** {@link #properties()} with the application name PostgreSQL shows in pg_stat_activity. */
  Properties properties(String applicationName) {
    Properties p = new Properties();
    p.putAll(params);
    p.setProperty("user", user);
    String pw = Passwords.find(this);
    if (pw != null) {
      p.setProperty("password", pw);
    }
    p.setProperty("ApplicationName", applicationName);
    p.setProperty("connectTimeout", p.getProperty("connectTimeout", "10"));
    return p;
  }

  /** The instance key: host and port, reduced to the characters an instance key may hold. */
  String instanceKey() {
    String key = (host + "-" + port).replaceAll("[^A-Za-z0-9._-]", "_");
    return key.length() > 100 ? key.substring(0, 100) : key;
  }

  /** The url without password, for messages. */
  @Override
  public String toString() {
    String h = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
    return "postgres://" + user + "@" + h + ":" + port + "/" + database;
  }
}
