package io.granule.plugin.mysql.internal;

import java.util.Locale;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * What a staging server needs of a data directory to open one table: the InnoDB system tablespace,
 * redo and undo logs, the Aria logs (MariaDB), the {@code mysql} schema, the data dictionary (MySQL
 * 8), and of the table's database only {@code db.opt} and the table's own files. Other databases
 * are left out: MariaDB 10.11 was seen to start and recover with redo records for tablespaces left
 * out (it skips them), and the table's files are complete.
 *
 * <p>Paths are relative to the directory extracted, '/' separated.
 */
final class ExtractFilter {
  private static final Pattern UNDO = Pattern.compile("undo_?\\d+|.*\\.ibu");

  private ExtractFilter() {}

  /** InnoDB files at the top of a data, log or undo directory. */
  static boolean isInnodbFile(String name) {
    return name.startsWith("ibdata")
        || name.startsWith("ib_logfile")
        || UNDO.matcher(name).matches()
        || (name.startsWith("#ib_") && name.endsWith(".dblwr"));
  }

  /** The filter for an InnoDB home directory outside the data directory. */
  static Predicate<String> innodbOnly() {
    return rel -> {
      int slash = rel.indexOf('/');
      String top = slash < 0 ? rel : rel.substring(0, slash);
      return top.equals("#innodb_redo") || (slash < 0 && isInnodbFile(rel));
    };
  }

  /** The filter for the data directory when restoring {@code table}. */
  static Predicate<String> forTable(TableName table) {
    String dbDir = FileNames.encode(table.db());
    boolean exact = FileNames.isExact(table.db()) && FileNames.isExact(table.table());
    String base = FileNames.encode(table.table()).toLowerCase(Locale.ROOT);
    return rel -> {
      String[] parts = rel.split("/", -1);
      String top = parts[0];
      if (parts.length == 1) {
        return top.equals("mysql")
            || top.equals("#innodb_redo")
            || top.equals(dbDir)
            || isInnodbFile(top)
            || top.startsWith("aria_log")
            || top.startsWith("ddl_recovery")
            || top.equals("tc.log")
            || top.equals("mysql_upgrade_info")
            || top.equals("mysql.ibd");
      }
      if (top.equals("mysql") || top.equals("#innodb_redo")) {
        return true;
      }
      if (!top.equals(dbDir) || parts.length != 2) {
        return false;
      }
      String name = parts[1];
      if (!exact || name.equals("db.opt")) {
        return true;
      }
      String lower = name.toLowerCase(Locale.ROOT);
      return lower.startsWith(base + ".") || lower.startsWith(base + "#");
    };
  }
}
