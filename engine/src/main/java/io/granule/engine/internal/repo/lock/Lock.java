package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.blob.BlobName;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A held repository lock. Rewritten every refresh interval while held; released by {@link #close}
 * (idempotent) or, if the JVM exits first (Ctrl-C, SIGTERM), by a shutdown hook. After SIGKILL the
 * lock stays until it is stale (its pid is gone, or it is not refreshed for the stale interval).
 *
 * <p>{@link #check} fails once the lock is lost: its blob was removed by someone else ({@code
 * granule unlock --remove-all}), or refreshing failed for so long that others may consider it
 * stale. Writers call it before every save and delete, so an operation that lost its lock stops
 * before it changes anything more.
 */
public final class Lock implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Lock.class);

  private final LockManager manager;
  private final BlobName name;
  private final ScheduledFuture<?> refresher;
  private final Thread hook;
  private volatile LockInfo info;
  private volatile Instant lastRefresh;
  private volatile Instant lastConfirmed;
  private volatile String lost;
  private volatile boolean closed;

  Lock(LockManager manager, BlobName name, LockInfo info) {
    this.manager = manager;
    this.name = name;
    this.info = info;
    this.lastRefresh = manager.clock.instant();
    this.lastConfirmed = lastRefresh;
    long every = manager.refreshEvery.toMillis();
    this.refresher =
        LockManager.REFRESHER.scheduleWithFixedDelay(
            this::refresh, every, every, TimeUnit.MILLISECONDS);
    this.hook = new Thread(() -> manager.deleteQuietly(name), "granule-lock-release");
    try {
      Runtime.getRuntime().addShutdownHook(hook);
    } catch (IllegalStateException e) {
      // The JVM is exiting: nothing would release the lock if the exit came before close() (a
      // server's job started while it stops), so it is not taken.
      refresher.cancel(false);
      manager.deleteQuietly(name);
      throw new RepositoryLockedException(
          "the process is shutting down: not locking the repository for " + info.operation());
    }
  }

  /** The lock blob. */
  public BlobName name() {
    return name;
  }

  /** What the lock records. */
  public LockInfo info() {
    return info;
  }

  /** The kind of lock. */
  public LockKind kind() {
    return info.lockKind();
  }

  /** Rewrites the lock blob with the current time (also called by the refresher thread). */
  public synchronized void refresh() {
    if (closed || lost != null) {
      return;
    }
    try {
      if (manager.store.stat(name).isEmpty()) {
        lost = "lock " + name + " was removed by someone else (granule unlock --remove-all?)";
        LOG.warn("{}", lost);
        return;
      }
      Instant now = manager.clock.instant();
      LockInfo next = info.refreshedAt(now);
      manager.save(name, next);
      info = next;
      lastRefresh = now;
    } catch (IOException | RuntimeException e) {
      LOG.warn("unable to refresh lock {}: {}", name, e.toString());
    }
  }

  /**
   * Fails if the lock is lost (see the class comment) or released.
   *
   * @throws RepositoryLockedException naming why
   */
  public void check() {
    if (closed) {
      throw new RepositoryLockedException("lock " + name + " was released: the operation stops");
    }
    if (lost != null) {
      throw new RepositoryLockedException(
          "lost the " + info.kind() + " lock on the repository: " + lost + "; the operation stops");
    }
    Duration idle = Duration.between(lastRefresh, manager.clock.instant());
    Duration limit = manager.staleAfter.minus(manager.refreshEvery);
    if (idle.compareTo(limit) > 0) {
      throw new RepositoryLockedException(
          "the "
              + info.kind()
              + " lock on the repository could not be refreshed for "
              + idle.toSeconds()
              + " s: others may consider it stale, so the operation stops (is the repository"
              + " reachable?)");
    }
  }

  /**
   * As {@link #check}, and asks the store whether the lock blob is still there: writers call it
   * before a commit (a snapshot manifest or an index blob), so an operation whose lock was removed
   * meanwhile ({@code granule unlock --remove-all}, then perhaps a prune deleting the data it
   * wrote) fails instead of committing, rather than noticing only at its next refresh. One stat.
   *
   * @throws RepositoryLockedException naming why
   * @throws IOException if the store cannot be asked
   */
  public void confirm() throws IOException {
    check();
    if (manager.store.stat(name).isEmpty()) {
      synchronized (this) {
        if (!closed && lost == null) {
          lost = "lock " + name + " was removed by someone else (granule unlock --remove-all?)";
          LOG.warn("{}", lost);
        }
      }
    }
    lastConfirmed = manager.clock.instant();
    check();
  }

  /**
   * {@link #confirm} if it last asked the store (or the lock was taken) more than {@code every}
   * ago, else {@link #check}.
   */
  public void confirmEvery(Duration every) throws IOException {
    if (Duration.between(lastConfirmed, manager.clock.instant()).compareTo(every) > 0) {
      confirm();
    } else {
      check();
    }
  }

  /** Releases the lock: stops refreshing and deletes the blob. Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    refresher.cancel(false);
    manager.deleteQuietly(name);
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // shutting down: the hook deletes it again, harmlessly
    }
  }
}
