package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.Quiesce;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Connect, quiesce and catalog against a real MariaDB server. */
class MariaDbSessionTest {
  @TempDir static Path dir;
  static MariaDbServer server;
  static ExecutorService pool = Executors.newCachedThreadPool();
  final MysqlPlugin plugin = new MysqlPlugin(name -> null);

  @BeforeAll
  static void start() throws Exception {
    server = MariaDbServer.start(dir, dir.resolve("data"));
    server.sql(
        "CREATE DATABASE shop",
        "CREATE DATABASE crm",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, total DECIMAL(10,2))"
            + " ENGINE=InnoDB",
        "INSERT INTO shop.orders (total) VALUES (1.50), (2.25), (3.00)",
        "CREATE TABLE shop.log (id INT PRIMARY KEY, msg TEXT) ENGINE=Aria",
        "CREATE TABLE shop.legacy (id INT PRIMARY KEY) ENGINE=MyISAM",
        "CREATE TABLE shop.parts (id INT, p INT) ENGINE=InnoDB"
            + " PARTITION BY RANGE (p) (PARTITION p0 VALUES LESS THAN (10),"
            + " PARTITION p1 VALUES LESS THAN MAXVALUE)",
        "CREATE VIEW shop.big AS SELECT * FROM shop.orders WHERE total > 2",
        "CREATE PROCEDURE shop.refill() BEGIN SELECT 1; END",
        "CREATE FUNCTION shop.twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x",
        "CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.orders FOR EACH ROW"
            + " INSERT INTO shop.log VALUES (NEW.id, 'new order')",
        "CREATE TABLE crm.`my-customers` (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE USER 'app'@'localhost' IDENTIFIED BY 'secret'",
        "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'secret'",
        "GRANT ALL ON *.* TO 'app'@'localhost'",
        "GRANT ALL ON *.* TO 'app'@'127.0.0.1'");
  }

  @AfterAll
  static void stop() throws Exception {
    pool.shutdownNow();
    if (server != null) {
      server.close();
    }
  }

  @Test
  void infoDescribesTheServer() throws Exception {
    try (ApplicationSession s = plugin.connect(server.url("shop"))) {
      ApplicationInfo info = s.info();
      assertThat(info.instance()).isEqualTo("127.0.0.1-" + server.port());
      assertThat(info.product()).isEqualTo("MariaDB");
      assertThat(info.version()).startsWith("10.").contains("MariaDB");
      assertThat(info.dataPaths()).containsExactly(server.datadir().toString());
      assertThat(info.attributes())
          .containsEntry("datadir", server.datadir().toString())
          .containsEntry("innodb_data_home_dir", server.datadir().toString())
          .containsEntry("log_bin", "ON")
          .containsEntry("server_id", "7")
          .containsEntry("innodb_page_size", "16384")
          .containsEntry("dialect", "mariadb_backup_stage")
          .containsKey("gtid_strict_mode");
    }
  }

  @Test
  void passwordComesFromMysqlPwd() throws Exception {
    URI url = URI.create("mariadb://app@127.0.0.1:" + server.port() + "/shop");
    MysqlPlugin right = new MysqlPlugin(Map.of("MYSQL_PWD", "secret")::get);
    try (ApplicationSession s = right.connect(url)) {
      assertThat(s.info().product()).isEqualTo("MariaDB");
    }
    MysqlPlugin wrong = new MysqlPlugin(Map.of("MYSQL_PWD", "guess")::get);
    assertThatThrownBy(() -> wrong.connect(url))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.AUTH))
        .hasMessageContaining("access denied")
        .hasMessageNotContaining("guess");
  }

  @Test
  void badInput() throws Exception {
    int closed;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      closed = s.getLocalPort();
    }
    assertThatThrownBy(() -> plugin.connect(URI.create("mysql://root@127.0.0.1:" + closed + "/")))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNREACHABLE))
        .hasMessageStartingWith("unable to connect to mysql://root@127.0.0.1:" + closed);
    assertThatThrownBy(() -> plugin.connect(URI.create("mysql://root:pw@127.0.0.1:3306/")))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNSUPPORTED))
        .hasMessageContaining("MYSQL_PWD");
    assertThatThrownBy(() -> plugin.connect(server.url("nosuchdb")))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.NOT_FOUND));
    assertThat(plugin.handles(URI.create("mariadb://x@h/db"))).isTrue();
    assertThat(plugin.handles(URI.create("postgres://x@h/db"))).isFalse();
  }

  /** Starts a commit of one row on its own connection; done when the commit returned. */
  private CompletableFuture<Void> commitInBackground(String sql) {
    return CompletableFuture.runAsync(
        () -> {
          try (Connection c = server.connect();
              Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.execute(sql);
            c.commit();
          } catch (SQLException e) {
            throw new IllegalStateException(e);
          }
        },
        pool);
  }

  private CompletableFuture<Void> inBackground(String sql) {
    return CompletableFuture.runAsync(
        () -> {
          try {
            server.sql(sql);
          } catch (SQLException e) {
            throw new IllegalStateException(e);
          }
        },
        pool);
  }

  /** Waits until a session shows a processlist state containing {@code word}. */
  private void awaitState(String word) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (System.nanoTime() < deadline) {
      String n =
          server.query(
              "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE '%"
                  + word
                  + "%'");
      if (!"0".equals(n)) {
        return;
      }
      Thread.sleep(50);
    }
    throw new AssertionError("no session waiting in state '" + word + "'");
  }

  @Test
  void quiesceBlocksCommitsAndDdlUntilReleased() throws Exception {
    try (ApplicationSession s = plugin.connect(server.url("shop"))) {
      String before = server.query("SELECT COUNT(*) FROM shop.orders");
      Quiesce q = s.quiesce(Duration.ofSeconds(60));
      CompletableFuture<Void> commit =
          commitInBackground("INSERT INTO shop.orders (total) VALUES (9)");
      CompletableFuture<Void> ddl = inBackground("CREATE TABLE crm.blocked (id INT)");
      awaitState("backup");
      Thread.sleep(300);
      assertThat(commit).isNotDone();
      assertThat(ddl).isNotDone();
      // Reads go on while held, and see the state of the snapshot.
      assertThat(server.query("SELECT COUNT(*) FROM shop.orders")).isEqualTo(before);
      q.check();
      assertThat(s.catalog()).extracting(CatalogEntry::id).contains("shop.orders");
      Captured captured = q.release();
      commit.get(10, TimeUnit.SECONDS);
      ddl.get(10, TimeUnit.SECONDS);
      assertThat(captured.files()).isEmpty();
      assertThat(captured.metadata())
          .containsEntry("quiesce", "mariadb_backup_stage")
          .containsEntry("coordinates", "exact")
          .containsKeys("binlog_file", "binlog_position", "gtid_binlog_pos", "gtid_current_pos");
      assertThat(captured.metadata().get("binlog_file")).startsWith("mysql-bin.");
      assertThatThrownBy(q::release)
          .isInstanceOf(ApplicationException.class)
          .hasMessageContaining("already released");
      q.close();
      q.close();
    } finally {
      server.sql("DROP TABLE IF EXISTS crm.blocked");
    }
  }

  @Test
  void closingTheSessionEndsTheHold() throws Exception {
    ApplicationSession s = plugin.connect(server.url("shop"));
    s.quiesce(Duration.ofSeconds(60));
    CompletableFuture<Void> commit =
        commitInBackground("INSERT INTO shop.orders (total) VALUES (8)");
    awaitState("backup");
    assertThat(commit).isNotDone();
    s.close();
    s.close();
    commit.get(10, TimeUnit.SECONDS);
  }

  @Test
  void holdEndsAtItsMaximum() throws Exception {
    try (ApplicationSession s = plugin.connect(server.url("shop"))) {
      long start = System.nanoTime();
      Quiesce q = s.quiesce(Duration.ofMillis(1500));
      CompletableFuture<Void> commit =
          commitInBackground("INSERT INTO shop.orders (total) VALUES (7)");
      awaitState("backup");
      commit.get(20, TimeUnit.SECONDS);
      assertThat(Duration.ofNanos(System.nanoTime() - start))
          .isGreaterThan(Duration.ofMillis(1400));
      assertThatThrownBy(q::check)
          .isInstanceOfSatisfying(
              ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.FAILED))
          .hasMessageContaining("maximum of 1500 ms");
      assertThatThrownBy(q::release).hasMessageContaining("maximum of 1500 ms");
      q.close();
      // The session itself is still usable.
      assertThat(s.catalog()).isNotEmpty();
    }
  }

  @Test
  void catalogListsEveryKind() throws Exception {
    List<CatalogEntry> catalog;
    try (ApplicationSession s = plugin.connect(server.url(null))) {
      catalog = s.catalog();
    }
    Map<String, CatalogEntry> byId =
        catalog.stream().collect(Collectors.toMap(CatalogEntry::id, Function.identity()));
    assertThat(byId.keySet())
        .contains(
            "shop",
            "crm",
            "mysql",
            "shop.orders",
            "shop.log",
            "shop.legacy",
            "shop.parts",
            "shop.big",
            "shop/procedure/refill",
            "shop/function/twice",
            "shop/trigger/orders_ai",
            "crm.my-customers")
        .noneMatch(
            id -> id.startsWith("information_schema") || id.startsWith("performance_schema"));
    assertThat(byId.get("shop").kind()).isEqualTo("database");
    CatalogEntry orders = byId.get("shop.orders");
    assertThat(orders.kind()).isEqualTo("table");
    assertThat(orders.parent()).isEqualTo("shop");
    assertThat(orders.attributes()).containsEntry("engine", "InnoDB");
    assertThat(orders.files()).containsExactly("shop/orders.frm", "shop/orders.ibd");
    assertThat(orders.size()).isPositive();
    assertThat(orders.rows()).isGreaterThanOrEqualTo(0);
    assertThat(byId.get("shop.log").files())
        .containsExactly("shop/log.frm", "shop/log.MAD", "shop/log.MAI");
    assertThat(byId.get("shop.log").attributes()).containsEntry("engine", "Aria");
    assertThat(byId.get("shop.legacy").files()).contains("shop/legacy.MYD", "shop/legacy.MYI");
    assertThat(byId.get("shop.parts").files())
        .containsExactly(
            "shop/parts.frm", "shop/parts.par", "shop/parts#P#p0.ibd", "shop/parts#P#p1.ibd");
    assertThat(byId.get("shop.big").kind()).isEqualTo("view");
    assertThat(byId.get("shop.big").files()).containsExactly("shop/big.frm");
    assertThat(byId.get("shop/procedure/refill").kind()).isEqualTo("routine");
    assertThat(byId.get("shop/function/twice").attributes()).containsEntry("type", "FUNCTION");
    CatalogEntry trigger = byId.get("shop/trigger/orders_ai");
    assertThat(trigger.kind()).isEqualTo("trigger");
    assertThat(trigger.parent()).isEqualTo("shop.orders");
    assertThat(trigger.files()).containsExactly("shop/orders_ai.TRN", "shop/orders.TRG");
    assertThat(byId.get("crm.my-customers").files())
        .containsExactly("crm/my@002dcustomers.frm", "crm/my@002dcustomers.ibd");
    // Every file the catalog names exists in the data directory.
    for (CatalogEntry e : catalog) {
      if (e.parent() != null && (e.parent().equals("shop") || e.parent().equals("crm"))) {
        for (String f : e.files()) {
          assertThat(server.datadir().resolve(f)).as(e.id()).exists();
        }
      }
    }
  }
}
