package io.granule.plugin.postgres.internal;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Assumptions;

/**
 * A throwaway PostgreSQL 15 cluster for tests: initdb into a temporary directory (as {@code
 * postgres} when the tests run as root), a free port on 127.0.0.1 with password authentication, a
 * private socket directory. {@link #close} stops it and deletes everything.
 */
final class PgCluster implements AutoCloseable {
  static final Path BIN = Path.of("/usr/lib/postgresql/15/bin");
  static final String PASSWORD = "s3cret-pw";

  private final Path dir;
  private final int port;
  private boolean running;

  private PgCluster(Path dir, int port) {
    this.dir = dir;
    this.port = port;
  }

  /** Skips the test when PostgreSQL 15 is missing, or fails it under CI ({@code CI=true}). */
  static void requirePostgres() {
    if (Files.isExecutable(BIN.resolve("initdb")) && Files.isExecutable(BIN.resolve("pg_ctl"))) {
      return;
    }
    String why = "PostgreSQL 15 is not installed in " + BIN + " (apt-get install postgresql-15)";
    if ("true".equals(System.getenv("CI"))) {
      fail(why);
    }
    Assumptions.assumeTrue(false, why);
  }

  /** Creates and starts a cluster with {@code settings} added to its postgresql.conf. */
  static PgCluster start(Map<String, String> settings) throws IOException {
    requirePostgres();
    Path dir = Files.createTempDirectory("granule-pgtest-");
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.writeString(dir.resolve("pw"), PASSWORD + "\n", StandardCharsets.UTF_8);
    Files.createDirectories(dir.resolve("sock"));
    String user = StagingServer.serverUser(Map.of());
    if (user != null) {
      run(List.of("chown", "-R", user + ":", dir.toString()));
    }
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    PgCluster c = new PgCluster(dir, port);
    c.runAsServer(
        List.of(
            BIN.resolve("initdb").toString(),
            "-D",
            dir.resolve("data").toString(),
            "-U",
            "postgres",
            "--pwfile=" + dir.resolve("pw"),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync"));
    StringBuilder conf = new StringBuilder();
    conf.append("port = ").append(port).append('\n');
    conf.append("listen_addresses = '127.0.0.1'\n");
    conf.append("unix_socket_directories = '").append(dir.resolve("sock")).append("'\n");
    conf.append("fsync = off\n");
    conf.append("shared_buffers = 32MB\n");
    settings.forEach((k, v) -> conf.append(k).append(" = ").append(v).append('\n'));
    Files.writeString(
        dir.resolve("data/postgresql.conf"),
        conf.toString(),
        StandardCharsets.UTF_8,
        java.nio.file.StandardOpenOption.APPEND);
    c.pgCtl("start");
    c.running = true;
    return c;
  }

  private void pgCtl(String action) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.addAll(
        List.of(
            BIN.resolve("pg_ctl").toString(),
            "-D",
            dataDir().toString(),
            "-l",
            dir.resolve("server.log").toString(),
            "-w"));
    if (action.equals("stop")) {
      cmd.addAll(List.of("-m", "fast"));
    }
    cmd.add(action);
    runAsServer(cmd);
  }

  private void runAsServer(List<String> cmd) throws IOException {
    String user = StagingServer.serverUser(Map.of());
    List<String> full = new ArrayList<>();
    if (user != null) {
      full.addAll(List.of("runuser", "-u", user, "--"));
    }
    full.addAll(cmd);
    run(full);
  }

  private static void run(List<String> cmd) throws IOException {
    Processes.Result r =
        Processes.run(cmd, StagingServer.cleanEnv(), null, null, Duration.ofMinutes(2));
    if (!r.ok()) {
      throw new IOException(String.join(" ", cmd) + " failed: " + r.tail());
    }
  }

  Path dataDir() {
    return dir.resolve("data");
  }

  int port() {
    return port;
  }

  /** postgres://postgres:PASSWORD@127.0.0.1:port/db */
  URI url(String db) {
    return URI.create("postgres://postgres:" + PASSWORD + "@127.0.0.1:" + port + "/" + db);
  }

  Connection connect(String db) throws SQLException {
    Properties p = new Properties();
    p.setProperty("user", "postgres");
    p.setProperty("password", PASSWORD);
    return new org.postgresql.Driver().connect("jdbc:postgresql://127.0.0.1:" + port + "/" + db, p);
  }

  void sql(String db, String sql) throws SQLException {
    try (Connection c = connect(db);
        Statement st = c.createStatement()) {
      st.execute(sql);
    }
  }

  long queryLong(String db, String sql) throws SQLException {
    try (Connection c = connect(db);
        Statement st = c.createStatement();
        ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  String log() throws IOException {
    return Files.readString(dir.resolve("server.log"), StandardCharsets.UTF_8);
  }

  /** Stops the server at once, as a crash would (the data directory stays). */
  void crash() throws IOException {
    runAsServer(
        List.of(
            BIN.resolve("pg_ctl").toString(),
            "-D",
            dataDir().toString(),
            "-m",
            "immediate",
            "-w",
            "stop"));
    running = false;
  }

  @Override
  public void close() throws IOException {
    try {
      if (running) {
        running = false;
        pgCtl("stop");
      }
    } finally {
      FileTrees.delete(dir);
    }
  }
}
