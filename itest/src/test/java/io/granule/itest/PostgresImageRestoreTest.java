package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A table restored from a raw ext4 image file (no mount, no freeze): the image is made with {@code
 * mkfs.ext4 -d} from a crashed PostgreSQL 15 cluster's directory tree, backed up with {@code
 * granule backup --disk}, and {@code granule restore table} finds the data directory by searching
 * the image's filesystem (the snapshot has no application record), starts a staging server that
 * runs crash recovery, and loads the table into a live server. The checksum it reports is the one
 * the documented SQL gives on the source before the crash.
 */
class PostgresImageRestoreTest {
  static final String BIN = "/usr/lib/postgresql/15/bin";
  static final String PASSWORD = "image pw";

  /** The checksum as documented for users (plugin-postgres README). */
  static final String CHECKSUM_SQL =
      "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric),"
          + " 0)::text FROM %s AS t";

  /** The session settings the documented checksum is defined under. */
  static final String CHECKSUM_SETTINGS =
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
          + " SET extra_float_digits = 1; SET bytea_output = 'hex'";

  static String sh(String... cmd) throws Exception {
    return FreezeTest.sh(cmd);
  }

  @Test
  void restoresATableFromAnExt4ImageOfACrashedCluster() throws Exception {
    boolean root = "root".equals(System.getProperty("user.name"));
    String why = "needs root, mkfs.ext4 and PostgreSQL 15 in " + BIN;
    if (!root
        || !Files.isExecutable(Path.of(BIN, "postgres"))
        || !Files.isExecutable(Path.of("/usr/sbin/mkfs.ext4"))) {
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError("PostgresImageRestoreTest " + why);
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
    Path tmp = Files.createTempDirectory("granule-pg-image");
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path tree = tmp.resolve("tree");
    Path data = tree.resolve("srv/pg/15/main");
    Path sock = Files.createDirectories(tmp.resolve("sock"));
    Path log = tmp.resolve("pg.log");
    Path pw = tmp.resolve("pw");
    int port = PostgresAppTest.freePort();
    try {
      Files.createDirectories(data);
      Files.writeString(pw, PASSWORD + "\n");
      Files.writeString(log, "");
      sh(
          "chown",
          "-R",
          "postgres:postgres",
          tree.toString(),
          sock.toString(),
          pw.toString(),
          log.toString());
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
      String opts = "-p " + port + " -k " + sock + " -c listen_addresses=127.0.0.1";
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
          opts,
          "start");
      String url = "postgres://granule@127.0.0.1:" + port + "/app";
      try (Connection c = connect(port, "postgres");
          Statement s = c.createStatement()) {
        s.execute("CREATE DATABASE app");
      }
      String expected;
      long expectedRows;
      try (Connection c = connect(port, "app");
          Statement s = c.createStatement()) {
        s.execute(
            "CREATE TABLE items (id int PRIMARY KEY, v text, at timestamptz DEFAULT now(),"
                + " price float8, blob bytea)");
        s.execute(
            "INSERT INTO items SELECT g, md5(g::text), now(), g / 3.0, decode(md5(g::text), 'hex')"
                + " FROM generate_series(1, 20000) g");
        s.execute(
            "UPDATE items SET v = (SELECT string_agg(md5(i::text), '') FROM generate_series(1,"
                + " 300) i) WHERE id % 1000 = 0");
        s.execute("DELETE FROM items WHERE id % 7 = 0");
        s.execute("CREATE TABLE refs (id int PRIMARY KEY, item int REFERENCES items)");
        s.execute("INSERT INTO refs VALUES (1, 1)");
        s.execute(CHECKSUM_SETTINGS);
        try (ResultSet rs =
            s.executeQuery(String.format(java.util.Locale.ROOT, CHECKSUM_SQL, "items"))) {
          rs.next();
          expectedRows = rs.getLong(1);
          expected = "rowsum64:" + rs.getString(2);
        }
      }
      // A crash: no shutdown checkpoint, so the copy needs WAL replay.
      sh(
          "runuser",
          "-u",
          "postgres",
          "--",
          BIN + "/pg_ctl",
          "-D",
          data.toString(),
          "-m",
          "immediate",
          "-w",
          "stop");
      Path img = tmp.resolve("pg.img");
      sh("mkfs.ext4", "-q", "-F", "-d", tree.toString(), img.toString(), "256M");
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
          opts,
          "start");

      Path repo = tmp.resolve("repo");
      Map<String, String> env = Map.of("PGPASSWORD", PASSWORD);
      Granule.Result r = Granule.run(tmp, env, "init", "--repo", repo.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      r =
          Granule.run(
              tmp,
              env,
              "backup",
              "--repo",
              repo.toString(),
              "--disk",
              "pg=" + img,
              "--no-progress");
      assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
      r =
          Granule.run(
              tmp,
              env,
              "restore",
              "table",
              "latest",
              "postgres:app/public.items",
              "--to",
              url,
              "--repo",
              repo.toString(),
              "--json");
      assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
      JsonNode o = new ObjectMapper().readTree(r.out());
      assertThat(o.get("consistency").asText()).isEqualTo("crash");
      String restoredAs = o.get("restoredAs").asText();
      assertThat(restoredAs).matches("granule_[0-9a-f]{8}\\.items");
      assertThat(o.get("rows").asLong()).isEqualTo(expectedRows);
      assertThat(o.get("checksum").asText()).isEqualTo(expected);
      try (Connection c = connect(port, "app");
          Statement s = c.createStatement()) {
        s.execute(CHECKSUM_SETTINGS);
        try (ResultSet rs =
            s.executeQuery(String.format(java.util.Locale.ROOT, CHECKSUM_SQL, restoredAs))) {
          rs.next();
          assertThat(rs.getLong(1)).isEqualTo(expectedRows);
          assertThat("rowsum64:" + rs.getString(2)).isEqualTo(expected);
        }
      }
    } finally {
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
      new ProcessBuilder("rm", "-rf", tmp.toString()).start().waitFor(60, TimeUnit.SECONDS);
    }
  }

  static Connection connect(int port, String db) throws SQLException {
    return DriverManager.getConnection(
        "jdbc:postgresql://127.0.0.1:" + port + "/" + db, "granule", PASSWORD);
  }
}
