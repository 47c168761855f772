package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Restores one table from a staging server into a live one, from "a staging directory holds the
 * snapshot's data directory" on: starts the staging server, moves the table to a schema of its own
 * there and dumps it ({@code pg_dump -Fc -t}), loads it into a fresh schema of the target ({@code
 * pg_restore --single-transaction}, leaving out foreign keys to tables not restored), then moves it
 * to its final name in one transaction (dropping the live table first with {@code replace}).
 *
 * <p>A partitioned table comes with all its partitions. Tables in tablespaces other than the
 * default are refused (their files are not extracted). Owner and grants are not restored: the
 * target's connecting role owns the table.
 */
final class TableRestore {
  private static final String SEP = "\u001f";

  private final ObjectRestoreRequest request;
  private final PgUrl target;
  private final String database;
  private final String qualifiedName;
  private final String finalSchema;
  private final String finalTable;
  private final String tmpSchema;
  private final List<String> notes = new ArrayList<>();
  private boolean replacing;

  private TableRestore(
      ObjectRestoreRequest request,
      PgUrl target,
      String database,
      String qualifiedName,
      String finalSchema,
      String finalTable,
      String tmpSchema) {
    this.request = request;
    this.target = target;
    this.database = database;
    this.qualifiedName = qualifiedName;
    this.finalSchema = finalSchema;
    this.finalTable = finalTable;
    this.tmpSchema = tmpSchema;
  }

  /**
   * Checks the request and works out the names: the source {@code DB/SCHEMA.TABLE}, the final name
   * ({@code as}; or the original with {@code replace}; or {@code granule_<8 hex of the snapshot
   * id>.TABLE}).
   */
  static TableRestore plan(ObjectRestoreRequest request, String snapshotId)
      throws ApplicationException {
    String id = request.objectId();
    int slash = id.indexOf('/');
    int dot = slash < 0 ? -1 : id.indexOf('.', slash);
    if (slash <= 0 || dot < 0 || dot == slash + 1 || dot == id.length() - 1) {
      throw new ApplicationException(
          Reason.NOT_FOUND,
          "postgres object id '" + id + "' is not a table id (expected DATABASE/SCHEMA.TABLE)");
    }
    String database = id.substring(0, slash);
    String qualified = id.substring(slash + 1);
    String schema = qualified.substring(0, dot - slash - 1);
    String table = qualified.substring(dot - slash);
    PgUrl target = PgUrl.parse(request.target());
    String prefix = snapshotId.substring(0, Math.min(8, snapshotId.length()));
    String snapshotSchema = "granule_" + prefix.toLowerCase(Locale.ROOT);
    String finalSchema;
    String finalTable;
    if (request.as() != null && !request.as().isBlank()) {
      String as = request.as().strip();
      int d = as.indexOf('.');
      finalSchema = d < 0 ? snapshotSchema : as.substring(0, d);
      finalTable = d < 0 ? as : as.substring(d + 1);
      if (finalSchema.isEmpty() || finalTable.isEmpty()) {
        throw new ApplicationException(
            Reason.FAILED, "invalid target name '" + as + "' (expected SCHEMA.TABLE or TABLE)");
      }
    } else if (request.replace()) {
      finalSchema = schema;
      finalTable = table;
    } else {
      finalSchema = snapshotSchema;
      finalTable = table;
    }
    byte[] random = new byte[4];
    new SecureRandom().nextBytes(random);
    StringBuilder tmp =
        new StringBuilder("granule_restore_" + prefix.toLowerCase(Locale.ROOT) + "_");
    for (byte b : random) {
      tmp.append(String.format(Locale.ROOT, "%02x", b));
    }
    return new TableRestore(
        request, target, database, qualified, finalSchema, finalTable, tmp.toString());
  }

  String database() {
    return database;
  }

  String restoredAs() {
    return finalSchema + "." + finalTable;
  }

  List<String> notes() {
    return notes;
  }

