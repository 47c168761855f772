package io.granule.plugin.postgres.internal;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The content checksum of a table: the row count and the sum, as a number, of the first 64 bits of
 * each row's MD5 (of its text form), read as a signed integer. It does not depend on row order,
 * counts duplicate rows, streams (no aggregate string) and can be computed by hand on any server:
 *
 * <pre>
 * BEGIN;
 * SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres';
 * SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex';
 * SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)
 *   FROM schema.table AS t;
 * COMMIT;
 * </pre>
 *
 * The settings fix how rows print (time stamps with time zone, dates, intervals, floats, bytea), so
 * the same rows give the same checksum whatever the session's defaults. The reported checksum is
 * {@code rowsum64:<sum>}.
 */
final class Checksum {
  private Checksum() {}

  /** Rows and checksum of a table. */
  record Value(long rows, String checksum) {}

  static final String SETTINGS =
      "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD';"
          + " SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1;"
          + " SET LOCAL bytea_output = 'hex';";

  /** The query over {@code from}: a quoted relation name, optionally followed by a WHERE clause. */
  static String query(String relation, String where) {
    return "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint"
        + "::numeric), 0)::text FROM "
        + relation
        + " AS t"
        + (where == null ? "" : " WHERE " + where);
  }

  /** Runs the checksum in its own transaction on {@code c}. */
  static Value compute(Connection c, String relation, String where) throws SQLException {
    boolean auto = c.getAutoCommit();
    c.setAutoCommit(false);
    try (Statement st = c.createStatement()) {
      st.execute(SETTINGS);
      try (ResultSet rs = st.executeQuery(query(relation, where))) {
        rs.next();
        Value v = new Value(rs.getLong(1), "rowsum64:" + rs.getString(2));
        c.commit();
        return v;
      }
    } catch (SQLException e) {
      c.rollback();
      throw e;
    } finally {
      c.setAutoCommit(auto);
    }
  }

  /** The same as a psql script, printing {@code rows<US>sum}. */
  static String script(String relation) {
    return "BEGIN;\n" + SETTINGS + "\n" + query(relation, null) + ";\nCOMMIT;\n";
  }

  static Value parse(String psqlOutput) {
    String line = psqlOutput.strip();
    String[] parts = line.split("\u001f");
    return new Value(Long.parseLong(parts[0].strip()), "rowsum64:" + parts[1].strip());
  }
}
