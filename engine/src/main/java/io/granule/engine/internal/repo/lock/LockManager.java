package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.LongPredicate;

/**
 * Repository locks as blobs in the blob store ({@code locks/<64 hex>}), so they work wherever the
 * repository lives (a directory, S3).
 *
 * <p>Taking a lock: save a new lock blob (random name) recording kind, operation, host, pid, user
 * and time; then list all locks and read the others. If one conflicts (either is exclusive), delete
 * ours and fail with {@link RepositoryLockedException} naming the holder. Because each taker saves
 * before it lists, and the store lists what was saved before (local directories; S3 is strongly
 * consistent), of two takers racing at least one sees the other: both may back off, never both
 * proceed. {@link #acquire} with a wait retries with jittered backoff until the deadline.
 *
 * <p>A held lock is refreshed every {@code refreshEvery} (default 5 min) by a daemon thread: it
 * saves a new blob with the time, then makes sure the old one is still there before deleting it, so
 * a refresh never brings back a lock someone removed (see {@link Lock#refresh}). A lock is
 * <b>stale</b> when it was not refreshed for longer than {@code staleAfter} (default 30 min, judged
 * with the reader's clock), or when it was taken on this host by a process that no longer exists
 * (in this boot and PID namespace: see {@link LockOwner}), or on this machine before its last boot
 * and not refreshed since, or when it cannot be read. A stale lock still conflicts (the holder may
 * only be slow), but the error says so and how to clear it: {@code granule unlock} removes stale
 * locks, {@code granule unlock --remove-all} every lock. The exception: in a repository that is a
 * directory, a lock whose holder is proven gone (this host, this boot and PID namespace, process
 * ended; or taken before this host last started) is removed by the next taker it conflicts with,
 * with a warning: a killed prune no longer blocks every later command. Thread-safe.
 */
public final class LockManager {
  /** How often a held lock is rewritten. */
  public static final Duration DEFAULT_REFRESH = Duration.ofMinutes(5);

  /** How far hosts' clocks may disagree (a lock's time ahead of the reader's by more is noted). */
  static final Duration CLOCK_TOLERANCE = Duration.ofMinutes(5);

  /** How long a lock may go unrefreshed before others consider it stale. */
  public static final Duration DEFAULT_STALE = Duration.ofMinutes(30);

