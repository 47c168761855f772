package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.CatalogEntry;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the catalog of every database of an instance that allows connections (and that the role may
 * connect to): databases, schemas and relations (tables, partitioned tables, TOAST tables, indexes,
 * sequences, views, materialized views), with one query per database for the relations.
 *
 * <p>Ids: {@code DB} for a database, {@code DB/SCHEMA} for a schema, {@code DB/SCHEMA.NAME} for a
 * relation. A table's files are its own, its TOAST table's and TOAST index's and its indexes' main
 * files ({@code pg_relation_filepath}, relative to the data directory; forks and 1 GiB segments
 * share that prefix).
 */
final class CatalogReader {
  private CatalogReader() {}

  private static final String DATABASES =
      "SELECT oid, datname, pg_database_size(oid), dattablespace"
          + " FROM pg_database WHERE datallowconn AND NOT datistemplate"
          + " AND has_database_privilege(oid, 'CONNECT') ORDER BY datname";

  private static final String SCHEMAS =
      "SELECT oid, nspname FROM pg_namespace"
          + " WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
          + " AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"
          + " ORDER BY nspname";

  // Every relation outside the system schemas, plus the TOAST tables and TOAST indexes (in
  // pg_toast) of those relations; sizes with everything attached for tables.
  private static final String RELATIONS =
      "SELECT c.oid, n.nspname, c.relname, c.relkind, c.relfilenode,"
          + " coalesce(ts.spcname, 'pg_default'),"
          + " CASE WHEN c.reltuples < 0 THEN -1 ELSE c.reltuples::bigint END,"
          + " pg_relation_filepath(c.oid),"
          + " CASE WHEN c.relkind IN ('r', 'p', 'm', 't') THEN pg_total_relation_size(c.oid)"
          + " ELSE pg_relation_size(c.oid) END,"
          + " coalesce(i.indrelid, 0), coalesce(owner.oid, 0)"
          + " FROM pg_class c"
          + " JOIN pg_namespace n ON n.oid = c.relnamespace"
          + " LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace"
          + " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
          + " LEFT JOIN pg_class owner ON c.relkind = 't' AND owner.reltoastrelid = c.oid"
          + " WHERE c.relkind IN ('r', 'p', 't', 'S', 'i', 'I', 'v', 'm')"
          + " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
          + " AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"
          + " ORDER BY n.nspname, c.relname";

  /**
   * Reads the catalog of the instance {@code main} is connected to.
   *
   * @param url the instance, to connect to its other databases
   */
  static List<CatalogEntry> read(PgUrl url, Connection main) throws ApplicationException {
    List<CatalogEntry> out = new ArrayList<>();
    try {
      String current;
      try (Statement st = main.createStatement();
          ResultSet rs = st.executeQuery("SELECT current_database()")) {
        rs.next();
        current = rs.getString(1);
      }
      record Db(long oid, String name, long size, long tablespace) {}
      List<Db> dbs = new ArrayList<>();
      try (Statement st = main.createStatement();
          ResultSet rs = st.executeQuery(DATABASES)) {
        while (rs.next()) {
          dbs.add(new Db(rs.getLong(1), rs.getString(2), rs.getLong(3), rs.getLong(4)));
        }
      }
      for (Db db : dbs) {
        out.add(
            new CatalogEntry(
                db.name(),
                "database",
                db.name(),
                null,
                db.size(),
                -1,
                List.of("base/" + db.oid()),
                Map.of("oid", Long.toString(db.oid()))));
        if (db.name().equals(current)) {
          readDatabase(db.name(), db.oid(), main, out);
        } else {
          Connection c;
          try {
            c = Jdbc.connect(url.withDatabase(db.name()));
          } catch (ApplicationException e) {
            if (e.reason() == Reason.NOT_FOUND) {
              continue; // dropped since it was listed
            }
            throw e;
          }
          try {
            readDatabase(db.name(), db.oid(), c, out);
          } finally {
            Jdbc.closeQuietly(c);
          }
        }
      }
    } catch (SQLException e) {
      throw new ApplicationException(
          Reason.FAILED, "postgres " + url + ": reading the catalog failed: " + e.getMessage(), e);
    }
    return out;
  }

  private record Rel(
      long oid,
      String schema,
      String name,
      String relkind,
      long relfilenode,
      String tablespace,
      long rows,
      String path,
      long size,
      long indexOf,
      long toastOf) {}

