package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.Quiesce;
import java.net.URI;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.testcontainers.junit.jupiter.Testcontainers;
import org.testcontainers.mysql.MySQLContainer;

/**
 * The MySQL 8 dialect against real MySQL servers in containers: runs only where a Docker engine
 * does ({@code disabledWithoutDocker}), so it is skipped on machines without one, CI included.
 * Restores are not covered here (a staging mysqld of the same version would have to run on the
 * container's data directory).
 */
@Testcontainers(disabledWithoutDocker = true)
class Mysql8ContainerTest {

  @ParameterizedTest
  @ValueSource(strings = {"mysql:8.0", "mysql:8.4"})
  void connectQuiesceCatalog(String image) throws Exception {
    try (MySQLContainer mysql = new MySQLContainer(image)) {
      mysql.start();
      String jdbc =
          "jdbc:mariadb://"
              + mysql.getHost()
              + ":"
              + mysql.getMappedPort(3306)
              + "/?user=root&password="
              + mysql.getPassword()
              + "&allowPublicKeyRetrieval=true";
      try (Connection c = DriverManager.getConnection(jdbc);
          Statement s = c.createStatement()) {
        s.execute("CREATE DATABASE shop");
        s.execute("CREATE TABLE shop.orders (id INT PRIMARY KEY) ENGINE=InnoDB");
        s.execute("INSERT INTO shop.orders VALUES (1), (2)");
        s.execute("CREATE VIEW shop.v AS SELECT * FROM shop.orders");
      }
      URI url =
          URI.create(
              "mysql://root@"
                  + mysql.getHost()
                  + ":"
                  + mysql.getMappedPort(3306)
                  + "/shop?allowPublicKeyRetrieval=true");
      MysqlPlugin plugin = new MysqlPlugin(Map.of("MYSQL_PWD", mysql.getPassword())::get);
      try (ApplicationSession session = plugin.connect(url)) {
        assertThat(session.info().product()).isEqualTo("MySQL");
        assertThat(session.info().version()).startsWith(image.substring(6));
        assertThat(session.info().dataPaths()).contains("/var/lib/mysql");
        assertThat(session.info().attributes()).containsEntry("dialect", "mysql_backup_lock");

        // InnoDB only: the backup lock blocks DDL, not commits.
        Quiesce q = session.quiesce(Duration.ofSeconds(60));
        CompletableFuture<Void> ddl = run(jdbc, "CREATE TABLE shop.blocked (id INT)");
        run(jdbc, "INSERT INTO shop.orders VALUES (3)").get(10, TimeUnit.SECONDS);
        Thread.sleep(500);
        assertThat(ddl).isNotDone();
        Captured captured = q.release();
        ddl.get(10, TimeUnit.SECONDS);
        assertThat(captured.metadata())
            .containsEntry("quiesce", "mysql_backup_lock")
            .containsEntry("coordinates", "during-hold-commits-not-blocked")
            .containsKeys("binlog_file", "binlog_position", "gtid_executed");

        // A MyISAM table adds the global read lock: commits block too.
        try (Connection c = DriverManager.getConnection(jdbc);
            Statement s = c.createStatement()) {
          s.execute("CREATE TABLE shop.legacy (id INT) ENGINE=MyISAM");
        }
        q = session.quiesce(Duration.ofSeconds(60));
        CompletableFuture<Void> commit = run(jdbc, "INSERT INTO shop.orders VALUES (4)");
        Thread.sleep(500);
        assertThat(commit).isNotDone();
        assertThat(q.release().metadata()).containsEntry("coordinates", "exact");
        commit.get(10, TimeUnit.SECONDS);

        List<CatalogEntry> catalog = session.catalog();
        assertThat(catalog)
            .extracting(CatalogEntry::id)
            .contains("shop", "shop.orders", "shop.v", "shop.legacy");
        CatalogEntry orders =
            catalog.stream().filter(e -> e.id().equals("shop.orders")).findFirst().orElseThrow();
        assertThat(orders.files()).containsExactly("shop/orders.ibd");
      }
    }
  }

  private static CompletableFuture<Void> run(String jdbc, String sql) {
    return CompletableFuture.runAsync(
        () -> {
          try (Connection c = DriverManager.getConnection(jdbc);
              Statement s = c.createStatement()) {
            s.execute(sql);
          } catch (SQLException e) {
            throw new IllegalStateException(e);
          }
        });
  }
}
