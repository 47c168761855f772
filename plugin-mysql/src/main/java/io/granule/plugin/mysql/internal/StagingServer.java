package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A private server on a copy of a data directory: its own option file (no other option file is
 * read), a free port on 127.0.0.1, a socket, error log and pid file in the staging directory, no
 * grant tables (so the backed-up credentials are not needed), no binary log, no replication, no
 * events. Starting it runs InnoDB (and Aria) crash recovery, which brings the copy to the
 * snapshot's consistency point. Closing it kills the process: the copy is thrown away.
 */
final class StagingServer implements AutoCloseable {
  /**
   * Server variables of the backed-up server that a staging server must share to open its files.
   */
  static final List<String> MUST_MATCH =
      List.of(
          "innodb_page_size",
          "innodb_data_file_path",
          "innodb_undo_tablespaces",
          "lower_case_table_names");

  /** Where InnoDB names a tablespace file it needs for recovery, relative to the datadir. */
  private static final Pattern TABLESPACE_FILE = Pattern.compile("\\./([^'\\s]+?\\.ibd)\\b");

  /**
   * A staging server that would not start, with the tablespace files the error log says recovery
   * needed (the redo log holds changes to them), so the caller can extract them and retry.
   */
  static final class StartException extends ApplicationException {
    private static final long serialVersionUID = 1L;
    private final transient Set<String> missing;
    private final boolean preparedTransactions;

    StartException(
        String message, Set<String> missing, boolean preparedTransactions, Throwable cause) {
      super(Reason.FAILED, message, cause);
      this.missing = Set.copyOf(missing);
      this.preparedTransactions = preparedTransactions;
    }

    /** True if the server refused prepared transactions it could not decide on. */
    boolean preparedTransactions() {
      return preparedTransactions;
    }

    /** Files relative to the data directory, e.g. {@code crm/customers.ibd}. */
    Set<String> missing() {
      return missing;
    }
  }

  private final Process process;
  private final Path datadir;
  private final int port;
  private final Path dir;
  private final Path errorLog;
  private final Binaries binaries;
  private boolean rolledBackPrepared;

  private StagingServer(
      Process process, int port, Path datadir, Path dir, Path errorLog, Binaries binaries) {
    this.process = process;
    this.datadir = datadir;
    this.port = port;
    this.dir = dir;
    this.errorLog = errorLog;
    this.binaries = binaries;
  }

  /**
   * Starts a server on {@code datadir} and waits until it accepts connections.
   *
   * @param dir a private directory for the option file, socket, logs and temporary files
   * @param settings values of {@link #MUST_MATCH} variables recorded at backup (others ignored)
   * @throws ApplicationException {@link Reason#FAILED} with the end of the server's error log
   */
  static StagingServer start(
      Path datadir, Path dir, Binaries binaries, Map<String, String> settings, Duration timeout)
      throws ApplicationException {
    return start(datadir, dir, binaries, settings, timeout, null);
  }

  /**
   * Starts a server on {@code datadir}, with the binary log at {@code binlog} when not null.
   *
   * <p>With the binary log the server's own crash recovery decides transactions the copy holds as
   * prepared (committed if their XID is in the binary log, else rolled back): exactly what the live
   * server would have done. Without it, the server refuses to start on prepared transactions; they
   * are then rolled back ({@code --tc-heuristic-recover=ROLLBACK}, a run after which the server
   * exits) and the server started again, which a note reports.
   *
   * @param binlog the binary log's base name (e.g. {@code DATADIR/mysql-bin}) whose index lists the
   *     extracted binary log files, or null
   */
  static StagingServer start(
      Path datadir,
      Path dir,
      Binaries binaries,
      Map<String, String> settings,
      Duration timeout,
      Path binlog)
      throws ApplicationException {
    List<String> log =
        binlog == null
            ? List.of("skip-log-bin")
            : List.of(
                "log-bin=" + binlog.toAbsolutePath(),
                "log-bin-index=" + binlog.toAbsolutePath() + ".index",
                "server-id=1");
    try {
      return startOnce(datadir, dir, binaries, settings, timeout, log);
    } catch (StartException e) {
      if (!e.preparedTransactions()) {
        throw e;
      }
    }
    List<String> heuristic = new ArrayList<>(log);
    heuristic.add("tc-heuristic-recover=ROLLBACK");
    try {
      StagingServer s = startOnce(datadir, dir, binaries, settings, timeout, heuristic);
      s.rolledBackPrepared = true;
      return s;
    } catch (StartException e) {
      // expected: it asks to be restarted without the option
    }
    StagingServer s = startOnce(datadir, dir, binaries, settings, timeout, log);
    s.rolledBackPrepared = true;
    return s;
  }