  /**
   * Connects to the target and checks that the final name is free (or, with replace, notes that the
   * live table will be replaced). Cheap, so it runs before anything is extracted.
   *
   * @throws ApplicationException TARGET_EXISTS when the name is taken and replace is not set, or
   *     AUTH/UNREACHABLE/NOT_FOUND for the target connection
   */
  void checkTarget() throws ApplicationException {
    Connection c = Jdbc.connect(target);
    try {
      boolean exists = relationExists(c, finalSchema, finalTable);
      if (exists && !request.replace()) {
        throw new ApplicationException(
            Reason.TARGET_EXISTS,
            "postgres "
                + target
                + ": "
                + restoredAs()
                + " already exists; restore under another name (--as SCHEMA.TABLE) or replace it"
                + " (--replace)");
      }
      replacing = exists && request.replace();
      if (request.replace() && !exists) {
        notes.add(restoredAs() + " did not exist in the target: nothing was replaced");
      }
    } catch (SQLException e) {
      throw Jdbc.translate(target, e);
    } finally {
      Jdbc.closeQuietly(c);
    }
  }

  private static boolean relationExists(Connection c, String schema, String table)
      throws SQLException {
    try (PreparedStatement ps =
        c.prepareStatement(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                + " WHERE n.nspname = ? AND c.relname = ?")) {
      ps.setString(1, schema);
      ps.setString(2, table);
      try (ResultSet rs = ps.executeQuery()) {
        return rs.next();
      }
    }
  }

  /** One relation of the table being restored (the table, or a partition). */
  private record Rel(long oid, String schema, String name, String relkind, long tablespace) {
    String quoted() {
      return ident(schema) + "." + ident(name);
    }
  }

  /**
   * Starts the staging server, dumps the table and loads it into the target.
   *
   * @param roles roles to try for connecting to the staging server (it trusts its socket), in
   *     order: the one the backup connected as, the target's, {@code postgres}
   */
  ObjectRestoreReport run(StagingServer staging, List<String> roles, PhaseLog phases)
      throws ApplicationException, IOException {
    phases.begin("staging start", "PostgreSQL " + staging.binaries().major() + " recovery");
    staging.start();

    phases.begin("dump", database + "/" + qualifiedName);
    String role = findRole(staging, roles);
    List<Rel> rels = lookup(staging, role);
    Rel table = rels.get(0);
    Set<String> leaveOut = foreignKeysToLeaveOut(staging, role, rels);
    StringBuilder move = new StringBuilder("CREATE SCHEMA " + ident(tmpSchema) + ";\n");
    for (Rel r : rels) {
      move.append("ALTER TABLE ")
          .append(r.quoted())
          .append(" SET SCHEMA ")
          .append(ident(tmpSchema))
          .append(";\n");
    }
    check(staging.psql(database, role, move.toString()), "moving the table aside in staging");
    Checksum.Value staged =
        Checksum.parse(
            check(
                    staging.psql(
                        database,
                        role,
                        Checksum.script(ident(tmpSchema) + "." + ident(table.name()))),
                    "checksumming the table in staging")
                .stdout());
    Path dump = staging.root().resolve("table.dump");
    List<String> dumpCmd = new ArrayList<>();
    dumpCmd.add(staging.binaries().program("pg_dump"));
    dumpCmd.addAll(List.of("-Fc", "-f", dump.toString()));
    for (Rel r : rels) {
      dumpCmd.add("-t");
      dumpCmd.add(pattern(tmpSchema) + "." + pattern(r.name()));
    }
    dumpCmd.addAll(staging.connectionArgs(database, role));
    check(
        Processes.run(dumpCmd, StagingServer.cleanEnv(), staging.root(), null, Duration.ofHours(6)),
        "pg_dump in staging");

    phases.begin("load", target + " " + restoredAs());
    Path list = staging.root().resolve("table.list");
    Processes.Result toc =
        check(
            Processes.run(
                List.of(staging.binaries().program("pg_restore"), "-l", dump.toString()),
                StagingServer.cleanEnv(),
                staging.root(),
                null,
                Duration.ofMinutes(5)),
            "pg_restore -l");
    StringBuilder kept = new StringBuilder();
    for (String line : toc.stdout().split("\n", -1)) {
      if (isForeignKeyToLeaveOut(line, leaveOut)) {
        kept.append(';');
      }
      kept.append(line).append('\n');
    }
    Files.writeString(list, kept.toString(), StandardCharsets.UTF_8);
    for (String fk : leaveOut) {
      notes.add(
          "foreign key "
              + fk
              + " left out: it refers to a table that was not restored (add it back by hand)");
    }
    Checksum.Value loaded = load(staging, dump, list, table, rels);
    phases.end();
    if (!loaded.equals(staged)) {
      throw new ApplicationException(
          Reason.FAILED,
          "postgres "
              + target
              + ": "
              + restoredAs()
              + " differs from the snapshot after loading: actual="
              + loaded.rows()
              + " rows "
              + loaded.checksum()
              + " expected="
              + staged.rows()
              + " rows "
              + staged.checksum());
    }
    notes.add("owner and grants not restored: " + target.user() + " owns " + restoredAs());
    return new ObjectRestoreReport(
        restoredAs(), loaded.rows(), loaded.checksum(), phases.phases(), notes);
  }

