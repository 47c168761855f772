package io.granule.plugin.postgres.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.Quiesce;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Connect, quiesce and catalog against a real PostgreSQL 15 server. */
class PostgresSessionTest {
  private static PgCluster pg;
  private final PostgresPlugin plugin = new PostgresPlugin();

  @BeforeAll
  static void startServer() throws Exception {
    // full_page_writes off makes backup mode observable: only backup mode then forces full-page
    // images into the WAL (see backupModeActive).
    pg = PgCluster.start(Map.of("full_page_writes", "off"));
    // About 5 KiB of rows on one page: a full-page image of it is that large (images leave out
    // the free space in the middle of a page).
    pg.sql(
        "postgres",
        "CREATE TABLE probe (id int PRIMARY KEY, v int, filler text);"
            + " INSERT INTO probe SELECT g, 0, repeat('f', 60) FROM generate_series(1, 60) g");
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (pg != null) {
      pg.close();
    }
  }

  /**
   * True if the server is in backup mode: with full_page_writes off, only a running backup makes
   * the first change of a page after a checkpoint write the whole page (8 KiB) to the WAL.
   */
  static boolean backupModeActive() throws Exception {
    try (Connection c = pg.connect("postgres");
        Statement st = c.createStatement()) {
      st.execute("CHECKPOINT");
      String before = PostgresSession.query(c, "SELECT pg_current_wal_insert_lsn()::text");
      st.execute("UPDATE probe SET v = v + 1 WHERE id = 1");
      try (ResultSet rs =
          st.executeQuery(
              "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '" + before + "')")) {
        rs.next();
        return rs.getLong(1) > 2000;
      }
    }
  }

  @Test
  void connectDescribesTheInstance() throws Exception {
    try (ApplicationSession s = plugin.connect(pg.url("postgres"))) {
      ApplicationInfo info = s.info();
      assertThat(info.instance()).isEqualTo("127.0.0.1-" + pg.port());
      assertThat(info.product()).isEqualTo("PostgreSQL");
      assertThat(info.version()).startsWith("15.");
      assertThat(info.dataPaths()).containsExactly(pg.dataDir().toString());
      assertThat(info.attributes())
          .containsEntry("port", Integer.toString(pg.port()))
          .containsEntry("data_directory", pg.dataDir().toString())
          .containsKey("system_identifier");
      assertThat(info.attributes().get("server_version_num")).startsWith("15");
    }
    assertThat(plugin.handles(URI.create("postgresql://h/db"))).isTrue();
    assertThat(plugin.handles(URI.create("mysql://h/db"))).isFalse();
    assertThat(plugin.name()).isEqualTo("postgres");
  }

  @Test
  void quiesceHoldsBackupModeUntilRelease() throws Exception {
    assertThat(backupModeActive()).as("before quiesce").isFalse();
    try (ApplicationSession s = plugin.connect(pg.url("postgres"));
        Quiesce q = s.quiesce(Duration.ofMinutes(5))) {
      assertThat(backupModeActive()).as("while quiesced").isTrue();
      q.check();
      pg.sql("postgres", "SELECT pg_switch_wal()"); // the capture then spans several segments
      Captured captured = q.release();
      Captured.CapturedFile firstWal = captured.files().get(1);
      try (InputStream in = firstWal.content().open()) {
        // Right after release the live segment is still there (the next checkpoint may recycle
        // it: that is why release copies it).
        assertThat(in.readAllBytes())
            .isEqualTo(Files.readAllBytes(pg.dataDir().resolve(firstWal.name())));
      }
      assertThat(backupModeActive()).as("after release").isFalse();
      assertThatThrownBy(q::check).isInstanceOf(ApplicationException.class);
      assertThatThrownBy(q::release).hasMessageContaining("already released");

      Map<String, String> m = captured.metadata();
      assertThat(m.get("labelfile")).startsWith("START WAL LOCATION: " + m.get("start_lsn"));
      assertThat(m).containsKeys("stop_lsn", "timeline", "start_wal", "stop_wal");
      assertThat(m).containsEntry("database-oid.postgres", "5");
      List<String> names = captured.files().stream().map(Captured.CapturedFile::name).toList();
      List<String> expectedWal =
          BackupHold.segments(m.get("start_wal"), m.get("stop_wal"), 16 << 20).stream()
              .map(n -> "pg_wal/" + n)
              .toList();
      assertThat(expectedWal).hasSizeGreaterThanOrEqualTo(2);
      assertThat(names).containsExactlyElementsOf(concat(List.of("backup_label"), expectedWal));
      Map<String, Captured.CapturedFile> byName =
          captured.files().stream()
              .collect(Collectors.toMap(Captured.CapturedFile::name, Function.identity()));
      try (InputStream in = byName.get("backup_label").content().open()) {
        assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
            .isEqualTo(m.get("labelfile"));
      }
      for (String wal : expectedWal) {
        try (InputStream in = byName.get(wal).content().open()) {
          assertThat(in.readAllBytes()).hasSize(16 << 20);
        }
      }
    }
  }

