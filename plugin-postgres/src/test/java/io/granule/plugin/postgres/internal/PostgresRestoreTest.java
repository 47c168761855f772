package io.granule.plugin.postgres.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.Quiesce;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestReporter;

/**
 * Single-table restore for real: a copy of a live cluster's data directory taken in backup mode
 * while writers insert (into the restored database and another one), restored through a staging
 * PostgreSQL 15 into the live cluster, compared row for row (by checksum) with the source.
 */
class PostgresRestoreTest {
  private static final String SNAPSHOT_ID =
      "5eed1234abcdef00112233445566778899aabbccddeeff00112233445566778";

  private static PgCluster pg;
  private static Path work;
  private static Path volume;
  private static ApplicationRecord record;
  private static Map<String, byte[]> capturedFiles;
  private static long committedBeforeQuiesce;
  private static long committedAfterRelease;

  private final PostgresPlugin plugin = new PostgresPlugin();

  @BeforeAll
  static void takeSnapshot() throws Exception {
    pg = PgCluster.start(Map.of());
    work = Files.createTempDirectory("granule-pgrestore-");
    Files.setPosixFilePermissions(work, PosixFilePermissions.fromString("rwxr-xr-x"));
    volume = Files.createDirectories(work.resolve("volume"));
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql("postgres", "CREATE DATABASE other");
    pg.sql(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);"
            + " INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 1000) g;"
            + " CREATE TABLE orders (id bigserial PRIMARY KEY,"
            + " customer_id int NOT NULL REFERENCES customers,"
            + " parent_id bigint REFERENCES orders, amount numeric(12, 2),"
            + " at timestamptz NOT NULL DEFAULT now(), note text);"
            + " CREATE INDEX orders_customer ON orders (customer_id);"
            + " INSERT INTO orders (customer_id, amount, note)"
            + " SELECT 1 + g % 1000, g * 1.25, CASE WHEN g % 100 = 0 THEN"
            + " (SELECT string_agg(md5(i::text || g), '') FROM generate_series(1, 400) i)"
            + " ELSE 'order ' || g END FROM generate_series(1, 5000) g");
    pg.sql(
        "shop",
        "CREATE TABLE events (id int, at date NOT NULL, what text) PARTITION BY RANGE (at);"
            + " CREATE TABLE events_2025 PARTITION OF events"
            + " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
            + " CREATE TABLE events_2026 PARTITION OF events"
            + " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
            + " CREATE INDEX events_at ON events (at);"
            + " INSERT INTO events SELECT g, date '2025-06-01' + g % 400, 'e' || g"
            + " FROM generate_series(1, 3000) g");
    pg.sql("other", "CREATE TABLE log (id bigserial PRIMARY KEY, line text)");

    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong inserted = new AtomicLong();
    List<Thread> writers = new ArrayList<>();
    writers.add(
        writer(
            "shop",
            "INSERT INTO orders (customer_id, parent_id, amount, note) VALUES"
                + " (1 + (random() * 999)::int, 1, 9.99, repeat(md5(random()::text), 1 + (random()"
                + " * 300)::int))",
            stop,
            inserted));
    writers.add(
        writer(
            "other",
            "INSERT INTO log (line) SELECT repeat('x', 200) FROM generate_series(1, 20)",
            stop,
            new AtomicLong()));
    writers.forEach(Thread::start);
    try {
      waitFor(() -> inserted.get() > 200);
      committedBeforeQuiesce = pg.queryLong("shop", "SELECT max(id) FROM orders");
      try (ApplicationSession s = new PostgresPlugin().connect(pg.url("shop"))) {
        ApplicationInfo info = s.info();
        Captured captured;
        try (Quiesce q = s.quiesce(Duration.ofMinutes(5))) {
          // The "snapshot": a plain file copy of the live data directory, torn pages and all.
          copyTree(pg.dataDir(), volume.resolve("data"));
          q.check();
          captured = q.release();
          capturedFiles = new HashMap<>();
          for (Captured.CapturedFile f : captured.files()) {
            try (InputStream in = f.content().open()) {
              capturedFiles.put(f.name(), in.readAllBytes());
            }
          }
        }
        record =
            new ApplicationRecord(
                "postgres",
                info.instance(),
                "postgres://postgres@127.0.0.1:" + pg.port() + "/shop",
                info.product(),
                info.version(),
                "application",
                info.dataPaths(),
                info.attributes(),
                captured.metadata(),
                captured.files().stream().map(Captured.CapturedFile::name).toList());
      }
      committedAfterRelease = pg.queryLong("shop", "SELECT max(id) FROM orders");
      long target = inserted.get() + 100;
      waitFor(() -> inserted.get() > target);
    } finally {
      stop.set(true);
      for (Thread t : writers) {
        t.join(30_000);
      }
    }
  }

  @AfterAll
  static void cleanUp() throws IOException {
    if (pg != null) {
      pg.close();
    }
    FileTrees.delete(work);
  }

  private static Thread writer(String db, String sql, AtomicBoolean stop, AtomicLong count) {
    Thread t =
        new Thread(
            () -> {
              try (Connection c = pg.connect(db);
                  Statement st = c.createStatement()) {
                while (!stop.get()) {
                  st.execute(sql);
                  count.incrementAndGet();
                }
              } catch (SQLException e) {
                throw new IllegalStateException(e);
              }
            },
            "writer " + db);
    t.setDaemon(true);
    return t;
  }

  interface Condition {
    boolean holds() throws Exception;
  }

  private static void waitFor(Condition c) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (!c.holds()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not met within 60 s");
      }
      Thread.sleep(20);
    }
  }

  static void copyTree(Path from, Path to) throws IOException {
    try (Stream<Path> s = Files.walk(from)) {
      for (Path p : s.toList()) {
        Path t = to.resolve(from.relativize(p).toString());
        try {
          if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
            Files.createDirectories(t);
          } else {
            Files.copy(p, t, StandardCopyOption.COPY_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
          }
        } catch (java.nio.file.NoSuchFileException e) {
          // Removed while copying (a temporary file): a filesystem snapshot would not see it
          // either way.
        }
      }
    }
  }

  private DirectorySnapshotView snapshot() {
    return new DirectorySnapshotView(SNAPSHOT_ID, List.of(volume), capturedFiles);
  }

  private Map<String, String> options() throws IOException {
    Path staging = Files.createDirectories(work.resolve("staging"));
    return Map.of("staging-dir", staging.toString());
  }

  private static ObjectRestoreRequest request(
      String id, URI target, String as, boolean replace, Map<String, String> options) {
    return new ObjectRestoreRequest(id, target, as, replace, options);
  }

  /** Rows and checksum of the source's orders as they were at the snapshot: ids up to {@code n}. */
  private static Checksum.Value sourceOrders(String table, long n) throws SQLException {
    try (Connection c = pg.connect("shop")) {
      return Checksum.compute(c, table, "id <= " + n);
    }
  }

  @Test
  void restoresATableAsOfTheSnapshotUnderANewSchema(TestReporter reporter) throws Exception {
    List<String> seen = new ArrayList<>();
    ObjectRestoreReport report =
        plugin.restore(
            request("shop/public.orders", pg.url("shop"), null, false, options()),
            snapshot(),
            record,
            (phase, detail) -> seen.add(phase));
    reporter.publishEntry("phases", report.phases().toString());
    // Kept next to the build's other outputs, for the timings quoted in the design notes.
    Files.writeString(
        Path.of("target", "restore-phases.txt"),
        report.phases() + " rows=" + report.rows() + "\n",
        java.nio.charset.StandardCharsets.UTF_8);

    assertThat(report.restoredAs()).isEqualTo("granule_5eed1234.orders");
    assertThat(seen).containsExactly("check", "locate", "extract", "staging start", "dump", "load");
    assertThat(report.phases().keySet()).containsExactlyElementsOf(seen);
    long n = report.rows();
    // Consistent: exactly the rows committed up to a point between quiesce and release.
    assertThat(n).isBetween(committedBeforeQuiesce, committedAfterRelease);
    assertThat(pg.queryLong("shop", "SELECT max(id) FROM granule_5eed1234.orders")).isEqualTo(n);
    Checksum.Value expected = sourceOrders("public.orders", n);
    assertThat(expected.rows()).isEqualTo(n);
    assertThat(report.checksum()).isEqualTo(expected.checksum());

    // Foreign key to customers (not restored) left out; the self-reference and the indexes kept.
    assertThat(report.notes()).anyMatch(s -> s.contains("orders_customer_id_fkey left out"));
    assertThat(report.notes()).anyMatch(s -> s.contains("only database shop"));
    assertThat(
            pg.queryLong(
                "shop",
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'granule_5eed1234.orders'::regclass"
                    + " AND contype = 'f'"))
        .isEqualTo(1);
    assertThat(
            pg.queryLong(
                "shop",
                "SELECT count(*) FROM pg_indexes WHERE schemaname = 'granule_5eed1234'"
                    + " AND tablename = 'orders'"))
        .isEqualTo(2);
    assertStagingCleanedUp();

    // The same again: the name is taken now.
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.orders", pg.url("shop"), null, false, options()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.TARGET_EXISTS))
        .hasMessageContaining("granule_5eed1234.orders already exists");
  }

  @Test
  void replaceSwapsTheLiveTableInOneTransaction() throws Exception {
    pg.sql("shop", "CREATE TABLE orders_before_replace AS SELECT * FROM orders");
    ObjectRestoreReport report =
        plugin.restore(
            request("shop/public.orders", pg.url("shop"), null, true, options()),
            snapshot(),
            record,
            null);
    assertThat(report.restoredAs()).isEqualTo("public.orders");
    assertThat(report.notes()).anyMatch(s -> s.contains("replaced the live table public.orders"));
    long n = report.rows();
    assertThat(n).isBetween(committedBeforeQuiesce, committedAfterRelease);
    assertThat(pg.queryLong("shop", "SELECT count(*) FROM public.orders")).isEqualTo(n);
    assertThat(report.checksum())
        .isEqualTo(sourceOrders("public.orders_before_replace", n).checksum());
    try (Connection c = pg.connect("shop")) {
      assertThat(Checksum.compute(c, "public.orders", null).checksum())
          .isEqualTo(report.checksum());
    }
    assertThat(
            pg.queryLong(
                "shop", "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'granule_restore%'"))
        .isZero();
    assertStagingCleanedUp();
  }

  @Test
  void restoresNextToTheLiveTableRenamingWhatClashes() throws Exception {
    ObjectRestoreReport report =
        plugin.restore(
            request(
                "shop/public.customers", pg.url("shop"), "public.customers_copy", false, options()),
            snapshot(),
            record,
            null);
    assertThat(report.restoredAs()).isEqualTo("public.customers_copy");
    assertThat(report.notes())
        .contains(
            "index customers_pkey restored as customers_copy_customers_pkey: the name is taken in"
                + " schema public");
    assertThat(report.rows()).isEqualTo(1000);
    try (Connection c = pg.connect("shop")) {
      assertThat(report.checksum())
          .isEqualTo(Checksum.compute(c, "public.customers", null).checksum());
    }
  }

  @Test
  void restoresAPartitionedTableWithItsPartitions() throws Exception {
    ObjectRestoreReport report =
        plugin.restore(
            request("shop/public.events", pg.url("shop"), "parts.events", false, options()),
            snapshot(),
            record,
            null);
    assertThat(report.restoredAs()).isEqualTo("parts.events");
    assertThat(report.rows()).isEqualTo(3000);
    try (Connection c = pg.connect("shop")) {
      assertThat(report.checksum())
          .isEqualTo(Checksum.compute(c, "public.events", null).checksum());
    }
    assertThat(
            pg.queryLong(
                "shop",
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    + " WHERE i.inhparent = 'parts.events'::regclass AND c.relkind = 'r'"
                    + " AND c.relnamespace = 'parts'::regnamespace"))
        .isEqualTo(2);
    assertThat(pg.queryLong("shop", "SELECT count(*) FROM parts.events_2026")).isPositive();
  }

  @Test
  void replaceRefusesATableOthersDependOn() throws Exception {
    long before = pg.queryLong("shop", "SELECT count(*) FROM customers");
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.customers", pg.url("shop"), null, true, options()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.FAILED))
        .hasMessageContaining("cannot replace public.customers: other objects depend on it");
    assertThat(pg.queryLong("shop", "SELECT count(*) FROM customers")).isEqualTo(before);
    assertThat(
            pg.queryLong(
                "shop", "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'granule_restore%'"))
        .isZero();
    assertStagingCleanedUp();
  }

  @Test
  void unknownTableIsNotFound() throws Exception {
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.nosuch", pg.url("shop"), "x.y", false, options()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.NOT_FOUND))
        .hasMessageContaining("table 'shop/public.nosuch' is not in the snapshot");
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("nosuchdb/public.t", pg.url("shop"), "x.y", false, options()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.NOT_FOUND))
        .hasMessageContaining("database 'nosuchdb' is not in snapshot");
    assertStagingCleanedUp();
  }

  @Test
  void takenNameIsTargetExists() throws Exception {
    pg.sql("shop", "CREATE SCHEMA IF NOT EXISTS keep; CREATE TABLE IF NOT EXISTS keep.t (i int)");
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.orders", pg.url("shop"), "keep.t", false, options()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.TARGET_EXISTS))
        .hasMessage(
            "postgres postgres://postgres@127.0.0.1:"
                + pg.port()
                + "/shop: keep.t already exists; restore under another name (--as SCHEMA.TABLE)"
                + " or replace it (--replace)");
  }

  @Test
  void missingBinariesAreMissingTool() throws Exception {
    Path empty = Files.createDirectories(work.resolve("empty-bin"));
    Map<String, String> options = new HashMap<>(options());
    options.put("pg-bin", empty.toString());
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.orders", pg.url("shop"), "a.b", false, options),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.MISSING_TOOL))
        .hasMessageStartingWith("PostgreSQL 15 server binaries not found (looked in " + empty)
        .hasMessageContaining("install postgresql-15 or pass the option pg-bin=DIR");
  }

  @Test
  void badTargetCredentialsAndAddresses() {
    URI wrong = URI.create("postgres://postgres:nope@127.0.0.1:" + pg.port() + "/shop");
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.orders", wrong, null, false, Map.of()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.AUTH))
        .hasMessageNotContaining("nope");
    URI nowhere = URI.create("postgres://postgres@no-such-host.invalid:5432/shop");
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.orders", nowhere, null, false, Map.of()),
                    snapshot(),
                    record,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNREACHABLE));
  }

  @Test
  void snapshotWithoutDataIsNoData() throws Exception {
    Path empty = Files.createDirectories(work.resolve("empty-volume/some/dir"));
    DirectorySnapshotView view =
        new DirectorySnapshotView(SNAPSHOT_ID, List.of(empty.getParent().getParent()), Map.of());
    assertThatThrownBy(
            () ->
                plugin.restore(
                    request("shop/public.orders", pg.url("shop"), "n.d", false, options()),
                    view,
                    null,
                    null))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.NO_DATA))
        .hasMessageContaining("holds no PostgreSQL data directory");
  }

  @Test
  void crashConsistentCopyRecoversOnItsOwn() throws Exception {
    Path vol = Files.createDirectories(work.resolve("crash-volume"));
    long rows;
    try (PgCluster crashed = PgCluster.start(Map.of())) {
      crashed.sql("postgres", "CREATE DATABASE app; ");
      crashed.sql(
          "app",
          "CREATE TABLE t (id int PRIMARY KEY, v text);"
              + " INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;"
              + " DELETE FROM t WHERE id % 7 = 0; UPDATE t SET v = 'u' WHERE id % 11 = 0");
      rows = crashed.queryLong("app", "SELECT count(*) FROM t");
      Checksum.Value expected;
      try (Connection c = crashed.connect("app")) {
        expected = Checksum.compute(c, "public.t", null);
      }
      crashed.crash(); // no checkpoint: the copy needs WAL replay
      copyTree(crashed.dataDir(), vol.resolve("srv/pg/main"));
      ObjectRestoreReport report =
          plugin.restore(
              request("app/public.t", pg.url("shop"), "crash.t", false, options()),
              new DirectorySnapshotView(SNAPSHOT_ID, List.of(vol), Map.of()),
              null,
              null);
      assertThat(report.restoredAs()).isEqualTo("crash.t");
      assertThat(report.rows()).isEqualTo(rows);
      assertThat(report.checksum()).isEqualTo(expected.checksum());
      assertThat(report.notes()).anyMatch(s -> s.contains("crash-consistent, all databases"));
    }
    assertStagingCleanedUp();
  }

  private void assertStagingCleanedUp() throws IOException {
    Path staging = work.resolve("staging");
    if (Files.exists(staging)) {
      try (Stream<Path> s = Files.list(staging)) {
        assertThat(s.toList()).isEmpty();
      }
    }
  }
}
