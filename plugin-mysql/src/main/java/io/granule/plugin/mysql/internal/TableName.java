package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;

/**
 * A table's database and name, written {@code db.table} (split at the first dot) or with backquotes
 * for names holding dots: {@code `my.db`.`t`}.
 */
record TableName(String db, String table) {

  static TableName parse(String s) throws ApplicationException {
    String db;
    String table;
    if (s.startsWith("`")) {
      int end = closing(s, 0);
      if (end < 0 || end + 1 >= s.length() || s.charAt(end + 1) != '.') {
        throw invalid(s);
      }
      db = unquote(s.substring(0, end + 1));
      String rest = s.substring(end + 2);
      table = rest.startsWith("`") && closing(rest, 0) == rest.length() - 1 ? unquote(rest) : rest;
    } else {
      int dot = s.indexOf('.');
      if (dot <= 0 || dot == s.length() - 1) {
        throw invalid(s);
      }
      db = s.substring(0, dot);
      String rest = s.substring(dot + 1);
      table = rest.startsWith("`") && closing(rest, 0) == rest.length() - 1 ? unquote(rest) : rest;
    }
    if (db.isEmpty() || table.isEmpty() || db.length() > 64 || table.length() > 64) {
      throw invalid(s);
    }
    return new TableName(db, table);
  }

  private static ApplicationException invalid(String s) {
    return new ApplicationException(
        Reason.NOT_FOUND, "invalid table name '" + s + "' (expected DB.TABLE or `DB`.`TABLE`)");
  }

  /** The index of the backquote closing the one at {@code start}, or -1. */
  private static int closing(String s, int start) {
    for (int i = start + 1; i < s.length(); i++) {
      if (s.charAt(i) == '`') {
        if (i + 1 < s.length() && s.charAt(i + 1) == '`') {
          i++;
        } else {
          return i;
        }
      }
    }
    return -1;
  }

  private static String unquote(String q) {
    return q.substring(1, q.length() - 1).replace("``", "`");
  }

  /** {@code `db`.`table`}. */
  String quoted() {
    return Jdbc.quote(db) + "." + Jdbc.quote(table);
  }

  @Override
  public String toString() {
    return db + "." + table;
  }
}