  private Checksum.Value load(
      StagingServer staging, Path dump, Path list, Rel table, List<Rel> rels)
      throws ApplicationException, IOException {
    Connection c = Jdbc.connect(target);
    boolean tmpCreated = false;
    try {
      try (Statement st = c.createStatement()) {
        st.execute("CREATE SCHEMA " + ident(tmpSchema));
        tmpCreated = true;
      }
      List<String> cmd = new ArrayList<>();
      cmd.add(staging.binaries().program("pg_restore"));
      cmd.addAll(
          List.of(
              "--no-owner",
              "--no-privileges",
              "--no-security-labels",
              "--single-transaction",
              "--exit-on-error",
              "-L",
              list.toString(),
              "-d",
              conninfo(target),
              dump.toString()));
      Map<String, String> env = new HashMap<>();
      String pw = Passwords.find(target);
      if (pw != null) {
        env.put("PGPASSWORD", pw);
      }
      check(
          Processes.run(cmd, env, staging.root(), null, Duration.ofHours(6)),
          "pg_restore into " + target);
      c.setAutoCommit(false);
      try (Statement st = c.createStatement()) {
        st.execute("CREATE SCHEMA IF NOT EXISTS " + ident(finalSchema));
        if (request.replace() && relationExists(c, finalSchema, finalTable)) {
          st.execute("DROP TABLE " + ident(finalSchema) + "." + ident(finalTable));
          replacing = true;
        }
        if (!table.name().equals(finalTable)) {
          st.execute(
              "ALTER TABLE "
                  + ident(tmpSchema)
                  + "."
                  + ident(table.name())
                  + " RENAME TO "
                  + ident(finalTable));
        }
        Map<String, String> renamed = renameClashes(c, st);
        st.execute(
            "ALTER TABLE "
                + ident(tmpSchema)
                + "."
                + ident(finalTable)
                + " SET SCHEMA "
                + ident(finalSchema));
        for (Rel r : rels.subList(1, rels.size())) {
          st.execute(
              "ALTER TABLE "
                  + ident(tmpSchema)
                  + "."
                  + ident(renamed.getOrDefault(r.name(), r.name()))
                  + " SET SCHEMA "
                  + ident(finalSchema));
        }
        st.execute("DROP SCHEMA " + ident(tmpSchema));
      }
      c.commit();
      tmpCreated = false;
      c.setAutoCommit(true);
      if (replacing) {
        notes.add("replaced the live table " + restoredAs() + " in one transaction");
      }
      return Checksum.compute(c, ident(finalSchema) + "." + ident(finalTable), null);
    } catch (SQLException e) {
      String detail = e.getMessage();
      if ("2BP01".equals(e.getSQLState())) {
        throw new ApplicationException(
            Reason.FAILED,
            "postgres "
                + target
                + ": cannot replace "
                + restoredAs()
                + ": other objects depend on it ("
                + detail
                + "); restore under a new name (--as) and swap by hand",
            e);
      }
      if ("42P07".equals(e.getSQLState())) {
        throw new ApplicationException(
            Reason.TARGET_EXISTS,
            "postgres " + target + ": a name is taken in schema " + finalSchema + ": " + detail,
            e);
      }
      throw new ApplicationException(
          Reason.FAILED,
          "postgres " + target + ": loading " + restoredAs() + " failed: " + detail,
          e);
    } finally {
      if (tmpCreated) {
        dropTmpSchema(c);
      }
      Jdbc.closeQuietly(c);
    }
  }

