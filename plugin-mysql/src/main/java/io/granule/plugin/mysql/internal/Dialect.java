package io.granule.plugin.mysql.internal;

import java.util.List;

/**
 * How one server version is quiesced and asked for its binary log coordinates. The only place where
 * MariaDB and MySQL differ in SQL; everything else the plugin sends works on both.
 */
enum Dialect {
  /**
   * MariaDB 10.4 and later: backup stages. {@code BLOCK_COMMIT} stops commits and writes to
   * non-transactional tables and locks the binary log, so the coordinates read while held are
   * exact.
   */
  MARIADB_BACKUP_STAGE(
      List.of(
          "BACKUP STAGE START",
          "BACKUP STAGE FLUSH",
          "BACKUP STAGE BLOCK_DDL",
          "BACKUP STAGE BLOCK_COMMIT"),
      List.of("BACKUP STAGE END")),
  /**
   * MySQL 8: the backup lock stops DDL; InnoDB crash recovery makes an atomic snapshot consistent.
   * Commits go on, so binary log coordinates are those of a moment inside the hold, unless tables
   * of other engines force {@code FLUSH TABLES WITH READ LOCK} on top.
   */
  MYSQL_BACKUP_LOCK(List.of("LOCK INSTANCE FOR BACKUP"), List.of("UNLOCK INSTANCE")),
  /** Anything older: the global read lock. */
  FLUSH_TABLES_WITH_READ_LOCK(List.of("FLUSH TABLES WITH READ LOCK"), List.of("UNLOCK TABLES"));

  private final List<String> quiesce;
  private final List<String> release;

  Dialect(List<String> quiesce, List<String> release) {
    this.quiesce = quiesce;
    this.release = release;
  }

  /** The dialect for a server version. */
  static Dialect of(ServerVersion v) {
    if (v.family() == ServerVersion.Family.MARIADB) {
      return v.atLeast(10, 4) ? MARIADB_BACKUP_STAGE : FLUSH_TABLES_WITH_READ_LOCK;
    }
    return v.atLeast(8, 0) ? MYSQL_BACKUP_LOCK : FLUSH_TABLES_WITH_READ_LOCK;
  }

  /**
   * The statements that quiesce, in order, on one connection.
   *
   * @param nonTransactionalTables whether user tables of engines other than InnoDB exist (MyISAM,
   *     Aria, CSV...), which only a read lock makes consistent on MySQL
   */
  List<String> quiesce(boolean nonTransactionalTables) {
    if (this == MYSQL_BACKUP_LOCK && nonTransactionalTables) {
      return List.of("LOCK INSTANCE FOR BACKUP", "FLUSH TABLES WITH READ LOCK");
    }
    return quiesce;
  }

  /** The statements that end the hold, in order, on the quiescing connection. */
  List<String> release(boolean nonTransactionalTables) {
    if (this == MYSQL_BACKUP_LOCK && nonTransactionalTables) {
      return List.of("UNLOCK TABLES", "UNLOCK INSTANCE");
    }
    return release;
  }

  /** Whether commits are blocked while held, so binary log coordinates match the snapshot. */
  boolean blocksCommits(boolean nonTransactionalTables) {
    return this != MYSQL_BACKUP_LOCK || nonTransactionalTables;
  }

  /**
   * The statement that shows the binary log file and position: MySQL 8.2 renamed {@code SHOW MASTER
   * STATUS} (8.4 removed the old name).
   */
  static String binlogStatus(ServerVersion v) {
    if (v.family() == ServerVersion.Family.MYSQL && v.atLeast(8, 2)) {
      return "SHOW BINARY LOG STATUS";
    }
    return "SHOW MASTER STATUS";
  }

  /** The GTID state variables worth recording, read with {@code SELECT @@name}. */
  static List<String> gtidVariables(ServerVersion v) {
    if (v.family() == ServerVersion.Family.MARIADB) {
      return v.atLeast(10, 0) ? List.of("gtid_binlog_pos", "gtid_current_pos") : List.of();
    }
    return v.atLeast(5, 6) ? List.of("gtid_executed") : List.of();
  }
}