  private static void readDatabase(String db, long dbOid, Connection c, List<CatalogEntry> out)
      throws SQLException {
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery(SCHEMAS)) {
      while (rs.next()) {
        out.add(
            new CatalogEntry(
                db + "/" + rs.getString(2),
                "schema",
                rs.getString(2),
                db,
                -1,
                -1,
                List.of(),
                Map.of("oid", Long.toString(rs.getLong(1)), "database-oid", Long.toString(dbOid))));
      }
    }
    Map<Long, Rel> rels = new LinkedHashMap<>();
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery(RELATIONS)) {
      while (rs.next()) {
        Rel r =
            new Rel(
                rs.getLong(1),
                rs.getString(2),
                rs.getString(3),
                rs.getString(4),
                rs.getLong(5),
                rs.getString(6),
                rs.getLong(7),
                rs.getString(8),
                rs.getLong(9),
                rs.getLong(10),
                rs.getLong(11));
        rels.put(r.oid(), r);
      }
    }
    // TOAST tables and their indexes belong to the relation that owns them; those of system
    // catalogs (whose owners were not selected) are left out.
    Map<Long, List<Rel>> indexesOf = new HashMap<>();
    Map<Long, Rel> toastOf = new HashMap<>();
    for (Rel r : rels.values()) {
      if (r.indexOf() != 0) {
        indexesOf.computeIfAbsent(r.indexOf(), k -> new ArrayList<>()).add(r);
      }
      if (r.toastOf() != 0) {
        toastOf.put(r.toastOf(), r);
      }
    }
    for (Rel r : rels.values()) {
      Rel owner = ownerOf(r, rels);
      if (r.schema().equals("pg_toast") && !ownedByUserRelation(r, rels)) {
        continue;
      }
      String kind = kind(r.relkind());
      String id = db + "/" + r.schema() + "." + r.name();
      String parent = owner == null ? db + "/" + r.schema() : id(db, owner);
      List<String> files = new ArrayList<>();
      addFile(files, r);
      if (kind.equals("table") || kind.equals("materialized-view") || kind.equals("toast")) {
        Rel toast = toastOf.get(r.oid());
        if (toast != null) {
          addFile(files, toast);
          for (Rel ti : indexesOf.getOrDefault(toast.oid(), List.of())) {
            addFile(files, ti);
          }
        }
        for (Rel idx : indexesOf.getOrDefault(r.oid(), List.of())) {
          addFile(files, idx);
        }
      }
      Map<String, String> attributes = new LinkedHashMap<>();
      attributes.put("oid", Long.toString(r.oid()));
      attributes.put("relfilenode", Long.toString(r.relfilenode()));
      attributes.put("tablespace", r.tablespace());
      attributes.put("relkind", r.relkind());
      attributes.put("database-oid", Long.toString(dbOid));
      out.add(
          new CatalogEntry(
              id, kind, r.schema() + "." + r.name(), parent, r.size(), rows(r), files, attributes));
    }
  }

  private static long rows(Rel r) {
    return switch (r.relkind()) {
      case "r", "p", "m", "t" -> r.rows();
      default -> -1;
    };
  }

  private static void addFile(List<String> files, Rel r) {
    if (r.path() != null && !r.path().isEmpty()) {
      files.add(r.path());
    }
  }

  /** True if {@code r} (a TOAST table or index) belongs, through its owners, to a selected one. */
  private static boolean ownedByUserRelation(Rel r, Map<Long, Rel> rels) {
    for (int depth = 0; r != null && depth < 4; depth++) {
      if (!r.schema().equals("pg_toast")) {
        return true;
      }
      r = ownerOf(r, rels);
    }
    return false;
  }

  /** The relation an index or TOAST table belongs to, or null. */
  private static Rel ownerOf(Rel r, Map<Long, Rel> rels) {
    if (r.indexOf() != 0) {
      return rels.get(r.indexOf());
    }
    if (r.toastOf() != 0) {
      return rels.get(r.toastOf());
    }
    return null;
  }

  private static String id(String db, Rel r) {
    return db + "/" + r.schema() + "." + r.name();
  }

  private static String kind(String relkind) {
    return switch (relkind) {
      case "r" -> "table";
      case "p" -> "partitioned-table";
      case "t" -> "toast";
      case "S" -> "sequence";
      case "i", "I" -> "index";
      case "v" -> "view";
      case "m" -> "materialized-view";
      default -> "relation";
    };
  }
}