  @Test
  void closeWithoutReleaseEndsBackupMode() throws Exception {
    try (ApplicationSession s = plugin.connect(pg.url("postgres"))) {
      Quiesce q = s.quiesce(Duration.ofMinutes(5));
      assertThat(backupModeActive()).isTrue();
      q.close();
      q.close(); // idempotent
      assertThat(backupModeActive()).isFalse();
      assertThatThrownBy(q::check).hasMessageContaining("closed");
      assertThatThrownBy(q::release).isInstanceOf(ApplicationException.class);
    }
  }

  @Test
  void closingTheSessionEndsBackupMode() throws Exception {
    ApplicationSession s = plugin.connect(pg.url("postgres"));
    Quiesce q = s.quiesce(Duration.ofMinutes(5));
    assertThat(backupModeActive()).isTrue();
    s.close();
    s.close();
    assertThat(backupModeActive()).isFalse();
    assertThatThrownBy(q::release).isInstanceOf(ApplicationException.class);
    q.close();
  }

  @Test
  void maxHoldEndsBackupMode() throws Exception {
    try (ApplicationSession s = plugin.connect(pg.url("postgres"));
        Quiesce q = s.quiesce(Duration.ofMillis(300))) {
      long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      ApplicationException ended = null;
      while (ended == null && System.nanoTime() < deadline) {
        try {
          q.check();
          Thread.onSpinWait();
        } catch (ApplicationException e) {
          ended = e;
        }
      }
      assertThat(ended).isNotNull();
      assertThat(ended.reason()).isEqualTo(Reason.FAILED);
      assertThat(ended.getMessage()).contains("maximum hold time PT0.3S passed");
      assertThatThrownBy(q::release).hasMessageContaining("maximum hold time");
      assertThat(backupModeActive()).isFalse();
    }
    assertThat(pg.log()).contains("aborting backup due to backend exiting before pg_backup_stop");
  }

