package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.CatalogEntry;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Reads the catalog from {@code information_schema}: one query per kind, for all databases.
 *
 * <p>Ids: a database is {@code db}; a table, view or sequence {@code db.name} (they share one
 * namespace); a routine {@code db/procedure/name} or {@code db/function/name}; a trigger {@code
 * db/trigger/name}. Files are relative to the data directory.
 */
final class Catalog {
  static final String SYSTEM_SCHEMAS = "('information_schema','performance_schema','sys')";

  private Catalog() {}

  static List<CatalogEntry> read(Connection c, ServerVersion v) throws SQLException {
    boolean mariadb = v.family() == ServerVersion.Family.MARIADB;
    // MySQL 8 keeps table definitions in its data dictionary (mysql.ibd), MariaDB in .frm files.
    boolean frm = mariadb || !v.atLeast(8, 0);
    List<CatalogEntry> out = new ArrayList<>();
    try (Statement s = c.createStatement()) {
      try (ResultSet rs =
          s.executeQuery(
              "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME"
                  + " FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN "
                  + SYSTEM_SCHEMAS
                  + " ORDER BY SCHEMA_NAME")) {
        while (rs.next()) {
          String db = rs.getString(1);
          out.add(
              new CatalogEntry(
                  db,
                  "database",
                  db,
                  null,
                  -1,
                  -1,
                  frm ? List.of(FileNames.encode(db) + "/db.opt") : List.of(),
                  attrs("charset", rs.getString(2), "collation", rs.getString(3))));
        }
      }
      Map<String, List<String>> partitions = new HashMap<>();
      try (ResultSet rs =
          s.executeQuery(
              "SELECT TABLE_SCHEMA, TABLE_NAME, PARTITION_NAME, SUBPARTITION_NAME"
                  + " FROM information_schema.PARTITIONS WHERE PARTITION_NAME IS NOT NULL"
                  + " AND TABLE_SCHEMA NOT IN "
                  + SYSTEM_SCHEMAS
                  + " ORDER BY TABLE_SCHEMA, TABLE_NAME, PARTITION_ORDINAL_POSITION,"
                  + " SUBPARTITION_ORDINAL_POSITION")) {
        while (rs.next()) {
          String sep = mariadb ? "#P#" : "#p#";
          String subSep = mariadb ? "#SP#" : "#sp#";
          String sub = rs.getString(4);
          partitions
              .computeIfAbsent(rs.getString(1) + "." + rs.getString(2), k -> new ArrayList<>())
              .add(
                  sep
                      + FileNames.encode(rs.getString(3))
                      + (sub == null ? "" : subSep + FileNames.encode(sub)));
        }
      }
      try (ResultSet rs =
          s.executeQuery(
              "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH,"
                  + " INDEX_LENGTH, CREATE_OPTIONS, ROW_FORMAT, TABLE_COLLATION"
                  + " FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN "
                  + SYSTEM_SCHEMAS
                  + " ORDER BY TABLE_SCHEMA, TABLE_NAME")) {
        while (rs.next()) {
          String db = rs.getString(1);
          String name = rs.getString(2);
          String type = rs.getString(3);
          String engine = rs.getString(4);
          String kind =
              switch (type == null ? "" : type.toUpperCase(Locale.ROOT)) {
                case "VIEW", "SYSTEM VIEW" -> "view";
                case "SEQUENCE" -> "sequence";
                default -> "table";
              };
          long rows = rs.getObject(5) == null ? -1 : rs.getLong(5);
          long size =
              rs.getObject(6) == null && rs.getObject(7) == null
                  ? -1
                  : rs.getLong(6) + rs.getLong(7);
          String base = FileNames.encode(db) + "/" + FileNames.encode(name);
          List<String> files = new ArrayList<>();
          if (frm) {
            files.add(base + ".frm");
          }
          if (!kind.equals("view")) {
            List<String> parts = partitions.get(db + "." + name);
            if (parts != null && frm && mariadb) {
              files.add(base + ".par");
            }
            for (String suffix : parts == null ? List.of("") : parts) {
              files.addAll(engineFiles(base + suffix, engine, frm));
            }
          }
          out.add(
              new CatalogEntry(
                  db + "." + name,
                  kind,
                  name,
                  db,
                  kind.equals("view") ? -1 : size,
                  kind.equals("view") ? -1 : rows,
                  files,
                  attrs(
                      "engine", engine,
                      "type", type,
                      "row_format", rs.getString(9),
                      "collation", rs.getString(10),
                      "create_options", rs.getString(8))));
        }
      }
      try (ResultSet rs =
          s.executeQuery(
              "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES"
                  + " WHERE ROUTINE_SCHEMA NOT IN "
                  + SYSTEM_SCHEMAS
                  + " ORDER BY ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE")) {
        while (rs.next()) {
          String db = rs.getString(1);
          String type = rs.getString(3).toLowerCase(Locale.ROOT);
          out.add(
              new CatalogEntry(
                  db + "/" + type + "/" + rs.getString(2),
                  "routine",
                  rs.getString(2),
                  db,
                  -1,
                  -1,
                  List.of(),
                  attrs("type", rs.getString(3))));
        }
      }
      try (ResultSet rs =
          s.executeQuery(
              "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE,"
                  + " ACTION_TIMING, EVENT_MANIPULATION FROM information_schema.TRIGGERS"
                  + " WHERE TRIGGER_SCHEMA NOT IN "
                  + SYSTEM_SCHEMAS
                  + " ORDER BY TRIGGER_SCHEMA, TRIGGER_NAME")) {
        while (rs.next()) {
          String db = rs.getString(1);
          String name = rs.getString(2);
          String table = rs.getString(3) + "." + rs.getString(4);
          List<String> files =
              frm
                  ? List.of(
                      FileNames.encode(db) + "/" + FileNames.encode(name) + ".TRN",
                      FileNames.encode(rs.getString(3))
                          + "/"
                          + FileNames.encode(rs.getString(4))
                          + ".TRG")
                  : List.of();
          out.add(
              new CatalogEntry(
                  db + "/trigger/" + name,
                  "trigger",
                  name,
                  table,
                  -1,
                  -1,
                  files,
                  attrs("timing", rs.getString(5), "event", rs.getString(6))));
        }
      }
    }
    return out;
  }

  private static List<String> engineFiles(String base, String engine, boolean frm) {
    String e = engine == null ? "" : engine.toLowerCase(Locale.ROOT);
    return switch (e) {
      case "innodb" -> List.of(base + ".ibd");
      case "aria" -> List.of(base + ".MAD", base + ".MAI");
      case "myisam" -> List.of(base + ".MYD", base + ".MYI");
      case "mrg_myisam" -> List.of(base + ".MRG");
      case "csv" -> List.of(base + ".CSV", base + ".CSM");
      case "archive" -> List.of(base + ".ARZ");
      default -> List.of();
    };
  }

  private static Map<String, String> attrs(String... kv) {
    Map<String, String> m = new LinkedHashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      if (kv[i + 1] != null) {
        m.put(kv[i], kv[i + 1]);
      }
    }
    return m;
  }
}
