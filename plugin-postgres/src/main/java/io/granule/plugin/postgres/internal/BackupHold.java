package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.Captured.CapturedFile;
import io.granule.engine.spi.Quiesce;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Non-exclusive backup mode held on one dedicated connection: {@code pg_backup_start} at start,
 * {@code pg_backup_stop} at {@link #release}. Closing the connection (on {@link #close}, on {@link
 * #abort}, or when the maximum hold time passes) makes the server abort backup mode.
 *
 * <p>{@link #release} captures {@code backup_label}, {@code tablespace_map} (when not empty) and
 * the WAL segments from the start LSN's to the stop LSN's, copied from the live {@code pg_wal} into
 * a temporary directory right after {@code pg_backup_stop} so WAL recycling cannot race the engine;
 * {@link #close} deletes that directory.
 *
 * <p>Thread-safe: the timer, the engine's thread and a closing session may race; the state machine
 * lets exactly one of them end the hold.
 */
final class BackupHold implements Quiesce {
  private static final Pattern LABEL_FILE =
      Pattern.compile("START WAL LOCATION: \\S+ \\(file ([0-9A-F]{24})\\)");
  private static final Pattern LABEL_TIMELINE = Pattern.compile("START TIMELINE: (\\d+)");

  private enum State {
    HELD,
    RELEASING,
    RELEASED,
    EXPIRED,
    LOST,
    CLOSED
  }

  private final PgUrl url;
  private final Path dataDirectory;
  private final Duration maxHold;
  private final Connection conn;
  private final String startLsn;
  private final ScheduledExecutorService timer;
  private final Consumer<BackupHold> onClose;
  private final AtomicReference<State> state = new AtomicReference<>(State.HELD);
  private volatile Path captureDir;

  private BackupHold(
      PgUrl url,
      Path dataDirectory,
      Duration maxHold,
      Connection conn,
      String startLsn,
      ScheduledExecutorService timer,
      Consumer<BackupHold> onClose) {
    this.url = url;
    this.dataDirectory = dataDirectory;
    this.maxHold = maxHold;
    this.conn = conn;
    this.startLsn = startLsn;
    this.timer = timer;
    this.onClose = onClose;
  }

  static BackupHold start(
      PgUrl url, Path dataDirectory, Duration maxHold, Consumer<BackupHold> onClose)
      throws ApplicationException {
    if (maxHold.isNegative() || maxHold.isZero()) {
      throw new IllegalArgumentException("maxHold must be positive: " + maxHold);
    }
    // Named so an operator (and a test) can tell the connection that holds backup mode.
    Connection conn = Jdbc.connect(url, "granule backup");
    ScheduledThreadPoolExecutor timer =
        new ScheduledThreadPoolExecutor(
            1,
            r -> {
              Thread t = new Thread(r, "granule-postgres-hold " + url.instanceKey());
              t.setDaemon(true);
              return t;
            });
    timer.setRemoveOnCancelPolicy(true);
    try {
      String label = "granule " + java.time.Instant.now();
      String lsn;
      try (PreparedStatement ps =
          conn.prepareStatement("SELECT pg_backup_start(?, fast => true)::text")) {
        ps.setString(1, label);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          lsn = rs.getString(1);
        }
      }
      BackupHold hold = new BackupHold(url, dataDirectory, maxHold, conn, lsn, timer, onClose);
      timer.schedule(hold::expire, maxHold.toNanos(), TimeUnit.NANOSECONDS);
      return hold;
    } catch (SQLException e) {
      timer.shutdownNow();
      Jdbc.closeQuietly(conn);
      throw new ApplicationException(
          Reason.FAILED,
          "postgres "
              + url
              + ": pg_backup_start failed ("
              + e.getMessage()
              + "); the role needs superuser or EXECUTE on pg_backup_start and pg_backup_stop",
          e);
    }
  }

  /** The LSN pg_backup_start returned. */
  String startLsn() {
    return startLsn;
  }

  private void expire() {
    if (state.compareAndSet(State.HELD, State.EXPIRED)) {
      // Closing the connection makes the server abort backup mode.
      Jdbc.closeQuietly(conn);
    }
  }

  @Override
  public void check() throws ApplicationException {
    State s = state.get();
    if (s == State.HELD) {
      boolean valid;
      try {
        valid = conn.isValid(5);
      } catch (SQLException e) {
        valid = false;
      }
      if (valid) {
        return;
      }
      if (state.compareAndSet(State.HELD, State.LOST)) {
        Jdbc.closeQuietly(conn);
      }
      s = state.get();
    }
    throw ended(s);
  }

  private ApplicationException ended(State s) {
    return switch (s) {
      case EXPIRED ->
          new ApplicationException(
              Reason.FAILED,
              "postgres "
                  + url
                  + ": backup mode ended early: the maximum hold time "
                  + maxHold
                  + " passed before release; the snapshot is not application-consistent (raise"
                  + " the hold time or make the snapshot faster)");
      case LOST ->
          new ApplicationException(
              Reason.FAILED,
              "postgres "
                  + url
                  + ": backup mode ended early: the backup connection was lost; the snapshot is not"
                  + " application-consistent");
      case RELEASING, RELEASED ->
          new ApplicationException(
              Reason.FAILED, "postgres " + url + ": backup mode was already released");
      default ->
          new ApplicationException(
              Reason.FAILED, "postgres " + url + ": backup mode was already closed");
    };
  }

  @Override
  public Captured release() throws ApplicationException {
    if (!state.compareAndSet(State.HELD, State.RELEASING)) {
      throw ended(state.get());
    }
    timer.shutdownNow();
    try {
      return stopAndCapture();
    } catch (SQLException e) {
      throw new ApplicationException(
          Reason.FAILED, "postgres " + url + ": pg_backup_stop failed: " + e.getMessage(), e);
    } catch (IOException e) {
      throw new ApplicationException(
          Reason.FAILED,
          "postgres "
              + url
              + ": copying WAL from "
              + dataDirectory.resolve("pg_wal")
              + " failed ("
              + e.getMessage()
              + "); the backup must run on the database host with read access to the data"
              + " directory",
          e);
    } finally {
      state.set(State.RELEASED);
      Jdbc.closeQuietly(conn);
    }
  }

  private Captured stopAndCapture() throws SQLException, IOException {
    String stopLsn;
    String labelFile;
    String spcmapFile;
    try (Statement st = conn.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT lsn::text, labelfile, spcmapfile"
                    + " FROM pg_backup_stop(wait_for_archive => false)")) {
      rs.next();
      stopLsn = rs.getString(1);
      labelFile = rs.getString(2);
      spcmapFile = rs.getString(3) == null ? "" : rs.getString(3);
    }
    // Everything after pg_backup_stop only reads: backup mode has ended.
    String stopWal;
    try (PreparedStatement ps = conn.prepareStatement("SELECT pg_walfile_name(?::pg_lsn)")) {
      ps.setString(1, stopLsn);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        stopWal = rs.getString(1);
      }
    }
    long segmentSize =
        Long.parseLong(
            PostgresSession.query(
                conn, "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"));
    Matcher fm = LABEL_FILE.matcher(labelFile);
    Matcher tm = LABEL_TIMELINE.matcher(labelFile);
    if (!fm.find() || !tm.find()) {
      throw new SQLException("unexpected backup label from pg_backup_stop: " + labelFile);
    }
    String startWal = fm.group(1);
    Map<String, String> metadata = new LinkedHashMap<>();
    metadata.put("start_lsn", startLsn);
    metadata.put("stop_lsn", stopLsn);
    metadata.put("timeline", tm.group(1));
    metadata.put("start_wal", startWal);
    metadata.put("stop_wal", stopWal);
    metadata.put("wal_segment_size", Long.toString(segmentSize));
    metadata.put("labelfile", labelFile);
    metadata.put("spcmapfile", spcmapFile);
    metadata.put("data_directory", dataDirectory.toString());
    // Database OIDs let a restore extract only the directory of the database it needs.
    try (Statement st = conn.createStatement();
        ResultSet rs = st.executeQuery("SELECT oid, datname FROM pg_database")) {
      while (rs.next()) {
        metadata.put("database-oid." + rs.getString(2), Long.toString(rs.getLong(1)));
      }
    }

    Path dir = Files.createTempDirectory("granule-pg-capture-");
    captureDir = dir;
    List<CapturedFile> files = new ArrayList<>();
    Path label = dir.resolve("backup_label");
    Files.writeString(label, labelFile, StandardCharsets.UTF_8);
    files.add(new CapturedFile("backup_label", () -> Files.newInputStream(label)));
    if (!spcmapFile.isEmpty()) {
      Path map = dir.resolve("tablespace_map");
      Files.writeString(map, spcmapFile, StandardCharsets.UTF_8);
      files.add(new CapturedFile("tablespace_map", () -> Files.newInputStream(map)));
    }
    Path walDir = Files.createDirectory(dir.resolve("pg_wal"));
    for (String segment : segments(startWal, stopWal, segmentSize)) {
      Path copy = walDir.resolve(segment);
      Files.copy(dataDirectory.resolve("pg_wal").resolve(segment), copy);
      files.add(new CapturedFile("pg_wal/" + segment, () -> Files.newInputStream(copy)));
    }
    return new Captured(metadata, files);
  }

  /** WAL segment file names from {@code first} to {@code last}, both included, on one timeline. */
  static List<String> segments(String first, String last, long segmentSize) {
    long perId = 0x1_0000_0000L / segmentSize;
    String tli = first.substring(0, 8);
    if (!last.startsWith(tli)) {
      throw new IllegalArgumentException(
          "WAL files " + first + " and " + last + " are on different timelines");
    }
    long from = segno(first, perId);
    long to = segno(last, perId);
    if (to < from || to - from > 1_000_000) {
      throw new IllegalArgumentException("bad WAL range " + first + " .. " + last);
    }
    List<String> out = new ArrayList<>();
    for (long n = from; n <= to; n++) {
      out.add(String.format(Locale.ROOT, "%s%08X%08X", tli, n / perId, n % perId));
    }
    return out;
  }

  private static long segno(String name, long perId) {
    return Long.parseLong(name.substring(8, 16), 16) * perId
        + Long.parseLong(name.substring(16, 24), 16);
  }

  /** Ends backup mode if it is still held, keeping what a release handed out. Never throws. */
  void abort() {
    if (state.compareAndSet(State.HELD, State.CLOSED)) {
      timer.shutdownNow();
      Jdbc.closeQuietly(conn);
    }
  }

  @Override
  public void close() {
    abort();
    timer.shutdownNow();
    Jdbc.closeQuietly(conn);
    Path dir = captureDir;
    captureDir = null;
    if (dir != null) {
      FileTrees.delete(dir);
    }
    onClose.accept(this);
  }
}