  @Test
  void catalogCoversEveryDatabase() throws Exception {
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql("postgres", "CREATE DATABASE crm");
    pg.sql(
        "shop",
        "CREATE SCHEMA sales;"
            + " CREATE TABLE sales.customers (id serial PRIMARY KEY, name text);"
            + " INSERT INTO sales.customers (name) SELECT (SELECT string_agg(md5(random()::text"
            + " || g || i), '') FROM generate_series(1, 300) i) FROM generate_series(1, 100) g;"
            + " CREATE TABLE sales.events (id bigint, at date, payload text) PARTITION BY RANGE (at);"
            + " CREATE TABLE sales.events_2025 PARTITION OF sales.events"
            + " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
            + " CREATE INDEX events_at ON sales.events (at);"
            + " CREATE VIEW sales.v AS SELECT id FROM sales.customers;"
            + " ANALYZE");
    pg.sql("crm", "CREATE TABLE notes (id int PRIMARY KEY, body text)");
    pg.sql("shop", "CHECKPOINT");
    List<CatalogEntry> catalog;
    try (ApplicationSession s = plugin.connect(pg.url("postgres"))) {
      catalog = s.catalog();
    }
    Map<String, CatalogEntry> byId =
        catalog.stream().collect(Collectors.toMap(CatalogEntry::id, Function.identity()));
    long shopOid = pg.queryLong("postgres", "SELECT oid FROM pg_database WHERE datname = 'shop'");

    assertThat(byId.get("shop").kind()).isEqualTo("database");
    assertThat(byId.get("shop").size()).isPositive();
    assertThat(byId.get("shop").attributes()).containsEntry("oid", Long.toString(shopOid));
    assertThat(byId).containsKeys("postgres", "crm", "crm/public", "crm/public.notes");
    assertThat(byId).doesNotContainKeys("template0", "template1");
    assertThat(byId.keySet())
        .noneMatch(id -> id.contains("/pg_catalog.") || id.contains("/information_schema"));

    assertThat(byId.get("shop/sales").kind()).isEqualTo("schema");
    assertThat(byId.get("shop/sales").parent()).isEqualTo("shop");

    CatalogEntry customers = byId.get("shop/sales.customers");
    assertThat(customers.kind()).isEqualTo("table");
    assertThat(customers.name()).isEqualTo("sales.customers");
    assertThat(customers.parent()).isEqualTo("shop/sales");
    assertThat(customers.rows()).isEqualTo(100);
    assertThat(customers.size())
        .isEqualTo(pg.queryLong("shop", "SELECT pg_total_relation_size('sales.customers')"));
    assertThat(customers.attributes())
        .containsEntry("relkind", "r")
        .containsEntry("tablespace", "pg_default")
        .containsEntry("database-oid", Long.toString(shopOid));
    // Its own file, its TOAST table's and TOAST index's, its primary key's: all real files.
    assertThat(customers.files()).hasSize(4);
    assertThat(customers.files()).allMatch(f -> f.startsWith("base/" + shopOid + "/"));
    assertThat(customers.files()).allMatch(f -> Files.isRegularFile(pg.dataDir().resolve(f)));

    CatalogEntry toast =
        catalog.stream()
            .filter(e -> e.kind().equals("toast") && e.parent().equals("shop/sales.customers"))
            .findFirst()
            .orElseThrow();
    assertThat(toast.id()).startsWith("shop/pg_toast.pg_toast_");
    assertThat(toast.size()).isGreaterThan(100 * 8000L); // the names were moved out of line
    assertThat(byId.get("shop/sales.customers_pkey").kind()).isEqualTo("index");
    assertThat(byId.get("shop/sales.customers_pkey").parent()).isEqualTo("shop/sales.customers");
    assertThat(byId.get("shop/sales.customers_id_seq").kind()).isEqualTo("sequence");
    assertThat(byId.get("shop/sales.events").kind()).isEqualTo("partitioned-table");
    assertThat(byId.get("shop/sales.events").files()).isEmpty();
    assertThat(byId.get("shop/sales.events_2025").kind()).isEqualTo("table");
    assertThat(byId.get("shop/sales.events_at").kind()).isEqualTo("index");
    assertThat(byId.get("shop/sales.events_at").parent()).isEqualTo("shop/sales.events");
    assertThat(byId.get("shop/sales.v").kind()).isEqualTo("view");
    // Only the TOAST tables of user tables: none of the system catalogs'.
    assertThat(catalog.stream().filter(e -> e.kind().equals("toast")).map(CatalogEntry::parent))
        .allMatch(p -> byId.containsKey(p) && !p.contains("pg_catalog"));
  }

  @Test
  void wrongPasswordIsAuth() {
    URI url = URI.create("postgres://postgres:wrong@127.0.0.1:" + pg.port() + "/postgres");
    assertThatThrownBy(() -> plugin.connect(url))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.AUTH))
        .hasMessageContaining("credentials refused")
        .hasMessageNotContaining("wrong");
  }

  @Test
  void nothingListeningIsUnreachable() throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    URI url = URI.create("postgres://postgres@127.0.0.1:" + port + "/postgres");
    assertThatThrownBy(() -> plugin.connect(url))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNREACHABLE))
        .hasMessageContaining("nothing answers");
    assertThatThrownBy(() -> plugin.connect(URI.create("postgres://u@no-such-host.invalid/db")))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNREACHABLE));
  }

  @Test
  void unknownDatabaseIsNotFound() {
    URI url =
        URI.create(
            "postgres://postgres:" + PgCluster.PASSWORD + "@127.0.0.1:" + pg.port() + "/nosuchdb");
    assertThatThrownBy(() -> plugin.connect(url))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.NOT_FOUND));
  }

  private static <T> List<T> concat(List<T> a, List<T> b) {
    return java.util.stream.Stream.concat(a.stream(), b.stream()).toList();
  }
}
