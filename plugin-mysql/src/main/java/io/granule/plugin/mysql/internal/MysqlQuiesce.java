package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.Quiesce;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * A hold on one dedicated connection: the locks belong to that session, so closing the connection
 * (release, abort, or the timer at the maximum hold) makes the server drop them.
 *
 * <p>Thread-safe: the timer thread and the caller synchronize on this object.
 */
final class MysqlQuiesce implements Quiesce {
  private enum State {
    HELD,
    EXPIRED,
    LOST,
    RELEASED,
    CLOSED
  }

  private final Connection connection;
  private final Dialect dialect;
  private final boolean nonTransactional;
  private final Map<String, String> metadata;
  private final Duration maxHold;
  private final ScheduledExecutorService timer;
  private State state = State.HELD;

  /**
   * Takes ownership of {@code connection}, on which the quiesce statements already ran, and starts
   * the timer that ends the hold after {@code maxHold}.
   */
  MysqlQuiesce(
      Connection connection,
      Dialect dialect,
      boolean nonTransactional,
      Map<String, String> metadata,
      Duration maxHold) {
    this.connection = connection;
    this.dialect = dialect;
    this.nonTransactional = nonTransactional;
    this.metadata = Map.copyOf(metadata);
    this.maxHold = maxHold;
    ScheduledThreadPoolExecutor t =
        new ScheduledThreadPoolExecutor(
            1,
            r -> {
              Thread th = new Thread(r, "granule-mysql-quiesce-timer");
              th.setDaemon(true);
              return th;
            });
    t.setRemoveOnCancelPolicy(true);
    this.timer = t;
    timer.schedule(this::expire, maxHold.toNanos(), TimeUnit.NANOSECONDS);
  }

  /** The metadata recorded while the locks were taken. */
  Map<String, String> metadata() {
    return metadata;
  }

  private synchronized void expire() {
    if (state == State.HELD) {
      state = State.EXPIRED;
      // Closing the session drops its backup locks on the server.
      Jdbc.closeQuietly(connection);
    }
    timer.shutdown();
  }

  @Override
  public synchronized void check() throws ApplicationException {
    switch (state) {
      case HELD -> {
        boolean valid;
        try {
          valid = connection.isValid(5);
        } catch (SQLException e) {
          valid = false;
        }
        if (!valid) {
          state = State.LOST;
          Jdbc.closeQuietly(connection);
          throw new ApplicationException(
              Reason.FAILED, "the connection holding the backup lock was lost: the hold ended");
        }
      }
      case EXPIRED -> throw expired();
      case LOST ->
          throw new ApplicationException(
              Reason.FAILED, "the connection holding the backup lock was lost: the hold ended");
      case RELEASED, CLOSED ->
          throw new ApplicationException(Reason.FAILED, "the hold was already released");
    }
  }

  private ApplicationException expired() {
    return new ApplicationException(
        Reason.FAILED,
        "the hold passed its maximum of "
            + maxHold.toMillis()
            + " ms and was released: the snapshot is not application-consistent"
            + " (raise the maximum hold time or make the snapshot faster)");
  }

  @Override
  public synchronized Captured release() throws ApplicationException {
    if (state != State.HELD) {
      check();
    }
    timer.shutdownNow();
    try {
      for (String sql : dialect.release(nonTransactional)) {
        Jdbc.execute(connection, sql);
      }
      state = State.RELEASED;
    } catch (SQLException e) {
      state = State.LOST;
      throw Jdbc.translate(e, "unable to end the backup lock");
    } finally {
      Jdbc.closeQuietly(connection);
    }
    return new Captured(metadata, List.of());
  }

  @Override
  public synchronized void close() {
    timer.shutdownNow();
    if (state == State.HELD) {
      for (String sql : dialect.release(nonTransactional)) {
        try {
          Jdbc.execute(connection, sql);
        } catch (SQLException e) {
          break; // closing the connection below drops the locks anyway
        }
      }
    }
    if (state != State.RELEASED) {
      state = State.CLOSED;
    }
    Jdbc.closeQuietly(connection);
  }
}
