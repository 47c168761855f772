package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A throwaway MariaDB server for tests: {@code mariadb-install-db} into {@code dir/data}, started
 * with its own option file (free port on 127.0.0.1, socket, pid file and log in {@code dir}),
 * binary log on. {@link #close} stops it; the caller deletes the directory.
 */
final class MariaDbServer implements AutoCloseable {
  private final Path dir;
  private final Path datadir;
  private final int port;
  private Process process;

  private MariaDbServer(Path dir, Path datadir, int port) {
    this.dir = dir;
    this.datadir = datadir;
    this.port = port;
  }

  static boolean isRoot() {
    return "root".equals(System.getProperty("user.name"));
  }

  /** Initializes and starts a server with its data directory at {@code datadir}. */
  static MariaDbServer start(Path dir, Path datadir, String... options) throws Exception {
    Prerequisites.require("mariadbd", "mariadb-server");
    Prerequisites.require("mariadb-install-db", "mariadb-server");
    Prerequisites.require("mariadb-dump", "mariadb-client");
    Files.createDirectories(dir);
    List<String> install = new ArrayList<>();
    install.add("mariadb-install-db");
    install.add("--no-defaults");
    if (isRoot()) {
      install.add("--user=root");
    }
    install.add("--datadir=" + datadir);
    install.add("--auth-root-authentication-method=normal");
    install.add("--skip-test-db");
    run(dir.resolve("install.log"), install);
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    List<String> cnf = new ArrayList<>();
    cnf.add("[mysqld]");
    cnf.add("datadir=" + datadir);
    cnf.add("port=" + port);
    cnf.add("bind-address=127.0.0.1");
    cnf.add("socket=" + dir.resolve("server.sock"));
    cnf.add("pid-file=" + dir.resolve("server.pid"));
    cnf.add("log-error=" + dir.resolve("server.err"));
    cnf.add("log-bin=" + datadir.resolve("mysql-bin"));
    cnf.add("server-id=7");
    cnf.add("innodb-buffer-pool-size=64M");
    cnf.add("innodb-log-file-size=32M");
    cnf.addAll(List.of(options));
    Path file = dir.resolve("server.cnf");
    Files.write(file, cnf, StandardCharsets.UTF_8);
    MariaDbServer s = new MariaDbServer(dir, datadir, port);
    List<String> cmd = new ArrayList<>(List.of("/usr/sbin/mariadbd", "--defaults-file=" + file));
    if (isRoot()) {
      cmd.add("--user=root");
    }
    s.process =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve("server.out").toFile())
            .start();
    s.awaitReady();
    return s;
  }

  private static void run(Path log, List<String> cmd) throws Exception {
    Process p =
        new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("%s finished", cmd).isTrue();
    assertThat(p.exitValue())
        .as("%s: %s", cmd, Files.readString(log, StandardCharsets.UTF_8))
        .isZero();
  }

  private void awaitReady() throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      try (Connection c = connect()) {
        return;
      } catch (SQLException e) {
        if (!process.isAlive() || System.nanoTime() > deadline) {
          throw new IllegalStateException(
              "test server did not start: "
                  + Files.readString(dir.resolve("server.err"), StandardCharsets.UTF_8),
              e);
        }
        Thread.sleep(100);
      }
    }
  }

  int port() {
    return port;
  }

  Path datadir() {
    return datadir;
  }

  /** {@code mysql://root@127.0.0.1:PORT/db}. */
  URI url(String db) {
    return URI.create("mysql://root@127.0.0.1:" + port + "/" + (db == null ? "" : db));
  }

  Connection connect() throws SQLException {
    return DriverManager.getConnection(
        "jdbc:mariadb://127.0.0.1:" + port + "/?user=root&connectTimeout=2000");
  }

  /** Runs statements on a new connection. */
  void sql(String... statements) throws SQLException {
    try (Connection c = connect();
        Statement s = c.createStatement()) {
      for (String sql : statements) {
        s.execute(sql);
      }
    }
  }

  /** The first column of the first row. */
  String query(String sql) throws SQLException {
    try (Connection c = connect()) {
      return Jdbc.queryString(c, sql);
    }
  }

  @Override
  public void close() throws IOException {
    if (process == null) {
      return;
    }
    process.destroy();
    try {
      if (!process.waitFor(60, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    process = null;
  }
}