  private static StagingServer startOnce(
      Path datadir,
      Path dir,
      Binaries binaries,
      Map<String, String> settings,
      Duration timeout,
      List<String> extra)
      throws ApplicationException {
    try {
      Path tmp = Files.createDirectories(dir.resolve("tmp"));
      Path errorLog = dir.resolve("staging.err");
      Files.deleteIfExists(errorLog);
      int port = freePort();
      List<String> lines = new ArrayList<>();
      lines.add("[mysqld]");
      lines.add("datadir=" + datadir.toAbsolutePath());
      lines.add("port=" + port);
      lines.add("bind-address=127.0.0.1");
      lines.add("socket=" + dir.resolve("staging.sock").toAbsolutePath());
      lines.add("pid-file=" + dir.resolve("staging.pid").toAbsolutePath());
      lines.add("log-error=" + errorLog.toAbsolutePath());
      lines.add("tmpdir=" + tmp.toAbsolutePath());
      lines.add("skip-grant-tables");
      lines.add("skip-name-resolve");
      lines.add("skip-slave-start");
      lines.add("event-scheduler=DISABLED");
      lines.add("innodb-force-recovery=0");
      lines.add("innodb-buffer-pool-size=128M");
      if (binaries.version().family() == ServerVersion.Family.MYSQL) {
        lines.add("mysqlx=OFF"); // the X plugin would listen on the fixed port 33060
      }
      for (String name : MUST_MATCH) {
        String value = settings.get(name);
        if (value != null && !value.isBlank() && value.matches("[A-Za-z0-9_.:;/+-]+")) {
          lines.add(name + "=" + value);
        }
      }
      lines.addAll(extra);
      Path options = dir.resolve("staging.cnf");
      Files.write(options, lines, StandardCharsets.UTF_8);
      List<String> cmd = new ArrayList<>();
      cmd.add(binaries.server().toString());
      cmd.add("--defaults-file=" + options.toAbsolutePath());
      if ("root".equals(System.getProperty("user.name"))) {
        // The server refuses to run as root unless told; the copy is private and thrown away.
        cmd.add("--user=root");
      }
      ProcessBuilder pb =
          new ProcessBuilder(cmd)
              .redirectErrorStream(true)
              .redirectOutput(dir.resolve("staging.out").toFile());
      pb.environment().remove("MYSQL_PWD");
      Process p = pb.start();
      p.getOutputStream().close();
      StagingServer s = new StagingServer(p, port, datadir, dir, errorLog, binaries);
      try {
        s.awaitReady(timeout);
      } catch (ApplicationException | RuntimeException e) {
        s.close();
        throw e;
      }
      return s;
    } catch (ApplicationException e) {
      throw e;
    } catch (IOException e) {
      throw new ApplicationException(
          Reason.FAILED, "unable to start a staging server in " + dir + ": " + e.getMessage(), e);
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }

  private Set<String> missingTablespaces() {
    Set<String> missing = new TreeSet<>();
    try {
      for (String line : Files.readAllLines(errorLog, StandardCharsets.UTF_8)) {
        if (line.contains("[ERROR]")) {
          Matcher m = TABLESPACE_FILE.matcher(line);
          while (m.find()) {
            missing.add(m.group(1));
          }
        }
      }
    } catch (IOException e) {
      // no log, nothing to add
    }
    return missing;
  }

  private void awaitReady(Duration timeout) throws ApplicationException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      if (!process.isAlive()) {
        throw new StartException(
            "the staging server ("
                + binaries.version()
                + ") exited with status "
                + process.exitValue()
                + " while starting on the extracted data directory; its log ends with:\n"
                + logTail(20),
            missingTablespaces(),
            logTail(50).contains("prepared transactions"),
            null);
      }
      try {
        Jdbc.closeQuietly(connect(1000));
        return;
      } catch (ApplicationException e) {
        if (System.nanoTime() > deadline) {
          throw new ApplicationException(
              Reason.FAILED,
              "the staging server did not accept connections within "
                  + timeout.toSeconds()
                  + " s; its log ends with:\n"
                  + logTail(20),
              e);
        }
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ApplicationException(Reason.FAILED, "interrupted while starting", e);
      }
    }
  }

  /** The last {@code n} lines of the error log, without the noise about open file limits. */
  String logTail(int n) {
    try {
      List<String> lines =
          Files.readAllLines(errorLog, StandardCharsets.UTF_8).stream()
              .filter(l -> !l.contains("max_open_files"))
              .toList();
      return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  /** A new connection as root (grant tables are off). */
  Connection connect() throws ApplicationException {
    return connect(10_000);
  }

  private Connection connect(int timeoutMillis) throws ApplicationException {
    return Jdbc.connect(
        new MysqlUrl("root", "127.0.0.1", port, null, Map.of()), null, timeoutMillis);
  }

  /** True if undecided prepared transactions were rolled back to start (see {@link #start}). */
  boolean rolledBackPreparedTransactions() {
    return rolledBackPrepared;
  }

  int port() {
    return port;
  }

  Path datadir() {
    return datadir;
  }

  Path directory() {
    return dir;
  }

  Binaries binaries() {
    return binaries;
  }

  /**
   * Writes the rows of {@code table} as SQL (one statement per line) to {@code file} with the
   * family's dump tool: no CREATE TABLE, no triggers, binary columns in hex, column lists.
   */
  void dumpRows(TableName table, Path file, Duration timeout) throws ApplicationException {
    List<String> cmd =
        List.of(
            binaries.dump().toString(),
            "--no-defaults",
            "--protocol=TCP",
            "--host=127.0.0.1",
            "--port=" + port,
            "--user=root",
            "--single-transaction",
            "--no-create-info",
            "--skip-triggers",
            "--skip-comments",
            "--skip-add-locks",
            "--no-tablespaces",
            "--hex-blob",
            "--complete-insert",
            "--default-character-set=utf8mb4",
            "--result-file=" + file.toAbsolutePath(),
            table.db(),
            table.table());
    try {
      Path err = dir.resolve("dump.err");
      ProcessBuilder pb =
          new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(err.toFile());
      // The staging server needs no password; never hand the live one to a child process.
      pb.environment().remove("MYSQL_PWD");
      Process p = pb.start();
      p.getOutputStream().close();
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        throw new ApplicationException(
            Reason.FAILED, binaries.dump().getFileName() + " did not finish within " + timeout);
      }
      if (p.exitValue() != 0) {
        throw new ApplicationException(
            Reason.FAILED,
            binaries.dump().getFileName()
                + " of "
                + table
                + " failed with status "
                + p.exitValue()
                + ": "
                + Files.readString(err, StandardCharsets.UTF_8).strip());
      }
    } catch (ApplicationException e) {
      throw e;
    } catch (IOException e) {
      throw new ApplicationException(
          Reason.FAILED, "unable to run " + binaries.dump() + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApplicationException(Reason.FAILED, "interrupted while dumping " + table, e);
    }
  }

  /** Kills the server (its files are thrown away, so no clean shutdown is needed). */
  @Override
  public void close() {
    process.destroyForcibly();
    try {
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public String toString() {
    return String.format(
        Locale.ROOT, "staging %s on 127.0.0.1:%d in %s", binaries.version(), port, dir);
  }
}
