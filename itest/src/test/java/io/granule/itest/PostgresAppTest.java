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
import java.util.concurrent.TimeUnit;
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
 * The product's promise end to end, with real processes: PostgreSQL 15 with its data directory on a
 * loop-mounted ext4 image, a writer committing during the backup, {@code granule backup --disk DEV
 * --freeze MOUNT --app postgres://…}, the table dropped, {@code granule restore table} brings it
 * back from the block backup. The restored rows are exactly a prefix of the writer's commits (no
 * gap, no torn row), as many as were committed when the snapshot was taken or more. Fault paths: a
 * failed freeze ends backup mode; a killed backup's connection dies and PostgreSQL aborts the
 * backup (its log says so).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PostgresAppTest {
  static final String BIN = "/usr/lib/postgresql/15/bin";
  static final String PASSWORD = "s3cret pw";
  static final int PRELOAD = 200_000;

  Path tmp;
  Path mnt;
  Path data;
  Path sock;
  Path log;
  String dev;
  int port;
  Path repo;

  static String sh(String... cmd) throws Exception {
    return FreezeTest.sh(cmd);
  }

  @BeforeAll
  void startPostgres() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    String why = "needs root (loop mount, fsfreeze) and PostgreSQL 15 in " + BIN;
    if (!root || !Files.isExecutable(Path.of(BIN, "postgres"))) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("PostgresAppTest " + why);
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
    tmp = Files.createTempDirectory("granule-pg-itest");
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path img = tmp.resolve("disk.img");
    sh("truncate", "-s", "1G", img.toString());
    sh("mkfs.ext4", "-q", "-F", img.toString());
    dev = sh("losetup", "-f", "--show", img.toString());
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    sh("mount", dev, mnt.toString());
    data = mnt.resolve("pgdata");
    sock = Files.createDirectories(tmp.resolve("sock"));
    log = tmp.resolve("pg.log");
    Path pw = tmp.resolve("pw");
    Files.writeString(pw, PASSWORD + "\n");
    Files.createDirectories(data);
    sh("chown", "postgres:postgres", data.toString(), sock.toString(), pw.toString());
    Files.writeString(log, "");
    sh("chown", "postgres:postgres", log.toString());
    sh(
        "runuser",
        "-u",
        "postgres",
        "--",
        BIN + "/initdb",
        "-D",
        data.toString(),
        "-U",
        "granule",
        "--pwfile",
        pw.toString(),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C.UTF-8");
    port = freePort();
    sh(
        "runuser",
        "-u",
        "postgres",
        "--",
        BIN + "/pg_ctl",
        "-D",
        data.toString(),
        "-l",
        log.toString(),
        "-w",
        "-o",
        "-p " + port + " -k " + sock + " -c listen_addresses=127.0.0.1",
        "start");
    try (Connection c = connect("postgres");
        Statement s = c.createStatement()) {
      s.execute("CREATE DATABASE shop");
      s.execute("CREATE DATABASE other");
    }
    try (Connection c = connect("shop");
        Statement s = c.createStatement()) {
      s.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)");
      s.execute("INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 100) g");
      s.execute(
          "CREATE TABLE orders (id bigint PRIMARY KEY, customer int REFERENCES customers,"
              + " payload text NOT NULL, note text)");
      s.execute(
          "INSERT INTO orders SELECT g, 1 + g % 100, md5(g::text), repeat('x', 300)"
              + " FROM generate_series(1, "
              + PRELOAD
              + ") g");
      s.execute("CREATE INDEX orders_customer ON orders (customer)");
      s.execute("ANALYZE");
    }
    repo = tmp.resolve("repo");
    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
  }

  @AfterAll
  void stopPostgres() throws Exception {
    if (dev == null) {
      return;
    }
    new ProcessBuilder("fsfreeze", "-u", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder(
            "runuser",
            "-u",
            "postgres",
            "--",
            BIN + "/pg_ctl",
            "-D",
            data.toString(),
            "-m",
            "immediate",
            "stop")
        .start()
        .waitFor(60, TimeUnit.SECONDS);
    new ProcessBuilder("umount", "-l", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder("losetup", "-d", dev).start().waitFor(30, TimeUnit.SECONDS);
    new ProcessBuilder("rm", "-rf", tmp.toString()).start().waitFor(60, TimeUnit.SECONDS);
  }

  static int freePort() throws IOException {
    try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  Connection connect(String db) throws SQLException {
    return DriverManager.getConnection(
        "jdbc:postgresql://127.0.0.1:" + port + "/" + db, "granule", PASSWORD);
  }

  String url(String db) {
    return "postgres://granule@127.0.0.1:" + port + "/" + db;
  }

  Granule.Result granule(String... args) throws Exception {
    return Granule.run(tmp, Map.of("PGPASSWORD", PASSWORD), args);
  }

  long scalar(String db, String sql) throws SQLException {
    try (Connection c = connect(db);
        Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  /** Commits one row at a time, ids counting up from PRELOAD + 1, until stopped. */
  final class Writer extends Thread {
    final AtomicBoolean stop = new AtomicBoolean();
    final AtomicLong committed = new AtomicLong(PRELOAD);
    volatile Exception failure;

    Writer() {
      setDaemon(true);
    }

    @Override
    public void run() {
      try (Connection c = connect("shop");
          var ps =
              c.prepareStatement(
                  "INSERT INTO orders VALUES (?, 1 + ? % 100, md5(?::text), 'written live')")) {
        while (!stop.get()) {
          long id = committed.get() + 1;
          ps.setLong(1, id);
          ps.setLong(2, id);
          ps.setString(3, Long.toString(id));
          ps.executeUpdate();
          committed.set(id);
        }
      } catch (SQLException e) {
        failure = e;
      }
    }
  }

  /** Rows of a restored table: a gap-free prefix 1..N of what was committed, none torn. */
  long checkPrefix(String table) throws SQLException {
    long count = scalar("shop", "SELECT count(*) FROM " + table);
    assertThat(scalar("shop", "SELECT min(id) FROM " + table)).isEqualTo(1);
    assertThat(scalar("shop", "SELECT max(id) FROM " + table)).isEqualTo(count);
    assertThat(scalar("shop", "SELECT count(*) FROM " + table + " WHERE payload <> md5(id::text)"))
        .isZero();
    return count;
  }

  boolean granuleSessionOpen() throws SQLException {
    return scalar(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'granule%'"
                + " AND pid <> pg_backend_pid()")
        > 0;
  }

  @Test
  @Order(1)
  void applicationConsistentBackupWithAWriterRestoresTheDroppedTable() throws Exception {
    Writer w = new Writer();
    w.start();
    Thread.sleep(500);
    long before = w.committed.get();
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "pg=" + dev,
            "--freeze",
            mnt.toString(),
            "--app",
            url("shop"),
            "--no-progress");
    long after = w.committed.get();
    w.stop.set(true);
    w.join(30_000);
    assertThat(w.failure).isNull();
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
    assertThat(r.out()).contains("application-consistent").contains("PostgreSQL");
    assertThat(r.out() + r.err()).doesNotContain(PASSWORD);
    assertThat(granuleSessionOpen()).as("backup connection closed").isFalse();

    Granule.Result cat = granule("catalog", "latest", "--repo", repo.toString());
    assertThat(cat.exitCode()).as(cat.err()).isZero();
    assertThat(cat.out()).contains("postgres:shop/public.orders").contains("table");
    Granule.Result find = granule("catalog", "--find", "orders", "--repo", repo.toString());
    assertThat(find.out()).contains("postgres:shop/public.orders");

    try (Connection c = connect("shop");
        Statement s = c.createStatement()) {
      s.execute("DROP TABLE orders");
    }
    Granule.Result rt =
        granule(
            "restore",
            "table",
            "latest",
            "postgres:shop/public.orders",
            "--to",
            url("shop"),
            "--as",
            "public.orders",
            "--repo",
            repo.toString());
    assertThat(rt.exitCode()).as(rt.out() + rt.err()).isZero();
    long rows = checkPrefix("orders");
    assertThat(rows).isBetween(before, after);
    assertThat(rt.out()).contains(rows + " rows");
    // restored with its primary key and index, writable again
    assertThat(scalar("shop", "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'"))
        .isGreaterThanOrEqualTo(2);
  }

  @Test
  @Order(2)
  void aCrashConsistentBackupRestoresThroughCrashRecovery() throws Exception {
    Writer w = new Writer();
    w.committed.set(scalar("shop", "SELECT max(id) FROM orders"));
    long before = w.committed.get();
    w.start();
    Thread.sleep(300);
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "pg=" + dev,
            "--freeze",
            mnt.toString(),
            "--no-progress",
            "--tag",
            "crash");
    long after = w.committed.get();
    w.stop.set(true);
    w.join(30_000);
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
    Granule.Result rt =
        granule(
            "restore",
            "table",
            "latest",
            "postgres:shop/public.orders",
            "--to",
            url("shop"),
            "--repo",
            repo.toString(),
            "--json");
    assertThat(rt.exitCode()).as(rt.out() + rt.err()).isZero();
    var o = new com.fasterxml.jackson.databind.ObjectMapper().readTree(rt.out());
    assertThat(o.get("consistency").asText()).isEqualTo("crash");
    String restoredAs = o.get("restoredAs").asText();
    assertThat(restoredAs).startsWith("granule_");
    long rows = checkPrefix(restoredAs);
    assertThat(rows).isBetween(before, after);
    assertThat(o.get("rows").asLong()).isEqualTo(rows);
    // the live table was not touched
    assertThat(scalar("shop", "SELECT max(id) FROM orders")).isGreaterThanOrEqualTo(rows);
  }

  @Test
  @Order(3)
  void badInputGetsClearErrorsAndExitCodes() throws Exception {
    Granule.Result r =
        granule(
            "restore",
            "table",
            "latest",
            "postgres:shop/public.nosuch",
            "--to",
            url("shop"),
            "--repo",
            repo.toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(4);
    assertThat(r.err()).contains("nosuch");

    // the table restored under the same name again: taken
    Granule.Result snaps = granule("snapshots", "--repo", repo.toString(), "--json");
    String first =
        new com.fasterxml.jackson.databind.ObjectMapper()
            .readTree(snaps.out())
            .get(0)
            .get("id")
            .asText();
    r =
        granule(
            "restore",
            "table",
            first,
            "postgres:shop/public.orders",
            "--to",
            url("shop"),
            "--as",
            "public.orders",
            "--repo",
            repo.toString());
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(7);
    assertThat(r.err()).contains("orders");

    r =
        granule(
            "restore",
            "table",
            first,
            "postgres:shop/public.orders",
            "--to",
            url("shop"),
            "--pg-bin",
            tmp.toString(),
            "--repo",
            repo.toString());
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(13);

    r =
        Granule.run(
            tmp,
            Map.of("PGPASSWORD", "wrong"),
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "pg=" + dev,
            "--app",
            url("shop"),
            "--no-progress");
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(8);
    assertThat(r.err()).contains("connect failed");

    r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "pg=" + dev,
            "--app",
            "postgres://granule@127.0.0.1:" + freePort() + "/shop",
            "--no-progress");
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(11);
  }

  @Test
  @Order(4)
  void aFailedFreezeEndsBackupMode() throws Exception {
    Granule.Result r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--disk",
            "pg=" + dev,
            "--freeze",
            mnt.toString(),
            "--freeze",
            tmp.resolve("missing").toString(),
            "--app",
            url("shop"),
            "--no-progress");
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(11);
    assertThat(r.err()).contains("unable to begin");
    assertThat(granuleSessionOpen()).isFalse();
    assertThat(Files.readString(log)).contains("aborting backup due to backend exiting");
  }

  @Test
  @Order(5)
  void aKilledBackupsConnectionDiesAndPostgresAbortsTheBackup() throws Exception {
    long aborts = countAborts();
    List<String> args =
        new ArrayList<>(
            List.of(
                "backup",
                "--repo",
                repo.toString(),
                "--disk",
                "pg=" + dev,
                "--app",
                url("shop"),
                "--no-progress"));
    ProcessBuilder pb = Granule.command(List.of(), args.toArray(String[]::new));
    pb.environment().put("PGPASSWORD", PASSWORD);
    Process p =
        pb.redirectErrorStream(true).redirectOutput(tmp.resolve("killed.txt").toFile()).start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    // Kill once backup mode is on (pg_backup_start has returned on the holding connection), not
    // merely once the plugin has connected: killed before that, there is no backup to abort.
    while (scalar(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'granule%'"
                + " AND query LIKE '%pg_backup_start%' AND state = 'idle'")
        == 0) {
      assertThat(System.nanoTime()).as("the backup never started").isLessThan(deadline);
      Thread.sleep(5);
    }
    p.destroyForcibly();
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (granuleSessionOpen() || countAborts() == aborts) {
      assertThat(System.nanoTime())
          .as("PostgreSQL did not abort the backup: " + Files.readString(log))
          .isLessThan(deadline);
      Thread.sleep(50);
    }
  }

  long countAborts() throws IOException {
    return Files.readString(log, StandardCharsets.UTF_8)
        .lines()
        .filter(l -> l.contains("aborting backup due to backend exiting"))
        .count();
  }

  @Test
  @Order(6)
  void theRestApiListsTheCatalogAndRestoresATableAsAJob() throws Exception {
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("server"), List.of(), Map.of("PGPASSWORD", PASSWORD))) {
      Api api = new Api(server.url);
      String r = java.net.URLEncoder.encode(repo.toString(), StandardCharsets.UTF_8);
      Api.Response cat = api.get("/api/catalog?repo=" + r + "&find=orders&kind=table");
      assertThat(cat.status()).as(cat.body().toString()).isEqualTo(200);
      assertThat(cat.body().toString()).contains("postgres:shop/public.orders");
      assertThat(api.get("/api/catalog?repo=" + r).status()).isEqualTo(400);

      Granule.Result snaps = granule("snapshots", "--repo", repo.toString(), "--json");
      String first = Api.JSON.readTree(snaps.out()).get(0).get("id").asText();
      String body =
          Api.JSON.writeValueAsString(
              Map.of(
                  "repo",
                  repo.toString(),
                  "snapshot",
                  first,
                  "object",
                  "postgres:shop/public.orders",
                  "to",
                  url("shop"),
                  "as",
                  "rest.orders"));
      Api.Response job = api.post("/api/restores/table", body);
      assertThat(job.status()).as(job.body().toString()).isEqualTo(202);
      String id = job.body().get("id").asText();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      com.fasterxml.jackson.databind.JsonNode j;
      while (true) {
        j = api.get("/api/jobs/" + id).body();
        String state = j.get("state").asText();
        if (state.equals("SUCCEEDED") || state.equals("FAILED")) {
          break;
        }
        assertThat(System.nanoTime()).as("the restore job did not finish").isLessThan(deadline);
        Thread.sleep(100);
      }
      assertThat(j.get("state").asText()).as(j.toString()).isEqualTo("SUCCEEDED");
      long rows = checkPrefix("rest.orders");
      assertThat(j.get("result").get("rows").asLong()).isEqualTo(rows);
      assertThat(j.get("result").get("phases").has("load")).isTrue();

      // the same name again: the job fails with the target exit code
      job = api.post("/api/restores/table", body);
      id = job.body().get("id").asText();
      deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (true) {
        j = api.get("/api/jobs/" + id).body();
        if (j.get("state").asText().equals("FAILED")
            || j.get("state").asText().equals("SUCCEEDED")) {
          break;
        }
        assertThat(System.nanoTime()).isLessThan(deadline);
        Thread.sleep(100);
      }
      assertThat(j.get("state").asText()).isEqualTo("FAILED");
      assertThat(j.get("exitCode").asInt()).isEqualTo(7);
    }
  }
}
