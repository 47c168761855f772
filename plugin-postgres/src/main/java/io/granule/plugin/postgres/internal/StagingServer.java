package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A throwaway PostgreSQL server on a copy of a data directory, in a staging directory of its own:
 *
 * <pre>
 * root/data        the copy (extracted from a snapshot)
 * root/wal         WAL segments captured at backup, fetched by restore_command
 * root/s           the unix socket directory (the server listens on no TCP address)
 * root/server.log  the server's log, quoted in error messages
 * </pre>
 *
 * <p>{@link #prepare} replaces the copy's configuration with a minimal one (the original may name
 * hosts, archive commands, libraries or files of the live server) and sets up recovery: with a
 * backup label and WAL (application-consistent snapshots) it recovers to the end of the backup and
 * promotes; without (crash-consistent snapshots) the server's crash recovery replays the copy's own
 * WAL. When the process runs as root the server runs as {@code postgres} (or the {@code pg-user}
 * option) through {@code runuser}, since PostgreSQL refuses root.
 *
 * <p>{@link #close} stops the server and deletes the staging directory; it never throws.
 */
final class StagingServer implements AutoCloseable {
  /** Opens a captured file by its name ({@code backup_label}, {@code pg_wal/…}). */
  @FunctionalInterface
  interface CapturedSource {
    InputStream open(String name) throws IOException;
  }

  private final Path root;
  private final PgBinaries bins;
  private final String runAs;
  private final Duration startTimeout;
  private int port;
  private boolean started;
  private Path socketDir;

  /**
   * @param root an empty staging directory the server's user can traverse to
   * @param runAs the user to run the server as, or null to run it as this process's user
   */
  StagingServer(Path root, PgBinaries bins, String runAs, Duration startTimeout) {
    this.root = root;
    this.bins = bins;
    this.runAs = runAs;
    this.startTimeout = startTimeout;
  }

  /** The user the server should run as: {@code pg-user} (default postgres) if we are root. */
  static String serverUser(Map<String, String> options) {
    boolean root;
    try {
      root = ((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid")) == 0;
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      root = "root".equals(System.getProperty("user.name"));
    }
    return root ? options.getOrDefault("pg-user", "postgres") : null;
  }

  Path root() {
    return root;
  }

  Path dataDir() {
    return root.resolve("data");
  }

  Path socketDir() {
    return socketDir;
  }

  int port() {
    return port;
  }

  PgBinaries binaries() {
    return bins;
  }

  /**
   * Makes the copy in {@link #dataDir} startable: drops the live server's leftovers and
   * configuration, writes a staging configuration and, when {@code captured} is given, the backup
   * label, the WAL and the recovery settings.
   *
   * @param captured the captured files, or null for a crash-consistent copy
   * @param walFiles the names of the captured WAL segments ({@code pg_wal/…})
   * @param partialCopy true if other databases' directories were left out of the copy (their WAL
   *     records then refer to missing pages, which recovery must skip)
   */
  void prepare(CapturedSource captured, List<String> walFiles, boolean partialCopy)
      throws IOException {
    Path data = dataDir();
    for (String leftover :
        List.of(
            "postmaster.pid",
            "postmaster.opts",
            "standby.signal",
            "recovery.signal",
            "backup_label",
            "backup_label.old",
            "tablespace_map",
            "tablespace_map.old",
            "postgresql.conf",
            "postgresql.auto.conf",
            "pg_hba.conf",
            "pg_ident.conf")) {
      Files.deleteIfExists(data.resolve(leftover));
    }
    // Tablespace links point at the live server's directories: a staging server must never
    // write there. Tables in other tablespaces are refused before they are read.
    Path tblspc = data.resolve("pg_tblspc");
    if (Files.isDirectory(tblspc, LinkOption.NOFOLLOW_LINKS)) {
      try (DirectoryStream<Path> ds = Files.newDirectoryStream(tblspc)) {
        for (Path p : ds) {
          if (Files.isSymbolicLink(p)) {
            Files.delete(p);
          } else {
            FileTrees.delete(p);
          }
        }
      }
    }
    Path walLink = data.resolve("pg_wal");
    if (Files.isSymbolicLink(walLink)) {
      // A link to the live server's WAL directory: never follow it from a copy.
      String to = Files.readSymbolicLink(walLink).toString();
      Files.delete(walLink);
      if (captured == null) {
        throw new ApplicationException(
            Reason.UNSUPPORTED,
            "the snapshot's pg_wal is a link to "
                + to
                + " and the snapshot was taken without --app: its WAL is not in the copy, so"
                + " crash recovery cannot run");
      }
    }
    for (String dir :
        List.of(
            "pg_wal",
            "pg_wal/archive_status",
            "pg_replslot",
            "pg_stat_tmp",
            "pg_tblspc",
            "pg_notify",
            "pg_snapshots",
            "pg_dynshmem",
            "pg_commit_ts",
            "pg_serial",
            "pg_stat",
            "pg_twophase",
            "pg_logical",
            "pg_logical/snapshots",
            "pg_logical/mappings")) {
      Files.createDirectories(data.resolve(dir));
    }
    // A unix socket path holds at most 107 bytes: a deep staging directory gets a short one.
    socketDir = root.resolve("s");
    if (socketDir.toString().length() > 80) {
      socketDir = Files.createTempDirectory(Path.of("/tmp"), "granule-pg-s");
    }
    Files.createDirectories(socketDir);
    Path wal = Files.createDirectories(root.resolve("wal"));
    port = freePort();

    StringBuilder conf = new StringBuilder();
    conf.append("# Granule staging server: throwaway, reachable only through its socket.\n");
    conf.append("port = ").append(port).append('\n');
    conf.append("listen_addresses = ''\n");
    conf.append("unix_socket_directories = ").append(literal(socketDir().toString())).append('\n');
    conf.append("max_connections = 20\n");
    conf.append("shared_buffers = 32MB\n");
    conf.append("fsync = off\n");
    conf.append("synchronous_commit = off\n");
    conf.append("autovacuum = off\n");
    conf.append("archive_mode = off\n");
    conf.append("hot_standby = off\n");
    conf.append("max_wal_senders = 0\n");
    conf.append("wal_level = replica\n");
    conf.append("shared_preload_libraries = ''\n");
    conf.append("logging_collector = off\n");
    conf.append("lc_messages = 'C'\n");
    if (partialCopy) {
      // Other databases' files were left out; their WAL records are skipped with a warning.
      conf.append("ignore_invalid_pages = on\n");
    }
    if (captured != null) {
      try (InputStream in = captured.open("backup_label")) {
        Files.copy(in, data.resolve("backup_label"));
      }
      for (String name : walFiles) {
        String segment = name.substring(name.lastIndexOf('/') + 1);
        try (InputStream in = captured.open(name)) {
          Files.copy(in, wal.resolve(segment), StandardCopyOption.REPLACE_EXISTING);
        }
      }
      Files.writeString(data.resolve("recovery.signal"), "", StandardCharsets.UTF_8);
      conf.append("restore_command = ")
          .append(literal("cp \"" + wal + "/%f\" \"%p\""))
          .append('\n');
      conf.append("recovery_target = 'immediate'\n");
      conf.append("recovery_target_action = 'promote'\n");
    }
    Files.writeString(data.resolve("postgresql.conf"), conf.toString(), StandardCharsets.UTF_8);
    Files.writeString(data.resolve("postgresql.auto.conf"), "", StandardCharsets.UTF_8);
    Files.writeString(data.resolve("pg_hba.conf"), "local all all trust\n", StandardCharsets.UTF_8);
    Files.writeString(data.resolve("pg_ident.conf"), "", StandardCharsets.UTF_8);
  }

  /**
   * Starts the server and waits until it accepts connections (after recovery).
   *
   * @throws ApplicationException FAILED with the end of the server's log
   */
  void start() throws ApplicationException, IOException {
    Path log = root.resolve("server.log");
    Files.writeString(log, "", StandardCharsets.UTF_8);
    Files.setPosixFilePermissions(dataDir(), PosixFilePermissions.fromString("rwx------"));
    if (runAs != null) {
      Processes.Result chown =
          Processes.run(
              List.of("chown", "-R", runAs + ":", root.toString(), socketDir.toString()),
              Map.of(),
              null,
              null,
              Duration.ofMinutes(10));
      if (!chown.ok()) {
        throw new ApplicationException(
            Reason.FAILED,
            "cannot hand the staging directory "
                + root
                + " to user '"
                + runAs
                + "' (the server refuses to run as root): "
                + chown.tail());
      }
    }
    List<String> cmd = new ArrayList<>();
    cmd.addAll(asServerUser());
    cmd.addAll(
        List.of(
            bins.program("pg_ctl"),
            "-D",
            dataDir().toString(),
            "-l",
            log.toString(),
            "-w",
            "-t",
            Long.toString(Math.max(1, startTimeout.toSeconds())),
            "start"));
    started = true;
    Processes.Result r = Processes.run(cmd, cleanEnv(), root, null, startTimeout.plusSeconds(30));
    if (r.ok()) {
      awaitReady(log);
      return;
    }
    throw new ApplicationException(
        Reason.FAILED,
        "the staging PostgreSQL "
            + bins.major()
            + " server did not start on the snapshot's data directory: "
            + logTail(log)
            + (r.tail().isEmpty() ? "" : " (pg_ctl: " + r.tail().replace('\n', ' ') + ")"));
  }

  /**
   * Waits until the server accepts connections. With hot standby off, pg_ctl returns once recovery
   * reaches a consistent state, before the end of recovery and promotion; the postmaster then
   * writes "ready" into its pid file.
   */
  private void awaitReady(Path log) throws ApplicationException, IOException {
    Path pidFile = dataDir().resolve("postmaster.pid");
    long deadline = System.nanoTime() + startTimeout.toNanos();
    while (true) {
      List<String> lines;
      try {
        lines = Files.readAllLines(pidFile, StandardCharsets.UTF_8);
      } catch (NoSuchFileException e) {
        throw new ApplicationException(
            Reason.FAILED,
            "the staging PostgreSQL "
                + bins.major()
                + " server stopped during recovery: "
                + logTail(log));
      }
      if (lines.size() >= 8 && lines.get(7).strip().equals("ready")) {
        return;
      }
      if (System.nanoTime() > deadline) {
        throw new ApplicationException(
            Reason.FAILED,
            "the staging PostgreSQL "
                + bins.major()
                + " server did not finish recovery within "
                + startTimeout
                + " (option staging-timeout): "
                + logTail(log));
      }
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while waiting for the staging server", e);
      }
    }
  }

  private List<String> asServerUser() {
    return runAs == null ? List.of() : List.of("runuser", "-u", runAs, "--");
  }

  static String logTail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      List<String> interesting =
          lines.stream()
              .filter(l -> l.contains("FATAL") || l.contains("PANIC") || l.contains("ERROR"))
              .toList();
      List<String> pick = interesting.isEmpty() ? lines : interesting;
      return String.join(" | ", pick.subList(Math.max(0, pick.size() - 6), pick.size())).strip();
    } catch (IOException e) {
      return "(no server log: " + e.getMessage() + ")";
    }
  }

  /** The environment for staging programs: without the caller's libpq variables (null values). */
  static Map<String, String> cleanEnv() {
    Map<String, String> env = new HashMap<>();
    for (String k :
        List.of(
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGSSLMODE")) {
      env.put(k, null);
    }
    return env;
  }

  /**
   * Runs SQL in the staging server with psql, stopping at the first error.
   *
   * @return psql's result (unaligned, tuples only)
   */
  Processes.Result psql(String database, String user, String sql) throws IOException {
    List<String> cmd =
        List.of(
            bins.program("psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\u001f",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            socketDir().toString(),
            "-p",
            Integer.toString(port),
            "-U",
            user,
            "-d",
            database,
            "-f",
            "-");
    return Processes.run(cmd, noPgEnv(), root, sql, Duration.ofMinutes(10));
  }

  /** The arguments that point a libpq program at the staging server. */
  List<String> connectionArgs(String database, String user) {
    return List.of(
        "-h", socketDir().toString(), "-p", Integer.toString(port), "-U", user, "-d", database);
  }

  private static Map<String, String> noPgEnv() {
    Map<String, String> env = cleanEnv();
    env.put("PGCONNECT_TIMEOUT", "10");
    return env;
  }

  /** Stops the server at once (the copy is thrown away). Never throws. */
  void stop() {
    if (!started) {
      return;
    }
    started = false;
    List<String> cmd = new ArrayList<>(asServerUser());
    cmd.addAll(
        List.of(
            bins.program("pg_ctl"), "-D", dataDir().toString(), "-m", "immediate", "-w", "stop"));
    try {
      Processes.Result r = Processes.run(cmd, cleanEnv(), root, null, Duration.ofSeconds(90));
      if (r.ok()) {
        return;
      }
    } catch (IOException e) {
      // Fall through to killing the postmaster by its pid.
    }
    killPostmaster();
  }

  private void killPostmaster() {
    try {
      Path pidFile = dataDir().resolve("postmaster.pid");
      if (!Files.exists(pidFile)) {
        return;
      }
      String first = Files.readAllLines(pidFile, StandardCharsets.UTF_8).get(0).strip();
      long pid = Long.parseLong(first);
      ProcessHandle.of(pid)
          .ifPresent(
              h -> {
                h.descendants().forEach(ProcessHandle::destroyForcibly);
                h.destroyForcibly();
              });
    } catch (IOException | RuntimeException e) {
      // Best effort: nothing else can be done.
    }
  }

  @Override
  public void close() {
    stop();
    FileTrees.delete(root);
    if (socketDir != null && !socketDir.startsWith(root)) {
      FileTrees.delete(socketDir);
    }
  }

  static String literal(String s) {
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'";
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }
}
