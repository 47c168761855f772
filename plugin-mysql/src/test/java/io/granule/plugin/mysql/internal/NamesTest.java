package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.net.URI;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

/** URLs, table names, file names, destinations and the extraction filter. */
class NamesTest {

  @Test
  void urls() throws Exception {
    MysqlUrl u = MysqlUrl.parse(URI.create("mariadb://app@db1.example:3307/shop?sslMode=trust"));
    assertThat(u.user()).isEqualTo("app");
    assertThat(u.port()).isEqualTo(3307);
    assertThat(u.database()).isEqualTo("shop");
    assertThat(u.options()).containsEntry("sslMode", "trust");
    assertThat(u.instance()).isEqualTo("db1.example-3307");
    assertThat(u.jdbcUrl()).isEqualTo("jdbc:mariadb://db1.example:3307/shop");
    assertThat(MysqlUrl.parse(URI.create("mysql://root@[::1]/")).jdbcUrl())
        .isEqualTo("jdbc:mariadb://[::1]:3306/");
    assertThat(MysqlUrl.parse(URI.create("mysql://root@[::1]/")).instance()).isEqualTo("__1-3306");
    assertThatThrownBy(() -> MysqlUrl.parse(URI.create("mysql://a@h/db?password=x")))
        .hasMessageContaining("MYSQL_PWD");
    assertThatThrownBy(() -> MysqlUrl.parse(URI.create("postgres://a@h/db")))
        .isInstanceOfSatisfying(
            ApplicationException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNSUPPORTED));
  }

  @Test
  void tableNames() throws Exception {
    assertThat(TableName.parse("shop.orders")).isEqualTo(new TableName("shop", "orders"));
    assertThat(TableName.parse("shop.my.table")).isEqualTo(new TableName("shop", "my.table"));
    assertThat(TableName.parse("`my.db`.`t``x`")).isEqualTo(new TableName("my.db", "t`x"));
    assertThat(new TableName("a`b", "c").quoted()).isEqualTo("`a``b`.`c`");
    for (String bad : new String[] {"orders", ".t", "db.", "`db`x"}) {
      assertThatThrownBy(() -> TableName.parse(bad))
          .as(bad)
          .isInstanceOf(ApplicationException.class);
    }
  }

  @Test
  void destinations() throws Exception {
    TableName src = new TableName("shop", "orders");
    assertThat(TableRestore.destination(src, null, false, "1a2b3c4d"))
        .isEqualTo(new TableName("shop_granule_1a2b3c4d", "orders"));
    assertThat(TableRestore.destination(src, null, true, "1a2b3c4d")).isEqualTo(src);
    assertThat(TableRestore.destination(src, "copy", false, "1a2b3c4d"))
        .isEqualTo(new TableName("shop_granule_1a2b3c4d", "copy"));
    assertThat(TableRestore.destination(src, "other.copy", false, "1a2b3c4d"))
        .isEqualTo(new TableName("other", "copy"));
    TableName longDb = new TableName("d".repeat(60), "t");
    assertThat(TableRestore.destination(longDb, null, false, "1a2b3c4d").db())
        .hasSize(64)
        .endsWith("_granule_1a2b3c4d");
  }

  @Test
  void fileNamesFollowTheServersEncoding() {
    assertThat(FileNames.encode("my-customers")).isEqualTo("my@002dcustomers");
    assertThat(FileNames.encode("a b.c$")).isEqualTo("a@0020b@002ec@0024");
    assertThat(FileNames.encode("plain_Name1")).isEqualTo("plain_Name1");
    assertThat(FileNames.isExact("my-customers")).isTrue();
    assertThat(FileNames.isExact("kunden_ü")).isFalse();
  }

  @Test
  void extractsWhatAStagingServerNeedsForOneTable() {
    Predicate<String> f = ExtractFilter.forTable(new TableName("shop", "orders"));
    for (String in :
        new String[] {
          "ibdata1",
          "ib_logfile0",
          "undo001",
          "undo_002",
          "aria_log_control",
          "aria_log.00000001",
          "mysql",
          "mysql/user.frm",
          "mysql/innodb_table_stats.ibd",
          "shop",
          "shop/db.opt",
          "shop/orders.frm",
          "shop/orders.ibd",
          "shop/orders#P#p0.ibd",
          "shop/orders.TRG",
          "#innodb_redo",
          "#innodb_redo/#ib_redo10",
          "mysql.ibd",
          "ddl_recovery.log",
          "mysql_upgrade_info",
          "#ib_16384_0.dblwr"
        }) {
      assertThat(f.test(in)).as(in).isTrue();
    }
    for (String out :
        new String[] {
          "ibtmp1",
          "ib_buffer_pool",
          "mysql-bin.000001",
          "mysql-bin.index",
          "crm",
          "crm/customers.ibd",
          "shop/orders_archive.ibd",
          "shop/orders2.frm",
          "sys",
          "performance_schema",
          "#innodb_temp",
          "host.pid",
          "mysql.sock",
          "shop/sub/x"
        }) {
      assertThat(f.test(out)).as(out).isFalse();
    }
    Predicate<String> wide = ExtractFilter.forTable(new TableName("shop", "bestellungen_ü"));
    assertThat(wide.test("shop/anything.ibd")).isTrue();
    Predicate<String> innodb = ExtractFilter.innodbOnly();
    assertThat(innodb.test("ibdata1")).isTrue();
    assertThat(innodb.test("#innodb_redo/#ib_redo5")).isTrue();
    assertThat(innodb.test("shop")).isFalse();
  }
}
