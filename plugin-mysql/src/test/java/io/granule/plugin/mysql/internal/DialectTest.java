package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.plugin.mysql.internal.ServerVersion.Family;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Which SQL each server version gets: the only place MariaDB and MySQL differ. */
class DialectTest {

  static ServerVersion v(String version, String comment) {
    return ServerVersion.parse(version, comment);
  }

  @Test
  void parsesVersions() {
    ServerVersion m = v("10.11.18-MariaDB-0+deb12u1-log", "Debian 12");
    assertThat(m.family()).isEqualTo(Family.MARIADB);
    assertThat(m.series()).isEqualTo("10.11");
    assertThat(m.patch()).isEqualTo(18);
    assertThat(v("5.5.5-10.6.12-MariaDB", null).series()).isEqualTo("10.6");
    ServerVersion my = v("8.0.36", "MySQL Community Server - GPL");
    assertThat(my.family()).isEqualTo(Family.MYSQL);
    assertThat(my.series()).isEqualTo("8.0");
    assertThat(v("8.0.35-27", "Percona Server (GPL), Release 27").family()).isEqualTo(Family.MYSQL);
    assertThat(v("11.4.2-MariaDB", null).sameSeries(v("11.4.5-MariaDB-log", null))).isTrue();
    assertThat(v("10.11.2-MariaDB", null).sameSeries(v("10.6.2-MariaDB", null))).isFalse();
    assertThat(v("8.0.36", null).sameSeries(v("8.0.36-MariaDB", null))).isFalse();
    assertThatThrownBy(() -> v("unknown", null)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void mariadbUsesBackupStagesFrom104() {
    Dialect d = Dialect.of(v("10.4.0-MariaDB", null));
    assertThat(d).isEqualTo(Dialect.MARIADB_BACKUP_STAGE);
    assertThat(d.quiesce(true))
        .containsExactly(
            "BACKUP STAGE START",
            "BACKUP STAGE FLUSH",
            "BACKUP STAGE BLOCK_DDL",
            "BACKUP STAGE BLOCK_COMMIT");
    assertThat(d.release(true)).containsExactly("BACKUP STAGE END");
    assertThat(d.blocksCommits(false)).isTrue();
    assertThat(Dialect.binlogStatus(v("11.4.2-MariaDB", null))).isEqualTo("SHOW MASTER STATUS");
    assertThat(Dialect.gtidVariables(v("10.11.2-MariaDB", null)))
        .containsExactly("gtid_binlog_pos", "gtid_current_pos");
  }

  @Test
  void olderMariadbAndMysqlUseTheGlobalReadLock() {
    for (ServerVersion old : List.of(v("10.3.39-MariaDB", null), v("5.7.44", "MySQL"))) {
      Dialect d = Dialect.of(old);
      assertThat(d).as(old.toString()).isEqualTo(Dialect.FLUSH_TABLES_WITH_READ_LOCK);
      assertThat(d.quiesce(false)).containsExactly("FLUSH TABLES WITH READ LOCK");
      assertThat(d.release(false)).containsExactly("UNLOCK TABLES");
    }
  }

  @Test
  void mysql8TakesTheBackupLockAndTheReadLockOnlyForOtherEngines() {
    Dialect d = Dialect.of(v("8.0.36", "MySQL Community Server - GPL"));
    assertThat(d).isEqualTo(Dialect.MYSQL_BACKUP_LOCK);
    assertThat(d.quiesce(false)).containsExactly("LOCK INSTANCE FOR BACKUP");
    assertThat(d.release(false)).containsExactly("UNLOCK INSTANCE");
    assertThat(d.blocksCommits(false)).isFalse();
    assertThat(d.quiesce(true))
        .containsExactly("LOCK INSTANCE FOR BACKUP", "FLUSH TABLES WITH READ LOCK");
    assertThat(d.release(true)).containsExactly("UNLOCK TABLES", "UNLOCK INSTANCE");
    assertThat(d.blocksCommits(true)).isTrue();
    assertThat(Dialect.binlogStatus(v("8.0.36", null))).isEqualTo("SHOW MASTER STATUS");
    assertThat(Dialect.binlogStatus(v("8.4.0", null))).isEqualTo("SHOW BINARY LOG STATUS");
    assertThat(Dialect.gtidVariables(v("8.0.36", null))).containsExactly("gtid_executed");
  }
}