  /**
   * Renames what would clash in the final schema (indexes, sequences, partitions named like live
   * ones, e.g. {@code orders_pkey} when restoring {@code orders} as {@code orders_copy} next to it)
   * to {@code <final table>_<name>}, made unique.
   *
   * @return old name to new name
   */
  private Map<String, String> renameClashes(Connection c, Statement st) throws SQLException {
    record Clash(String name, String relkind) {}
    List<Clash> clashes = new ArrayList<>();
    try (PreparedStatement ps =
        c.prepareStatement(
            "SELECT c.relname, c.relkind FROM pg_class c"
                + " JOIN pg_namespace n ON n.oid = c.relnamespace"
                + " WHERE n.nspname = ? AND c.relname <> ? AND c.relkind IN ('r', 'p', 'i', 'I', 'S')"
                + " AND EXISTS (SELECT 1 FROM pg_class c2 JOIN pg_namespace n2"
                + " ON n2.oid = c2.relnamespace WHERE n2.nspname = ? AND c2.relname = c.relname)"
                + " ORDER BY c.relname")) {
      ps.setString(1, tmpSchema);
      ps.setString(2, finalTable);
      ps.setString(3, finalSchema);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          clashes.add(new Clash(rs.getString(1), rs.getString(2)));
        }
      }
    }
    Map<String, String> renamed = new HashMap<>();
    for (Clash clash : clashes) {
      String to = null;
      for (int n = 1; to == null; n++) {
        String base = finalTable + "_" + clash.name();
        String suffix = n == 1 ? "" : "_" + n;
        String candidate = truncate(base, 63 - suffix.length()) + suffix;
        if (!relationExists(c, finalSchema, candidate)
            && !relationExists(c, tmpSchema, candidate)) {
          to = candidate;
        }
      }
      String kind =
          switch (clash.relkind()) {
            case "i", "I" -> "INDEX";
            case "S" -> "SEQUENCE";
            default -> "TABLE";
          };
      st.execute(
          "ALTER "
              + kind
              + " "
              + ident(tmpSchema)
              + "."
              + ident(clash.name())
              + " RENAME TO "
              + ident(to));
      renamed.put(clash.name(), to);
      notes.add(
          kind.toLowerCase(Locale.ROOT)
              + " "
              + clash.name()
              + " restored as "
              + to
              + ": the name is taken in schema "
              + finalSchema);
    }
    return renamed;
  }

  /** {@code s} cut to at most {@code maxBytes} UTF-8 bytes (PostgreSQL's name limit is 63). */
  private static String truncate(String s, int maxBytes) {
    String out = s;
    while (out.getBytes(StandardCharsets.UTF_8).length > maxBytes) {
      out = out.substring(0, out.length() - 1);
    }
    return out;
  }

  private void dropTmpSchema(Connection c) {
    try {
      if (!c.getAutoCommit()) {
        c.rollback();
        c.setAutoCommit(true);
      }
      try (Statement st = c.createStatement()) {
        st.execute("DROP SCHEMA IF EXISTS " + ident(tmpSchema) + " CASCADE");
      }
    } catch (SQLException e) {
      notes.add("could not drop the temporary schema " + tmpSchema + ": " + e.getMessage());
    }
  }

  private String findRole(StagingServer staging, List<String> roles)
      throws ApplicationException, IOException {
    List<String> errors = new ArrayList<>();
    for (String role : new LinkedHashSet<>(roles)) {
      Processes.Result r = staging.psql(database, role, "SELECT 1;");
      if (r.ok()) {
        return role;
      }
      String err = r.tail();
      if (err.contains("database \"") && err.contains("does not exist")) {
        throw new ApplicationException(
            Reason.NOT_FOUND,
            "postgres: database '" + database + "' is not in the snapshot (" + err + ")");
      }
      errors.add(role + ": " + err);
    }
    throw new ApplicationException(
        Reason.FAILED,
        "cannot connect to the staging server with any of the roles "
            + roles
            + ": "
            + String.join("; ", errors));
  }

  private List<Rel> lookup(StagingServer staging, String role)
      throws ApplicationException, IOException {
    String sql =
        "SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltablespace FROM pg_class c"
            + " JOIN pg_namespace n ON n.oid = c.relnamespace"
            + " WHERE n.nspname || '.' || c.relname = "
            + literal(qualifiedName)
            + " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            + " ORDER BY n.nspname;\n";
    List<Rel> found = parseRels(check(staging.psql(database, role, sql), "looking up").stdout());
    if (found.isEmpty()) {
      throw new ApplicationException(
          Reason.NOT_FOUND,
          "postgres: table '"
              + database
              + "/"
              + qualifiedName
              + "' is not in the snapshot (list the snapshot's catalog to see its tables)");
    }
    Rel table = found.get(0);
    if (!table.relkind().equals("r") && !table.relkind().equals("p")) {
      throw new ApplicationException(
          Reason.UNSUPPORTED,
          "postgres: '"
              + database
              + "/"
              + qualifiedName
              + "' is not a table (relkind "
              + table.relkind()
              + "): only tables and partitioned tables can be restored");
    }
    List<Rel> rels = new ArrayList<>();
    rels.add(table);
    if (table.relkind().equals("p")) {
      String parts =
          "SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltablespace"
              + " FROM pg_partition_tree("
              + table.oid()
              + ") p JOIN pg_class c ON c.oid = p.relid"
              + " JOIN pg_namespace n ON n.oid = c.relnamespace"
              + " WHERE c.oid <> "
              + table.oid()
              + " ORDER BY p.level, c.relname;\n";
      rels.addAll(
          parseRels(check(staging.psql(database, role, parts), "listing partitions").stdout()));
    }
    for (Rel r : rels) {
      if (r.tablespace() != 0) {
        throw new ApplicationException(
            Reason.UNSUPPORTED,
            "postgres: "
                + r.schema()
                + "."
                + r.name()
                + " lives in a tablespace other than the default (oid "
                + r.tablespace()
                + "); restoring tables from other tablespaces is not supported yet");
      }
    }
    return rels;
  }

  private static List<Rel> parseRels(String out) {
    List<Rel> rels = new ArrayList<>();
    for (String line : out.split("\n")) {
      if (line.isBlank()) {
        continue;
      }
      String[] f = line.split(SEP, -1);
      rels.add(new Rel(Long.parseLong(f[0]), f[1], f[2], f[3], Long.parseLong(f[4].strip())));
    }
    return rels;
  }

  private Set<String> foreignKeysToLeaveOut(StagingServer staging, String role, List<Rel> rels)
      throws ApplicationException, IOException {
    StringBuilder oids = new StringBuilder();
    for (Rel r : rels) {
      oids.append(oids.length() == 0 ? "" : ", ").append(r.oid());
    }
    String sql =
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0"
            + " AND conrelid IN ("
            + oids
            + ") AND confrelid NOT IN ("
            + oids
            + ") ORDER BY conname;\n";
    Set<String> out = new LinkedHashSet<>();
    for (String line :
        check(staging.psql(database, role, sql), "listing foreign keys").stdout().split("\n")) {
      if (!line.isBlank()) {
        out.add(line.strip());
      }
    }
    return out;
  }

  /** True for a TOC line of pg_restore -l that is one of the foreign keys to leave out. */
  static boolean isForeignKeyToLeaveOut(String line, Set<String> names) {
    if (!line.contains(" FK CONSTRAINT ") || line.startsWith(";")) {
      return false;
    }
    List<String> tokens = List.of(line.split(" "));
    return names.stream().anyMatch(tokens::contains);
  }

  private static Processes.Result check(Processes.Result r, String what)
      throws ApplicationException {
    if (!r.ok()) {
      throw new ApplicationException(Reason.FAILED, what + " failed: " + r.tail());
    }
    return r;
  }

  /** A libpq connection string for {@code url}, without its password. */
  static String conninfo(PgUrl url) {
    StringBuilder s = new StringBuilder();
    s.append("host=").append(value(url.host()));
    s.append(" port=").append(url.port());
    s.append(" dbname=").append(value(url.database()));
    s.append(" user=").append(value(url.user()));
    s.append(" application_name=granule");
    for (Map.Entry<String, String> p : url.params().entrySet()) {
      if (List.of("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout")
          .contains(p.getKey())) {
        s.append(' ').append(p.getKey()).append('=').append(value(p.getValue()));
      }
    }
    return s.toString();
  }

  private static String value(String v) {
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'";
  }

  static String ident(String s) {
    return "\"" + s.replace("\"", "\"\"") + "\"";
  }

  static String literal(String s) {
    return "'" + s.replace("'", "''") + "'";
  }

  /** A pg_dump -t pattern matching exactly {@code name}. */
  static String pattern(String name) {
    return "\"" + name.replace("\"", "\"\"") + "\"";
  }
}
