package io.granule.plugin.mysql.internal;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Small questions to {@code information_schema}, with bound parameters. */
final class Schema {
  private Schema() {}

  private static List<String> strings(Connection c, String sql, String... args)
      throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < args.length; i++) {
        ps.setString(i + 1, args[i]);
      }
      List<String> out = new ArrayList<>();
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(rs.getString(1));
        }
      }
      return out;
    }
  }

  /** The table's TABLE_TYPE ({@code BASE TABLE}, {@code VIEW}, …), or null if absent. */
  static String tableType(Connection c, TableName t) throws SQLException {
    List<String> r =
        strings(
            c,
            "SELECT TABLE_TYPE FROM information_schema.TABLES"
                + " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            t.db(),
            t.table());
    return r.isEmpty() ? null : r.get(0);
  }

  static boolean tableExists(Connection c, TableName t) throws SQLException {
    return tableType(c, t) != null;
  }

  static boolean databaseExists(Connection c, String db) throws SQLException {
    return !strings(
            c, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db)
        .isEmpty();
  }

  /** The database's default character set and collation, or null if absent. */
  static String[] databaseDefaults(Connection c, String db) throws SQLException {
    try (PreparedStatement ps =
        c.prepareStatement(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME"
                + " FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?")) {
      ps.setString(1, db);
      try (ResultSet rs = ps.executeQuery()) {
        return rs.next() ? new String[] {rs.getString(1), rs.getString(2)} : null;
      }
    }
  }

  static List<String> triggers(Connection c, TableName t) throws SQLException {
    return strings(
        c,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS"
            + " WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME",
        t.db(),
        t.table());
  }

  /** Foreign key constraint names used in database {@code db} (they are unique per database). */
  static Set<String> foreignKeyNames(Connection c, String db) throws SQLException {
    return new HashSet<>(
        strings(
            c,
            "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS"
                + " WHERE CONSTRAINT_SCHEMA = ?",
            db));
  }

  /** Tables other than {@code t} whose foreign keys reference {@code t}, as {@code db.table}. */
  static List<String> referencingTables(Connection c, TableName t) throws SQLException {
    return strings(
        c,
        "SELECT DISTINCT CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME)"
            + " FROM information_schema.REFERENTIAL_CONSTRAINTS"
            + " WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?"
            + " AND NOT (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?)",
        t.db(),
        t.table(),
        t.db(),
        t.table());
  }

  static long count(Connection c, TableName t) throws SQLException {
    return Long.parseLong(Jdbc.queryString(c, "SELECT COUNT(*) FROM " + t.quoted()));
  }

  /**
   * {@code CHECKSUM TABLE … EXTENDED}: a checksum over every row's values, read row by row (not the
   * live checksum some engines keep), so the same rows give the same number on any server of a
   * version and row format.
   */
  static String checksum(Connection c, TableName t) throws SQLException {
    try (Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("CHECKSUM TABLE " + t.quoted() + " EXTENDED")) {
      return rs.next() ? rs.getString(2) : null;
    }
  }

  static String showCreateTable(Connection c, TableName t) throws SQLException {
    try (Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("SHOW CREATE TABLE " + t.quoted())) {
      rs.next();
      return rs.getString(2);
    }
  }

  /** ENGINE, ROW_FORMAT and CREATE_OPTIONS of a table (null values as empty strings). */
  static String[] storage(Connection c, TableName t) throws SQLException {
    try (PreparedStatement ps =
        c.prepareStatement(
            "SELECT ENGINE, ROW_FORMAT, CREATE_OPTIONS FROM information_schema.TABLES"
                + " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")) {
      ps.setString(1, t.db());
      ps.setString(2, t.table());
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          return new String[] {"", "", ""};
        }
        String[] out = new String[3];
        for (int i = 0; i < 3; i++) {
          out[i] = rs.getString(i + 1) == null ? "" : rs.getString(i + 1);
        }
        return out;
      }
    }
  }

  static boolean hasFulltextIndex(Connection c, TableName t) throws SQLException {
    return !strings(
            c,
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?"
                + " AND TABLE_NAME = ? AND INDEX_TYPE = 'FULLTEXT'",
            t.db(),
            t.table())
        .isEmpty();
  }
}
