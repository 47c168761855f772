package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.Quiesce;
import io.granule.engine.spi.SnapshotView;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * Single-table restores from copies of a real server's data directory, taken the way a backup takes
 * them: the data directory lives on its own ext4 filesystem (a loop-mounted image), a writer runs,
 * the server is quiesced, the filesystem frozen and copied, thawed, released. A second copy is
 * taken without quiescing (crash-consistent). The copies are handed to the plugin through a {@link
 * SnapshotView} over local directories.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class MariaDbRestoreTest {
  static final String SNAPSHOT_ID = "1a2b3c4d".repeat(8);
  static final String TAG = "1a2b3c4d";
  static final String TRANSPORTED =
      "copied as a transportable tablespace (the target runs on this machine)";
  static final Map<String, String> DUMP = Map.of("transport", "dump");

  @TempDir static Path base;
  static Path mnt;
  static boolean mounted;
  static MariaDbServer server;
  static ApplicationRecord record;
  static Path snapshotRoot;
  static Path crashRoot;
  static long catalogMillis;
  static final Map<String, String[]> expected = new HashMap<>();
  static final Map<String, String> env = new HashMap<>();

  Path staging = base.resolve("staging");

  @BeforeAll
  static void takeSnapshots() throws Exception {
    Prerequisites.assume(MariaDbServer.isRoot(), "restore tests mount a filesystem: run as root");
    Prerequisites.require("mkfs.ext4", "e2fsprogs");
    Prerequisites.require("fsfreeze", "util-linux");
    env.put("PATH", System.getenv("PATH"));
    Path img = base.resolve("fs.img");
    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
      f.setLength(768L << 20);
    }
    run("mkfs.ext4", "-q", "-F", img.toString());
    mnt = Files.createDirectories(base.resolve("mnt"));
    Process mount =
        new ProcessBuilder("mount", "-o", "loop", img.toString(), mnt.toString())
            .redirectErrorStream(true)
            .start();
    String out = new String(mount.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    Prerequisites.assume(mount.waitFor() == 0, "mount -o loop failed: " + out);
    mounted = true;
    server = MariaDbServer.start(base.resolve("server"), mnt.resolve("lib/mysql"));
    server.sql(
        "CREATE DATABASE shop",
        "CREATE DATABASE crm",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT,"
            + " customer VARCHAR(100) CHARACTER SET utf8mb4, total DECIMAL(12,2), note TEXT,"
            + " payload BLOB, created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
            + " KEY (customer)) ENGINE=InnoDB",
        "CREATE TABLE shop.parent (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE TABLE shop.child (id INT PRIMARY KEY, parent_id INT, up INT,"
            + " CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES shop.parent (id),"
            + " CONSTRAINT child_up FOREIGN KEY (up) REFERENCES shop.child (id)) ENGINE=InnoDB",
        "CREATE TABLE shop.events (id INT PRIMARY KEY AUTO_INCREMENT, msg TEXT) ENGINE=Aria",
        "CREATE TABLE crm.customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50))",
        "USE shop",
        "INSERT INTO shop.parent SELECT seq FROM seq_1_to_10",
        "INSERT INTO shop.child SELECT seq, 1 + seq % 10, IF(seq > 1, seq - 1, NULL)"
            + " FROM seq_1_to_100",
        "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'secret'",
        "GRANT ALL ON *.* TO 'app'@'127.0.0.1'");
    try (Connection c = server.connect()) {
      insertOrders(c, new Random(1), 2000);
    }
    AtomicBoolean stop = new AtomicBoolean();
    AtomicInteger rounds = new AtomicInteger();
    AtomicReference<Throwable> failed = new AtomicReference<>();
    Thread writer = new Thread(() -> write(stop, rounds, failed), "writer");
    writer.start();
    try {
      awaitRounds(rounds, 20, failed);
      // Crash-consistent copy: frozen, not quiesced.
      crashRoot = base.resolve("crash");
      freezeAndCopy(crashRoot);
      awaitRounds(rounds, rounds.get() + 10, failed);
      MysqlPlugin plugin = new MysqlPlugin(env::get);
      try (ApplicationSession s = plugin.connect(server.url(null))) {
        Quiesce q = s.quiesce(Duration.ofSeconds(60));
        // The catalog is read while held, with the writer possibly blocked inside an Aria insert.
        long t0 = System.nanoTime();
        assertThat(s.catalog()).extracting(CatalogEntry::id).contains("shop.events");
        catalogMillis = (System.nanoTime() - t0) / 1_000_000;
        // Only InnoDB tables can be read while held: a writer blocked on the backup lock holds
        // the Aria table's lock.
        for (String t : List.of("shop.orders", "shop.child", "crm.customers")) {
          try (Connection c = server.connect()) {
            TableName n = TableName.parse(t);
            expected.put(
                t, new String[] {Long.toString(Schema.count(c, n)), Schema.checksum(c, n)});
          }
        }
        snapshotRoot = base.resolve("snapshot");
        freezeAndCopy(snapshotRoot);
        Captured captured = q.release();
        ApplicationInfo info = s.info();
        record =
            new ApplicationRecord(
                "mysql",
                info.instance(),
                server.url(null).toString(),
                info.product(),
                info.version(),
                "application",
                info.dataPaths(),
                info.attributes(),
                captured.metadata(),
                List.of());
      }
      awaitRounds(rounds, rounds.get() + 10, failed);
    } finally {
      stop.set(true);
      writer.join(30_000);
    }
    assertThat(failed.get()).isNull();
  }

  @AfterAll
  static void cleanUp() throws Exception {
    if (server != null) {
      server.close();
    }
    if (mounted) {
      run("umount", mnt.toString());
    }
  }

  @AfterEach
  void stagingIsCleanedUp() throws IOException {
    if (Files.isDirectory(staging)) {
      try (Stream<Path> s = Files.list(staging)) {
        assertThat(s.toList()).as("left in the staging directory").isEmpty();
      }
    }
  }

  private static void awaitRounds(AtomicInteger rounds, int n, AtomicReference<Throwable> failed)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (rounds.get() < n && failed.get() == null && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertThat(failed.get()).isNull();
    assertThat(rounds.get()).isGreaterThanOrEqualTo(n);
  }

  private static void freezeAndCopy(Path to) throws Exception {
    run("fsfreeze", "-f", mnt.toString());
    try {
      Files.createDirectories(to);
      run("cp", "-a", mnt + "/.", to.toString());
    } finally {
      run("fsfreeze", "-u", mnt.toString());
    }
  }

  private static void insertOrders(Connection c, Random r, int n) throws SQLException {
    try (PreparedStatement ps =
        c.prepareStatement(
            "INSERT INTO shop.orders (customer, total, note, payload) VALUES (?, ?, ?, ?)")) {
      for (int i = 0; i < n; i++) {
        ps.setString(1, "customer " + r.nextInt(500) + " ünïcödé ✓");
        ps.setBigDecimal(2, java.math.BigDecimal.valueOf(r.nextInt(1_000_000), 2));
        ps.setString(3, "line one\nline 'two'\\ \"three\"\t" + r.nextLong());
        byte[] payload = new byte[r.nextInt(64)];
        r.nextBytes(payload);
        ps.setBytes(4, payload);
        ps.addBatch();
      }
      ps.executeBatch();
    }
  }

  private static void write(
      AtomicBoolean stop, AtomicInteger rounds, AtomicReference<Throwable> failed) {
    Random r = new Random(2);
    try (Connection c = server.connect();
        Statement s = c.createStatement()) {
      c.setAutoCommit(false);
      while (!stop.get()) {
        insertOrders(c, r, 5);
        s.execute("UPDATE shop.orders SET total = total + 1 WHERE id = " + (1 + r.nextInt(2000)));
        s.execute("INSERT INTO crm.customers (name) VALUES ('c" + r.nextInt() + "')");
        c.commit();
        // One event per committed round, after the commit (Aria is not transactional).
        s.execute("INSERT INTO shop.events (msg) VALUES ('event " + r.nextInt() + "')");
        c.commit();
        rounds.incrementAndGet();
      }
    } catch (Throwable e) {
      failed.set(e);
    }
  }

  static void run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("%s: %s", String.join(" ", cmd), out).isZero();
  }

  private ObjectRestoreReport restore(
      String table, String as, boolean replace, SnapshotView view, ApplicationRecord rec)
      throws ApplicationException {
    return restore(table, as, replace, view, rec, Map.of());
  }

  private ObjectRestoreReport restore(
      String table,
      String as,
      boolean replace,
      SnapshotView view,
      ApplicationRecord rec,
      Map<String, String> options)
      throws ApplicationException {
    return restore(
        new MysqlPlugin(env::get), table, server.url(null), as, replace, view, rec, options);
  }

  private ObjectRestoreReport restore(
      MysqlPlugin plugin,
      String table,
      URI target,
      String as,
      boolean replace,
      SnapshotView view,
      ApplicationRecord rec,
      Map<String, String> options)
      throws ApplicationException {
    Map<String, String> o = new HashMap<>(options);
    o.put("staging-dir", staging.toString());
    List<String> seen = new ArrayList<>();
    ObjectRestoreReport report =
        plugin.restore(
            new ObjectRestoreRequest(table, target, as, replace, o),
            view,
            rec,
            (phase, detail) -> seen.add(phase));
    // Staging may start more than once, extracting tablespaces crash recovery asks for.
    assertThat(seen).containsSubsequence("locate", "extract", "staging start", "dump", "load");
    assertThat(report.phases().keySet())
        .containsExactly("locate", "extract", "staging start", "dump", "load");
    return report;
  }

  private static SnapshotView snapshot() {
    return new DirectorySnapshotView(SNAPSHOT_ID, snapshotRoot);
  }

  private static String[] state(String table) throws SQLException, ApplicationException {
    try (Connection c = server.connect()) {
      TableName n = TableName.parse(table);
      return new String[] {Long.toString(Schema.count(c, n)), Schema.checksum(c, n)};
    }
  }

  private static void timing(String what, ObjectRestoreReport r) throws IOException {
    StringBuilder sb = new StringBuilder(what);
    r.phases()
        .forEach((k, v) -> sb.append(String.format(Locale.ROOT, " %s=%dms", k, v.toMillis())));
    Path file = Path.of("target", "restore-timings.txt");
    Files.writeString(
        file,
        sb + "\n",
        StandardCharsets.UTF_8,
        java.nio.file.StandardOpenOption.CREATE,
        java.nio.file.StandardOpenOption.APPEND);
  }

  @Test
  @Order(1)
  void restoresUnderANewDatabaseNamedAfterTheSnapshot() throws Exception {
    ObjectRestoreReport r = restore("shop.orders", null, false, snapshot(), record);
    timing(
        "shop.orders ("
            + expected.get("shop.orders")[0]
            + " rows), catalog while held "
            + catalogMillis
            + " ms;",
        r);
    assertThat(r.restoredAs()).isEqualTo("shop_granule_" + TAG + ".orders");
    assertThat(Long.toString(r.rows())).isEqualTo(expected.get("shop.orders")[0]);
    assertThat(r.checksum()).isEqualTo(expected.get("shop.orders")[1]);
    assertThat(state("shop_granule_" + TAG + ".orders"))
        .containsExactly(expected.get("shop.orders"));
    // The live table moved on after the snapshot: the restore shows the snapshot, not now.
    assertThat(state("shop.orders")[0]).isNotEqualTo(expected.get("shop.orders")[0]);
    assertThat(r.notes()).anyMatch(n -> n.contains("equals the snapshot's table"));
    // Same host: the tablespace file is copied rather than dumped and loaded.
    assertThat(r.notes()).contains(TRANSPORTED);
    assertThat(record.metadata()).containsKeys("binlog_file", "binlog_position");
  }

  @Test
  @Order(2)
  void restoresANonTransactionalTableAndAnotherDatabase() throws Exception {
    ObjectRestoreReport r = restore("shop.events", "shop.events_then", false, snapshot(), record);
    assertThat(r.restoredAs()).isEqualTo("shop.events_then");
    assertThat(r.notes()).doesNotContain(TRANSPORTED); // Aria: dumped and loaded
    // One event follows each committed round: the snapshot holds the last round's or not yet.
    long rounds = Long.parseLong(expected.get("crm.customers")[0]);
    assertThat(r.rows()).isBetween(rounds - 1, rounds);
    assertThat(r.notes()).anyMatch(n -> n.contains("equals the snapshot's table"));
    r = restore("crm.customers", null, false, snapshot(), record);
    assertThat(state("crm_granule_" + TAG + ".customers"))
        .containsExactly(expected.get("crm.customers"));
  }

  @Test
  @Order(3)
  void nameTaken() throws Exception {
    assertThatThrownBy(() -> restore("shop.orders", "shop.orders", false, snapshot(), record))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.TARGET_EXISTS))
        .hasMessageStartingWith("table shop.orders already exists at mysql://root@127.0.0.1:");
  }

  @Test
  @Order(4)
  void foreignKeysToTablesNotRestoredAreLeftOut() throws Exception {
    ObjectRestoreReport r = restore("shop.child", "crm.child_then", false, snapshot(), record);
    assertThat(state("crm.child_then")).containsExactly(expected.get("shop.child"));
    assertThat(r.notes()).contains(TRANSPORTED);
    assertThat(r.notes())
        .anyMatch(n -> n.startsWith("foreign key child_parent (`parent_id`) left out"));
    String ddl = server.query("SELECT 1");
    try (Connection c = server.connect()) {
      ddl = Schema.showCreateTable(c, TableName.parse("crm.child_then"));
    }
    assertThat(ddl).contains("CONSTRAINT `child_up` FOREIGN KEY (`up`) REFERENCES `child_then`");
    assertThat(ddl).doesNotContain("REFERENCES `parent`");
  }

  @Test
  @Order(5)
  void replaceSwapsTheLiveTableAndRenamesClashingConstraints() throws Exception {
    server.sql("DELETE FROM shop.child WHERE id > 50 ORDER BY id DESC");
    ObjectRestoreReport r = restore("shop.child", null, true, snapshot(), record);
    assertThat(r.restoredAs()).isEqualTo("shop.child");
    assertThat(state("shop.child")).containsExactly(expected.get("shop.child"));
    assertThat(r.notes())
        .anyMatch(n -> n.startsWith("replaced the live table shop.child"))
        .anyMatch(
            n ->
                n.equals(
                    "foreign key child_parent renamed child_parent_"
                        + TAG
                        + " (constraint names are unique per database)"));
    String ddl;
    try (Connection c = server.connect()) {
      ddl = Schema.showCreateTable(c, TableName.parse("shop.child"));
    }
    assertThat(ddl)
        .contains("FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`)")
        .contains("FOREIGN KEY (`up`) REFERENCES `child` (`id`)");
    assertThat(
            server.query(
                "SELECT COUNT(*) FROM information_schema.TABLES"
                    + " WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME LIKE 'child%'"))
        .isEqualTo("1");
    // A table other tables reference is not swapped (their keys would follow the old one).
    assertThatThrownBy(() -> restore("shop.parent", null, true, snapshot(), record))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.FAILED))
        .hasMessageContaining("foreign keys of shop.child reference it");
  }

  @Test
  @Order(6)
  void replaceTheLiveTable() throws Exception {
    ObjectRestoreReport r = restore("shop.orders", null, true, snapshot(), record, DUMP);
    timing("shop.orders replace, dump and load", r);
    assertThat(r.notes()).doesNotContain(TRANSPORTED);
    assertThat(state("shop.orders")).containsExactly(expected.get("shop.orders"));
    assertThat(r.checksum()).isEqualTo(expected.get("shop.orders")[1]);
  }

  @Test
  @Order(7)
  void withoutARecordTheDataDirectoryIsFoundBySearching() throws Exception {
    ObjectRestoreReport r =
        restore("shop.orders", "crm.orders_searched", false, snapshot(), null, DUMP);
    assertThat(r.notes()).anyMatch(n -> n.startsWith("data directory found by searching"));
    assertThat(state("crm.orders_searched")).containsExactly(expected.get("shop.orders"));
  }

  @Test
  @Order(8)
  void crashConsistentCopyRecovers() throws Exception {
    ObjectRestoreReport r =
        restore(
            "shop.orders",
            "crm.orders_crash",
            false,
            new DirectorySnapshotView(SNAPSHOT_ID, crashRoot),
            null,
            DUMP);
    timing("shop.orders crash-consistent, dump and load", r);
    assertThat(r.rows()).isGreaterThan(2000);
    assertThat(r.notes()).anyMatch(n -> n.contains("equals the snapshot's table"));
  }

  @Test
  @Order(9)
  void badInput() throws Exception {
    assertReason(
        () -> restore("shop.nope", null, false, snapshot(), record),
        Reason.NOT_FOUND,
        "table shop.nope is not in the snapshot");
    assertReason(
        () -> restore("nodb.t", null, false, snapshot(), record),
        Reason.NOT_FOUND,
        "table nodb.t is not in the snapshot");
    assertReason(
        () -> restore("orders", null, false, snapshot(), record),
        Reason.NOT_FOUND,
        "invalid table name 'orders'");
    Path empty = Files.createDirectories(base.resolve("empty/var/lib"));
    assertReason(
        () ->
            restore(
                "shop.orders",
                "crm.nodata",
                false,
                new DirectorySnapshotView(SNAPSHOT_ID, empty.getParent().getParent()),
                record),
        Reason.NO_DATA,
        "no MariaDB or MySQL data directory in snapshot 1a2b3c4d1a2b");
    assertReason(
        () ->
            restore(
                new MysqlPlugin(env::get),
                "shop.orders",
                server.url(null),
                "crm.missing_tool",
                false,
                snapshot(),
                record,
                Map.of("mysql-bin", base.resolve("nowhere").toString())),
        Reason.MISSING_TOOL,
        "no MariaDB 10.11 server binary (mariadbd or mysqld)");
    URI app = URI.create("mysql://app@127.0.0.1:" + server.port() + "/");
    assertReason(
        () ->
            restore(
                new MysqlPlugin(Map.of("MYSQL_PWD", "wrong")::get),
                "shop.orders",
                app,
                null,
                false,
                snapshot(),
                record,
                Map.of()),
        Reason.AUTH,
        "unable to connect to mysql://app@127.0.0.1:" + server.port() + "/: access denied");
    int closed;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      closed = s.getLocalPort();
    }
    assertReason(
        () ->
            restore(
                new MysqlPlugin(env::get),
                "shop.orders",
                URI.create("mysql://root@127.0.0.1:" + closed + "/"),
                null,
                false,
                snapshot(),
                record,
                Map.of()),
        Reason.UNREACHABLE,
        "unable to connect to mysql://root@127.0.0.1:" + closed + "/");
    assertThat(
            server.query(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA"
                    + " WHERE SCHEMA_NAME LIKE 'nodb%' OR SCHEMA_NAME LIKE 'shop\\_granule\\_%'"))
        .as("failed restores leave no database behind")
        .isEqualTo("1");
  }

  @Test
  @Order(10)
  void stagingServerStartsOnALocalCopy() throws Exception {
    Path copy = base.resolve("local-copy");
    run("cp", "-a", snapshotRoot.resolve("lib/mysql").toString(), copy.toString());
    Binaries bin = Binaries.find(ServerVersion.Family.MARIADB, null, null, System.getenv("PATH"));
    Path dir = Files.createDirectories(base.resolve("local-staging"));
    // The copied index names the live server's binary log files: point it at the copies (crash
    // recovery needs them to commit what the copy holds as prepared).
    List<String> index = new ArrayList<>();
    try (Stream<Path> files = Files.list(copy)) {
      for (Path f : files.sorted().toList()) {
        if (f.getFileName().toString().matches("mysql-bin\\.\\d+")) {
          index.add(f.toAbsolutePath().toString());
        }
      }
    }
    Files.write(copy.resolve("mysql-bin.index"), index, StandardCharsets.UTF_8);
    long start = System.nanoTime();
    try (StagingServer s =
        StagingServer.start(
            copy,
            dir,
            bin,
            record.attributes(),
            Duration.ofSeconds(120),
            copy.resolve("mysql-bin"))) {
      long started = System.nanoTime();
      try (Connection c = s.connect()) {
        assertThat(
                new String[] {
                  Long.toString(Schema.count(c, TableName.parse("shop.orders"))),
                  Schema.checksum(c, TableName.parse("shop.orders"))
                })
            .containsExactly(expected.get("shop.orders"));
      }
      Files.writeString(
          Path.of("target", "restore-timings.txt"),
          String.format(
              Locale.ROOT, "staging start on a full copy: %d ms%n", (started - start) / 1_000_000),
          StandardCharsets.UTF_8,
          java.nio.file.StandardOpenOption.CREATE,
          java.nio.file.StandardOpenOption.APPEND);
    }
  }

  @Test
  @Order(11)
  void unusableBinaryLogFallsBackToRecoveryWithoutIt() throws Exception {
    Path copy = base.resolve("bad-binlog");
    run("cp", "-a", snapshotRoot.toString(), copy.toString());
    try (Stream<Path> files = Files.list(copy.resolve("lib/mysql"))) {
      for (Path f : files.toList()) {
        if (f.getFileName().toString().matches("mysql-bin\\.\\d+")) {
          Files.write(f, new byte[] {(byte) 0xfe, 'b', 'i', 'n', 0, 0, 0, 0});
        }
      }
    }
    ObjectRestoreReport r =
        restore(
            "crm.customers",
            "crm.customers_nobinlog",
            false,
            new DirectorySnapshotView(SNAPSHOT_ID, copy),
            record,
            DUMP);
    assertThat(r.notes()).anyMatch(n -> n.endsWith(": started without them"));
    long committed = Long.parseLong(expected.get("crm.customers")[0]);
    // Without the binary log, a transaction committed there but prepared in the copy is lost.
    assertThat(r.rows()).isBetween(committed - 1, committed);
  }

  private static void assertReason(ThrowingRestore r, Reason reason, String message) {
    assertThatThrownBy(r::run)
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(reason))
        .hasMessageContaining(message);
  }

  @FunctionalInterface
  interface ThrowingRestore {
    void run() throws Exception;
  }
}
