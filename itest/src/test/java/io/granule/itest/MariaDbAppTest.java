package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * MariaDB end to end with real processes: the data directory on a loop-mounted ext4 image, a writer
 * committing during {@code granule backup --disk DEV --freeze MOUNT --app mysql://…}, the table
 * dropped, {@code granule restore table} brings it back from the block backup: exactly a prefix of
 * the writer's commits. Fault paths: the backup lock is released when the freeze fails and when the
 * backing-up process is killed (a commit waiting on it goes through).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class MariaDbAppTest {
  static final int PRELOAD = 50_000;

  Path tmp;
  Path mnt;
  String dev;
  int port;
  Process server;
  Path repo;
  final ExecutorService pool = Executors.newCachedThreadPool();

  static String sh(String... cmd) throws Exception {
    return FreezeTest.sh(cmd);
  }

  @BeforeAll
  void startMariaDb() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    String why = "needs root (loop mount, fsfreeze) and MariaDB (/usr/sbin/mariadbd)";
    if (!root || !Files.isExecutable(Path.of("/usr/sbin/mariadbd"))) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("MariaDbAppTest " + why);
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
    tmp = Files.createTempDirectory("granule-mariadb-itest");
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path img = tmp.resolve("disk.img");
    sh("truncate", "-s", "1G", img.toString());
    sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img.toString());
    dev = sh("losetup", "-f", "--show", img.toString());
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    sh("mount", dev, mnt.toString());
    Path data = mnt.resolve("mysql");
    sh(
        "mariadb-install-db",
        "--no-defaults",
        "--user=root",
        "--datadir=" + data,
        "--auth-root-authentication-method=normal",
        "--skip-test-db");
    port = PostgresAppTest.freePort();
    Path cnf = tmp.resolve("my.cnf");
    Files.write(
        cnf,
        List.of(
            "[mysqld]",
            "datadir=" + data,
            "port=" + port,
            "bind-address=127.0.0.1",
            "socket=" + tmp.resolve("my.sock"),
            "pid-file=" + tmp.resolve("my.pid"),
            "log-error=" + tmp.resolve("my.err"),
            "log-bin=" + data.resolve("mysql-bin"),
            "server-id=1",
            "innodb-buffer-pool-size=64M"),
        StandardCharsets.UTF_8);
    server =
        new ProcessBuilder("/usr/sbin/mariadbd", "--defaults-file=" + cnf, "--user=root")
            .redirectErrorStream(true)
            .redirectOutput(tmp.resolve("my.out").toFile())
            .start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      try (Connection c = connect("")) {
        if (c.isValid(5)) {
          break;
        }
      } catch (SQLException e) {
        assertThat(System.nanoTime()).as("MariaDB did not start").isLessThan(deadline);
        Thread.sleep(100);
      }
    }
    try (Connection c = connect("");
        Statement s = c.createStatement()) {
      s.execute("CREATE DATABASE shop");
    }
    try (Connection c = connect("shop");
        Statement s = c.createStatement()) {
      s.execute(
          "CREATE TABLE shop.orders (id bigint PRIMARY KEY, payload char(32) NOT NULL,"
              + " note varchar(300)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
      s.execute(
          "INSERT INTO shop.orders SELECT seq, md5(seq), repeat('x', 200) FROM seq_1_to_"
              + PRELOAD);
    }
    repo = tmp.resolve("repo");
    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
  }

  @AfterAll
  void stopMariaDb() throws Exception {
    pool.shutdownNow();
    if (dev == null) {
      return;
    }
    new ProcessBuilder("fsfreeze", "-u", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    if (server != null) {
      server.destroy();
      server.waitFor(60, TimeUnit.SECONDS);
    }
    new ProcessBuilder("umount", "-l", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder("losetup", "-d", dev).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder("rm", "-rf", tmp.toString()).start().waitFor(60, TimeUnit.SECONDS);
  }

  Connection connect(String db) throws SQLException {
    return DriverManager.getConnection(
        "jdbc:mariadb://127.0.0.1:" + port + "/" + db + "?user=root", "root", "");
  }

  String url() {
    return "mysql://root@127.0.0.1:" + port + "/";
  }

  Granule.Result granule(String... args) throws Exception {
    return Granule.run(tmp, Map.of(), args);
  }

  long scalar(String sql) throws SQLException {
    try (Connection c = connect("");
        Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  /** Commits one row at a time, ids counting up, until stopped. */
  final class Writer extends Thread {
    final AtomicBoolean stop = new AtomicBoolean();
    final AtomicLong committed;
    volatile Exception failure;

    Writer(long from) {
      committed = new AtomicLong(from);
      setDaemon(true);
    }

    @Override
    public void run() {
      try (Connection c = connect("shop");
          var ps = c.prepareStatement("INSERT INTO orders VALUES (?, md5(?), 'live')")) {
        while (!stop.get()) {
          long id = committed.get() + 1;
          ps.setLong(1, id);
          ps.setLong(2, id);
          ps.executeUpdate();
          committed.set(id);
        }
      } catch (SQLException e) {
        failure = e;
      }
    }
  }

  long checkPrefix(String table) throws SQLException {
    long count = scalar("SELECT count(*) FROM " + table);
    assertThat(scalar("SELECT min(id) FROM " + table)).isEqualTo(1);
    assertThat(scalar("SELECT max(id) FROM " + table)).isEqualTo(count);
    assertThat(scalar("SELECT count(*) FROM " + table + " WHERE payload <> md5(id)")).isZero();
    return count;
  }

  /** Whether a commit from a new connection finishes within {@code seconds}. */
  boolean commitGoesThrough(int seconds) throws Exception {
    Future<?> f =
        pool.submit(
            () -> {
              try (Connection c = connect("shop");
                  Statement s = c.createStatement()) {
                s.execute("CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY) ENGINE=InnoDB");
                s.execute("REPLACE INTO probe VALUES (1)");
              }
              return null;
            });
    try {
      f.get(seconds, TimeUnit.SECONDS);
      return true;
    } catch (TimeoutException e) {
      return false;
    }
  }

  @Test
  @Order(1)
  void backupWithAWriterRestoresTheDroppedTable() throws Exception {
    Writer w = new Writer(PRELOAD);
    w.start();
    Thread.sleep(300);
    long before = w.committed.get();
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "db=" + dev,
            "--freeze",
            mnt.toString(),
            "--app",
            url(),
            "--no-progress");
    long after = w.committed.get();
    w.stop.set(true);
    w.join(30_000);
    assertThat(w.failure).isNull();
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
    assertThat(r.out()).contains("MariaDB").contains("application-consistent").contains("held");
    assertThat(r.out()).doesNotContain("WARNING");

    Granule.Result cat = granule("catalog", "latest", "--repo", repo.toString(), "--kind", "table");
    assertThat(cat.out()).contains("mysql:shop.orders");

    try (Connection c = connect("");
        Statement s = c.createStatement()) {
      s.execute("DROP TABLE shop.orders");
    }
    Granule.Result rt =
        granule(
            "restore",
            "table",
            "latest",
            "mysql:shop.orders",
            "--to",
            url(),
            "--as",
            "shop.orders",
            "--repo",
            repo.toString());
    assertThat(rt.exitCode()).as(rt.out() + rt.err()).isZero();
    long rows = checkPrefix("shop.orders");
    assertThat(rows).isBetween(before, after);
    assertThat(rt.out()).contains(rows + " rows");
    assertThat(commitGoesThrough(10)).isTrue();
  }

  @Test
  @Order(2)
  void aFailedFreezeReleasesTheBackupLock() throws Exception {
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "db=" + dev,
            "--freeze",
            mnt.toString(),
            "--freeze",
            tmp.resolve("missing").toString(),
            "--app",
            url(),
            "--no-progress");
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(11);
    assertThat(r.err()).contains("unable to begin");
    assertThat(commitGoesThrough(10)).isTrue();
    assertThat(
            scalar(
                "SELECT count(*) FROM information_schema.processlist WHERE state LIKE '%backup%'"))
        .isZero();
  }

  @Test
  @Order(3)
  void aKilledBackupReleasesTheLockAndTheWaitingWriterGoesOn() throws Exception {
    Writer w = new Writer(scalar("SELECT max(id) FROM shop.orders"));
    w.start();
    List<String> args =
        new ArrayList<>(
            List.of(
                "backup",
                "--repo",
                repo.toString(),
                "--disk",
                "db=" + dev,
                "--app",
                url(),
                "--app-max-hold",
                "300",
                "--no-progress"));
    Process p =
        Granule.command(List.of(), args.toArray(String[]::new))
            .redirectErrorStream(true)
            .redirectOutput(tmp.resolve("killed.txt").toFile())
            .start();
    // held: the writer's commit waits for the backup lock
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    try (Connection c = connect("");
        var ps =
            c.prepareStatement(
                "SELECT count(*) FROM information_schema.processlist WHERE state LIKE '%backup%'")) {
      while (true) {
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          if (rs.getLong(1) > 0) {
            break;
          }
        }
        assertThat(System.nanoTime()).as("the backup never held the server").isLessThan(deadline);
        assertThat(p.isAlive())
            .as("the backup ended before it was killed: " + read(tmp.resolve("killed.txt")))
            .isTrue();
        Thread.sleep(2);
      }
    }
    long blockedAt = w.committed.get();
    p.destroyForcibly();
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (w.committed.get() <= blockedAt + 10) {
      assertThat(System.nanoTime())
          .as("the writer is still blocked after the backup was killed")
          .isLessThan(deadline);
      Thread.sleep(20);
    }
    w.stop.set(true);
    w.join(30_000);
    assertThat(w.failure).isNull();
  }

  static String read(Path p) throws IOException {
    return Files.readString(p, StandardCharsets.UTF_8);
  }
}