  static final ScheduledExecutorService REFRESHER =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "granule-lock-refresh");
            t.setDaemon(true);
            return t;
          });

  private static final SecureRandom RANDOM = new SecureRandom();

  final BlobStore store;
  final BlobCodec codec;
  final Clock clock;
  final LockOwner owner;
  final Duration refreshEvery;
  final Duration staleAfter;
  private final LongPredicate pidAlive;

  /** A lock manager for this process with the default refresh and stale intervals. */
  public LockManager(BlobStore store, BlobCodec codec, Clock clock) {
    this(store, codec, clock, LockOwner.current(), DEFAULT_REFRESH, DEFAULT_STALE);
  }

  /** A lock manager for {@code owner} with the given intervals (tests shorten them). */
  public LockManager(
      BlobStore store,
      BlobCodec codec,
      Clock clock,
      LockOwner owner,
      Duration refreshEvery,
      Duration staleAfter) {
    this(store, codec, clock, owner, refreshEvery, staleAfter, LockManager::alive);
  }

  LockManager(
      BlobStore store,
      BlobCodec codec,
      Clock clock,
      LockOwner owner,
      Duration refreshEvery,
      Duration staleAfter,
      LongPredicate pidAlive) {
    if (refreshEvery.compareTo(staleAfter) >= 0) {
      throw new IllegalArgumentException(
          "lock refresh interval " + refreshEvery + " must be shorter than " + staleAfter);
    }
    this.store = store;
    this.codec = codec;
    this.clock = clock;
    this.owner = owner;
    this.refreshEvery = refreshEvery;
    this.staleAfter = staleAfter;
    this.pidAlive = pidAlive;
  }

  /**
   * Whether {@code e} says the repository's medium is read-only for everyone (a read-only mount).
   */
  public static boolean readOnlyMedium(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      String m = t.getMessage();
      if (t instanceof IOException && m != null && m.contains("Read-only file system")) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether the file system holding directory {@code dir} is itself read-only (its superblock, as
   * {@code /proc/self/mountinfo} shows it), not only this mount of it: a read-only bind mount of a
   * live repository is still written (and pruned) through its other mounts. True if it cannot be
   * told (no mountinfo), as before.
   */
  public static boolean fileSystemReadOnly(Path dir) {
    return fileSystemReadOnly(dir, Path.of("/proc/self/mountinfo"));
  }

  /** File system types that show files written elsewhere (the kernel's names in mountinfo). */
  private static final java.util.Set<String> VIEWS =
      java.util.Set.of(
          "overlay", "nfs", "nfs4", "cifs", "smb3", "9p", "ceph", "glusterfs", "virtiofs", "afs");

  static boolean fileSystemReadOnly(Path dir, Path mountinfo) {
    try {
      String[] f =
          io.granule.engine.internal.image.BlockDeviceClaim.mountHolding(
              dir.toRealPath(), mountinfo);
      int sep = f == null ? -1 : java.util.Arrays.asList(f).indexOf("-");
      if (sep < 0 || sep + 3 >= f.length) {
        return true;
      }
      String type = f[sep + 1];
      if (VIEWS.contains(type) || type.startsWith("fuse")) {
        // read-only here says nothing of the files it shows: an overlay over a live repository's
        // directory, a network or FUSE mount of one written elsewhere
        return false;
      }
      return java.util.List.of(f[sep + 3].split(",")).contains("ro");
    } catch (IOException | RuntimeException e) {
      return true;
    }
  }

  /**
   * Whether {@code e} (taking a lock failed) says the store cannot be written at all: no space, a
   * read-only file system, no permission (read-only credentials).
   */
  public static boolean unwritable(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof java.nio.file.AccessDeniedException) {
        return true;
      }
      String m = t.getMessage();
      if (t instanceof IOException
          && m != null
          && (m.contains("No space left on device")
              || m.contains("Read-only file system")
              || m.contains("Disk quota exceeded"))) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether process {@code pid} may run. A process this one cannot see is not known to be gone:
   * with {@code /proc} mounted {@code hidepid=2} another user's processes are hidden (there, {@code
   * /proc/1} is too), and with {@code hidepid=1} only their directory shows.
   */
  private static boolean alive(long pid) {
    if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
      return true;
    }
    java.nio.file.Path proc = java.nio.file.Path.of("/proc");
    return java.nio.file.Files.exists(
            proc.resolve(Long.toString(pid)), java.nio.file.LinkOption.NOFOLLOW_LINKS)
        || (java.nio.file.Files.isDirectory(proc.resolve("self"))
            && !java.nio.file.Files.isDirectory(proc.resolve("1")));
  }

  /**
   * One lock found in the repository. {@code holderGone}: its holder is proven to have ended (taken
   * on this host in this boot and PID namespace by a process that no longer runs, or before this
   * host last started): it can write nothing any more.
   */
  public record Status(
      BlobName name, LockInfo info, boolean stale, String why, boolean holderGone) {
    Status(BlobName name, LockInfo info, boolean stale, String why) {
      this(name, info, stale, why, false);
    }

    /** A one-line description for messages. */
    public String describe() {
      String what = info == null ? "unreadable lock " + name : info.describe();
      return stale ? what + " (stale: " + why + ")" : why == null ? what : what + " (" + why + ")";
    }
  }

  /**
   * Takes a lock of {@code kind} for {@code operation}, retrying while a conflicting lock exists
   * for up to {@code wait} (zero: one attempt).
   *
   * @throws RepositoryLockedException if a conflicting lock remains
   * @throws RepositoryException if the lock cannot be written or the locks listed
   */
  public Lock acquire(LockKind kind, String operation, Duration wait) {
    long deadline = System.nanoTime() + wait.toNanos();
    long pause = 500;
    while (true) {
      try {
        return tryAcquire(kind, operation);
      } catch (RepositoryLockedException e) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
          throw e;
        }
        long sleep = Math.min(left, pause / 2 + ThreadLocalRandom.current().nextLong(pause));
        pause = Math.min(pause * 2, 10_000);
        try {
          Thread.sleep(Math.max(1, sleep));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw e;
        }
      }
    }
  }

  /**
   * For a reader that cannot write a lock of its own (a repository it may not write): waits up to
   * {@code wait} while a live exclusive lock (a prune) is held, then fails as a conflict would. A
   * prune running meanwhile deletes what such a reader is about to read.
   *
   * @throws RepositoryLockedException if a live exclusive lock remains
   */
  public void awaitNoExclusive(String operation, Duration wait, boolean readOnlyMedium) {
    if (readOnlyMedium) {
      return; // a read-only file system or copy: no prune can run there (its lock is a leftover)
    }
    long deadline = System.nanoTime() + wait.toNanos();
    while (true) {
      List<Status> exclusive =
          list().stream()
              .filter(
                  s -> !s.stale() && s.info() != null && s.info().lockKind() == LockKind.EXCLUSIVE)
              .toList();
      if (exclusive.isEmpty()) {
        return;
      }
      long left = (deadline - System.nanoTime()) / 1_000_000;
      if (left <= 0) {
        throw conflict(LockKind.SHARED, operation, exclusive);
      }
      try {
        Thread.sleep(Math.min(left, 1000));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw conflict(LockKind.SHARED, operation, exclusive);
      }
    }
  }

  /** A new random lock blob name. */
  static BlobName newName() {
    byte[] b = new byte[32];
    RANDOM.nextBytes(b);
    return new BlobName(BlobType.LOCK, Hex.encode(b));
  }

  /** Attempts at a listing that shows a taker's own lock before the store is called unreliable. */
  static final int COMPLETE_LISTING_ATTEMPTS = 30;

  /**
   * The locks, from a listing that shows {@code own} (a lock this process saved before listing):
   * listings that leave it out are incomplete and are retried after a short random pause.
   *
   * @throws RepositoryException if {@link #COMPLETE_LISTING_ATTEMPTS} listings all left it out
   */
  private List<Status> listShowing(BlobName own) {
    for (int attempt = 1; ; attempt++) {
      List<Status> listed = list();
      for (Status s : listed) {
        if (s.name().equals(own)) {
          return listed;
        }
      }
      if (attempt >= COMPLETE_LISTING_ATTEMPTS) {
        throw new RepositoryException(
            "the repository's listing of locks/ left out this process's own lock "
                + attempt
                + " times in a row, so it cannot be trusted to show other processes' locks"
                + " either (an S3-compatible store whose listings lag or drop entries?): check"
                + " the store, and try again");
      }
      pause(10 + ThreadLocalRandom.current().nextLong(40));
    }
  }

  private static void pause(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new RepositoryException("interrupted while listing locks", null);
    }
  }

  private Lock tryAcquire(LockKind kind, String operation) {
    String now = clock.instant().toString();
    LockInfo info = LockInfo.of(kind, operation, owner, now);
    // registers its shutdown hook before the blob is saved: a signal at any moment from here on
    // removes it
    Lock lock = Lock.take(this, newName(), info);
    List<Status> conflicts = new ArrayList<>();
    try {
      // Two listings must both show no conflict, and each must show this taker's own lock
      // (saved before either): a store whose listing can leave out blobs that exist (s3proxy's
      // file backend answers a listing racing a delete with nothing at all, now and then twice
      // in a row: two prunes, or a prune and a backup, ran at once) would otherwise let two
      // takers past each other. A listing without the taker's own lock is incomplete: again.
      // An S3-compatible store gets four, spaced out: s3proxy's file backend also returns
      // partial listings (the taker's own lock, but not a live backup's) while lock files are
      // being made; apart in time, they do not all leave out the same live lock.
      int passes =
          store.location().startsWith(io.granule.engine.internal.repo.blob.S3Location.SCHEME)
              ? 4
              : 2;
      for (int pass = 0; pass < passes && conflicts.isEmpty(); pass++) {
        if (pass > 0 && passes > 2) {
          pause(50 + ThreadLocalRandom.current().nextLong(100));
        }
        for (Status s : listShowing(lock.name())) {
          if (s.name().equals(lock.name())) {
            continue;
          }
          if (s.info() == null || kind.conflictsWith(s.info().lockKind())) {
            if (!removeLeftover(s)) {
              conflicts.add(s);
            }
          }
        }
      }
    } catch (RuntimeException e) {
      lock.close();
      throw e;
    }
    if (!conflicts.isEmpty()) {
      lock.close();
      throw conflict(kind, operation, conflicts);
    }
    lock.startRefreshing();
    return lock;
  }

  /**
   * Removes lock {@code s} if it is a leftover no one can still act on: its holder is proven gone
   * (killed on this host, or before it last started) and the repository is a directory, where a
   * process that ended writes nothing more. On an S3 store a request the holder sent may still land
   * after it ended, so such a lock stays for {@code granule unlock} (the error says so).
   *
   * @return whether it was removed (or was gone already)
   */
  private boolean removeLeftover(Status s) {
    if (!s.holderGone()
        || store.location().startsWith(io.granule.engine.internal.repo.blob.S3Location.SCHEME)) {
      return false;
    }
    try {
      store.delete(s.name());
    } catch (NoSuchFileException e) {
      // removed by another taker meanwhile
    } catch (IOException | RuntimeException e) {
      org.slf4j.LoggerFactory.getLogger(LockManager.class)
          .warn("unable to remove the leftover lock {}: {}", s.name(), e.toString());
      return false;
    }
    org.slf4j.LoggerFactory.getLogger(LockManager.class)
        .warn("removed a leftover lock: {}", s.describe());
    return true;
  }

  private RepositoryLockedException conflict(
      LockKind kind, String operation, List<Status> conflicts) {
    Status fresh = conflicts.stream().filter(s -> !s.stale()).findFirst().orElse(null);
    String where = "the repository at '" + store.location() + "'";
    if (fresh != null) {
      return new RepositoryLockedException(
          "unable to take "
              + (kind == LockKind.EXCLUSIVE ? "an " : "a ")
              + kind.label()
              + " lock for "
              + operation
              + ": "
              + where
              + " is locked: "
              + fresh.describe()
              + (conflicts.size() > 1 ? " (and " + (conflicts.size() - 1) + " more)" : "")
              + "; try again later, or wait with --retry-lock DURATION");
    }
    Status s = conflicts.get(0);
    return new RepositoryLockedException(
        "unable to take "
            + (kind == LockKind.EXCLUSIVE ? "an " : "a ")
            + kind.label()
            + " lock for "
            + operation
            + ": "
            + where
            + " is locked by a stale lock: "
            + s.describe()
            + (conflicts.size() > 1 ? " (and " + (conflicts.size() - 1) + " more)" : "")
            + "; if no granule process uses the repository any more, remove stale locks with"
            + " 'granule unlock'");
  }

  void save(BlobName name, LockInfo info) throws IOException {
    store.save(name, codec.encode(name, info.toBytes()));
  }

  /** Deletes lock blob {@code name}; whether that worked (a failure is logged). */
  boolean deleteQuietly(BlobName name) {
    try {
      store.delete(name);
      return true;
    } catch (IOException | RuntimeException e) {
      org.slf4j.LoggerFactory.getLogger(LockManager.class)
          .warn("unable to remove lock {}: {}", name, e.toString());
      return false;
    }
  }

  /**
   * Every lock in the repository, with whether it is stale and why. A lock listed but gone when
   * read was released, or replaced by a refresh (a new blob saved, then the old deleted): the locks
   * are listed again until a listing reads whole, so a refreshing holder is never missed.
   */
  public List<Status> list() {
    for (int attempt = 1; ; attempt++) {
      List<Status> out = new ArrayList<>();
      if (listOnce(out) || attempt >= 20) {
        return out;
      }
    }
  }

  /** Fills {@code out}; false if a listed lock was gone when read. */
  private boolean listOnce(List<Status> out) {
    Instant now = clock.instant();
    boolean whole = true;
    try {
      for (BlobName n : store.list(BlobType.LOCK)) {
        LockInfo info;
        try {
          info = LockInfo.parse(n, codec.decode(n, store.load(n)));
        } catch (NoSuchFileException e) {
          whole = false; // released, or replaced by a refresh: list again
          continue;
        } catch (io.granule.engine.internal.repo.blob.BlobTooLargeException
            | io.granule.engine.internal.repo.blob.BlobNotRegularException e) {
          // audit14 B L3: a sparse 1 GiB file in locks/ stopped every locking command, unlock
          // too; a lock is a few hundred bytes: one this large is no lock, and stale; nor is a
          // FIFO or device there (audit14 D), which granule never writes
          out.add(new Status(n, null, true, "unreadable: " + e.getMessage()));
          continue;
        } catch (RepositoryException | IllegalArgumentException e) {
          out.add(new Status(n, null, true, "unreadable: " + e.getMessage()));
          continue;
        }
        out.add(status(n, info, now));
      }
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to list the locks of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
    return whole;
  }

  private Status status(BlobName n, LockInfo info, Instant now) {
    Duration idle = Duration.between(info.refreshedInstant(), now);
    String gone = owner.host().equals(info.host()) ? holderGone(info, idle) : null;
    // proven only from a boot id (a lock of an older version is judged by its pid alone); one of
    // an earlier boot only once stale by time too: a clone of this machine (same name and machine
    // id) whose clock runs behind looks as if it last refreshed before this boot
    boolean proven =
        gone != null
            && info.bootId() != null
            && (info.bootId().equals(owner.bootId()) || idle.compareTo(staleAfter) > 0);
    if (idle.compareTo(staleAfter) > 0) {
      return new Status(
          n,
          info,
          true,
          "not refreshed for "
              + idle.toMinutes()
              + " min (limit "
              + minutes()
              + ")"
              + (gone == null ? "" : "; " + gone),
          proven);
    }
    if (gone != null) {
      return new Status(n, info, true, gone, proven);
    }
    if (idle.compareTo(CLOCK_TOLERANCE.negated()) < 0) {
      // Its holder's clock is ahead: by time it goes stale only that much later.
      return new Status(
          n,
          info,
          false,
          "refreshed "
              + idle.negated().toMinutes()
              + " min ahead of this host's clock: the clocks disagree, so it is taken for stale"
              + " only "
              + minutes()
              + " after that time; if its holder is gone, remove it with 'granule unlock"
              + " --remove-all'");
    }
    return new Status(n, info, false, null);
  }

  /**
   * Why the holder of a lock taken under this host's name is known to be gone, or null if it may
   * run (see {@link LockOwner}): a lock of an earlier version is judged by its pid; otherwise the
   * pid only in this boot and PID namespace, and a lock of this machine from an earlier boot is
   * gone once it was not refreshed since this boot for two refresh intervals. A container or a
   * cloned VM with the same host name (and machine id) is judged by refresh time only: a clone's
   * live lock is refreshed after this machine booted, every refresh interval.
   */
  private String holderGone(LockInfo info, Duration idle) {
    if (info.bootId() == null) {
      if (info.pidNamespace() != null
          && !(info.pidNamespace().equals(owner.pidNamespace())
              && (info.machineId() == null || info.machineId().equals(owner.machineId())))) {
        // a holder that could not read its boot id, in another PID namespace (a container) or
        // on another machine of this name: its pid means nothing here
        return null;
      }
      return pidAlive.test(info.pid())
          ? null
          : "process " + info.pid() + " no longer runs on this host";
    }
    if (owner.machineId() != null
        && owner.machineId().equals(info.machineId())
        && owner.bootId() != null
        && !owner.bootId().equals(info.bootId())
        && owner.bootTime() != null
        && info.refreshedInstant().isBefore(owner.bootTime())
        && idle.compareTo(refreshEvery.multipliedBy(2)) > 0) {
      return "taken before this host last started (process "
          + info.pid()
          + ") and not refreshed since";
    }
    if (info.bootId().equals(owner.bootId())
        && info.pidNamespace() != null
        && info.pidNamespace().equals(owner.pidNamespace())
        && !pidAlive.test(info.pid())) {
      return "process " + info.pid() + " no longer runs on this host";
    }
    return null;
  }

  private String minutes() {
    return staleAfter.toMinutes() > 0
        ? staleAfter.toMinutes() + " min"
        : staleAfter.toMillis() + " ms";
  }

  /**
   * Removes stale locks (or, with {@code all}, every lock) and returns those removed.
   *
   * @throws RepositoryException if the locks cannot be listed or removed
   */
  public List<Status> remove(boolean all) {
    List<Status> removed = new ArrayList<>();
    for (Status s : list()) {
      if (all || s.stale()) {
        try {
          store.delete(s.name());
        } catch (IOException e) {
          throw new RepositoryException(
              "unable to remove lock " + s.name() + ": " + e.getMessage(), e);
        }
        removed.add(s);
      }
    }
    return removed;
  }
}
