package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.RepositoryException;
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
 * A held repository lock. Replaced by a new blob every refresh interval while held (see {@link
 * #refresh}); released by {@link #close} (idempotent) or, if the JVM exits first (Ctrl-C, SIGTERM),
 * by a shutdown hook. After SIGKILL the lock stays until it is stale (its pid is gone, or it is not
 * refreshed for the stale interval).
 *
 * <p>{@link #check} fails once the lock is lost: its blob was removed by someone else ({@code
 * granule unlock --remove-all}), or refreshing failed for so long that others may consider it
 * stale. Writers call it before every save and delete, so an operation that lost its lock stops
 * before it changes anything more.
 */
public final class Lock implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Lock.class);

  private final LockManager manager;
  private final Thread hook;

  /** Earlier blobs of this lock a refresh could not delete: deleted on release. */
  private final java.util.Set<BlobName> leftovers = new java.util.LinkedHashSet<>();

  private ScheduledFuture<?> refresher;
  private volatile BlobName name;
  private volatile LockInfo info;
  private volatile Instant lastRefresh;
  private volatile Instant lastConfirmed;
  private volatile String lost;
  private volatile boolean closed;

  private Lock(LockManager manager, BlobName name, LockInfo info) {
    this.manager = manager;
    this.name = name;
    this.info = info;
    this.lastRefresh = manager.clock.instant();
    this.lastConfirmed = lastRefresh;
    this.hook = new Thread(this::releaseAtExit, "granule-lock-release");
  }

  /**
   * Saves lock blob {@code name} with {@code info}, its shutdown hook registered first: a signal at
   * any moment, even while the blob is being saved, leaves no lock behind. Not refreshed until
   * {@link #startRefreshing}.
   *
   * @throws RepositoryLockedException if the JVM is shutting down (nothing would release the lock
   *     if the exit came before close(): a server's job started while it stops)
   * @throws RepositoryException if the blob cannot be saved
   */
  static Lock take(LockManager manager, BlobName name, LockInfo info) {
    Lock l = new Lock(manager, name, info);
    try {
      Runtime.getRuntime().addShutdownHook(l.hook);
    } catch (IllegalStateException e) {
      throw new RepositoryLockedException(
          "the process is shutting down: not locking the repository for " + info.operation());
    }
    synchronized (l) {
      try {
        manager.save(name, info);
      } catch (RuntimeException e) {
        l.close();
        throw e;
      } catch (IOException e) {
        l.close();
        throw new RepositoryException(
            "unable to lock the repository at '"
                + manager.store.location()
                + "': "
                + e.getMessage()
                + (String.valueOf(e.getMessage()).contains("No space left on device")
                    // forget and prune could not start on a full repository disk, saying
                    // nothing of a way out (audit15 G F2)
                    ? " (its file system is full: free some space on it, a lock takes a few"
                        + " hundred bytes, and run the command again; 'granule forget --prune'"
                        + " then frees what the forgotten snapshots alone held)"
                    : ""),
            e);
      }
    }
    return l;
  }

  /** Starts the refresher thread (once the lock is known not to conflict). */
  synchronized void startRefreshing() {
    if (closed || refresher != null) {
      return;
    }
    long every = manager.refreshEvery.toMillis();
    refresher =
        LockManager.REFRESHER.scheduleWithFixedDelay(
            this::refresh, every, every, TimeUnit.MILLISECONDS);
  }

  /**
   * How long the exit hook lets the lock's owner finish and release the lock itself: zero in a
   * command (Ctrl-C releases at once); a server, which lets running jobs finish for up to 30 s when
   * it stops, sets more (its jobs' locks were released under them within a few seconds, and they
   * failed instead of finishing).
   */
  private static volatile Duration exitGrace = Duration.ZERO;

  /** {@link #exitGrace}: how long exit hooks let a server's running jobs finish. */
  public static Duration exitGrace() {
    return exitGrace;
  }

  /** Sets {@link #exitGrace}. */
  public static void setExitGrace(Duration grace) {
    exitGrace = grace;
  }

  /**
   * The shutdown hook: waits up to {@link #exitGrace} for the owner to release the lock, then for a
   * save or refresh under way, then deletes the lock's blobs.
   */
  private void releaseAtExit() {
    long deadline = System.nanoTime() + exitGrace.toNanos();
    while (!closed && System.nanoTime() < deadline) {
      try {
        Thread.sleep(50);
      } catch (InterruptedException e) {
        break;
      }
    }
    synchronized (this) {
      if (!closed) {
        closed = true;
        deleteAll();
      }
    }
  }

  private void deleteAll() {
    manager.deleteQuietly(name);
    for (BlobName n : leftovers) {
      manager.deleteQuietly(n);
    }
    leftovers.clear();
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

  /**
   * Refreshes the lock (also called by the refresher thread): saves a new blob with the current
   * time, then asks whether the current one is still there; if it is, the new one replaces it (the
   * old is deleted), otherwise someone removed the lock ({@code granule unlock --remove-all}) and
   * it is lost: the new blob is deleted again. Never rewriting a blob in place is what keeps a
   * refresh from bringing back a removed lock: a prune that saw no lock in the meantime may be
   * deleting this operation's data, and the commit's {@link #confirm} would find the lock back. At
   * every moment one blob of the lock is listed, unless it was removed (which the check then sees).
   *
   * <p>After a gap longer than the stale interval less one refresh interval (a stalled JVM, a
   * suspended machine, a store out of reach) others may have judged the lock stale: it is lost, not
   * refreshed.
   */
  public synchronized void refresh() {
    if (closed || lost != null) {
      return;
    }
    Instant now = manager.clock.instant();
    Duration idle = Duration.between(lastRefresh, now);
    if (idle.compareTo(manager.staleAfter.minus(manager.refreshEvery)) > 0) {
      lost =
          "lock "
              + name
              + " was not refreshed for "
              + idle.toSeconds()
              + " s, so others may have judged it stale";
      LOG.warn("{}", lost);
      return;
    }
    LockInfo nextInfo = info.refreshedAt(now);
    BlobName next = LockManager.newName();
    boolean present;
    try {
      manager.save(next, nextInfo);
      present = manager.store.stat(name).isPresent();
    } catch (IOException | RuntimeException e) {
      LOG.warn("unable to refresh lock {}: {}", name, e.toString());
      if (!manager.deleteQuietly(next)) {
        leftovers.add(next); // perhaps saved: removed on release
      }
      return;
    }
    if (!present) {
      if (!manager.deleteQuietly(next)) {
        leftovers.add(next);
      }
      lost = "lock " + name + " was removed by someone else (granule unlock --remove-all?)";
      LOG.warn("{}", lost);
      return;
    }
    BlobName old = name;
    name = next;
    info = nextInfo;
    lastRefresh = now;
    try {
      manager.store.delete(old);
    } catch (IOException | RuntimeException e) {
      LOG.warn("unable to remove the earlier blob {} of lock {}: {}", old, next, e.toString());
      leftovers.add(old); // removed on release
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
    synchronized (this) { // not while a refresh replaces the blob
      if (!closed && lost == null && manager.store.stat(name).isEmpty()) {
        lost = "lock " + name + " was removed by someone else (granule unlock --remove-all?)";
        LOG.warn("{}", lost);
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
    if (refresher != null) {
      refresher.cancel(false);
    }
    deleteAll();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // shutting down: the hook deletes it again, harmlessly
    }
  }
}
