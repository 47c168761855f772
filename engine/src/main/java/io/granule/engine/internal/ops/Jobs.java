package io.granule.engine.internal.ops;

import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.ToIntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Long operations the server runs in the background (backups today), with their progress and
 * outcome, for {@code /api/jobs}.
 *
 * <p>Jobs start in submission order, at most {@link #WORKERS} at once and one per repository at a
 * time (a job waits for earlier ones on its repository, never for another repository's); at most
 * {@link #MAX_QUEUED} wait. A job can be cancelled. The newest {@link #KEEP} finished jobs are
 * kept, and with a journal ({@link JobJournal}) a restarted server shows them again. Thread-safe.
 */
public final class Jobs implements AutoCloseable {
  static final int WORKERS = 2;

  /** How long a stopping server lets running jobs finish. */
  public static final java.time.Duration STOP_GRACE = java.time.Duration.ofSeconds(30);

  /**
   * How long a cancelled job may take to end before it stops counting against {@link #WORKERS}: one
   * stuck in a read that never returns (a hung source disk, a dead NFS mount) held a worker for
   * good, and two such jobs kept every other repository's jobs queued. It keeps its repository (its
   * lock too) until it does end.
   */
  static final java.time.Duration CANCEL_GRACE =
      java.time.Duration.ofMillis(Long.getLong("granule.jobs.cancelGraceMs", 30_000L));

  private static final java.util.concurrent.ScheduledExecutorService TIMER =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "granule-job-timer");
            t.setDaemon(true);
            return t;
          });
  static final int KEEP = 100;

  /** Jobs that may wait at once; more are refused ({@link Refused}: HTTP 503). */
  public static final int MAX_QUEUED = 1000;

  private static final Logger LOG = LoggerFactory.getLogger(Jobs.class);

  /** The state of a job. */
  public enum State {
    QUEUED,
    RUNNING,
    SUCCEEDED,
    FAILED
  }

  /** What a job does; it reports progress through the job and returns its result. */
  @FunctionalInterface
  public interface Work {
    Object run(Job job) throws Exception;
  }

  /**
   * Thrown by a job's work that ran to its end and found something wrong (verify found damage): the
   * job fails with this message and exit code, and keeps {@code result} (the full report).
   */
  public static final class Failed extends Exception {
    private static final long serialVersionUID = 1L;
    private final transient Object result;
    private final int exitCode;

    public Failed(String message, int exitCode, Object result) {
      super(message);
      this.exitCode = exitCode;
      this.result = result;
    }
  }

  /**
   * A job as the API shows it. {@code progressUpdated}: when the work last published {@code
   * progress} (a stalled job's rate and ETA are as of then); {@code cancelRequested}: a cancel
   * reached it and it has not ended yet (false once it has: a cancelled job's end is its state,
   * error and exit code).
   */
  public record JobView(
      String id,
      String kind,
      String description,
      State state,
      Object progress,
      String progressUpdated,
      boolean cancelRequested,
      Object result,
      String error,
      Integer exitCode,
      String created,
      String started,
      String finished) {}

  /** One job. Progress is published by the work; everything else by {@link Jobs}. */
  public static final class Job {
    private final String id;
    private final String kind;
    private final String description;
    private final Instant created;
    private volatile State state = State.QUEUED;
    private volatile Object progress;
    private volatile Instant progressAt;
    private volatile Object result;
    private volatile String error;
    private volatile Integer exitCode;
    private volatile Instant started;
    private volatile Instant finished;
    private volatile boolean cancelled;
    private String claim; // guarded by the scheduler's monitor

    Job(String id, String kind, String description, Instant created) {
      this.id = id;
      this.kind = kind;
      this.description = description;
      this.created = created;
    }

    /** A job a previous server ran, as its journal had it (ended). */
    static Job of(JobView v) {
      Job j = new Job(v.id(), v.kind(), v.description(), JobJournal.instant(v.created()));
      j.state = v.state();
      j.progress = v.progress();
      j.progressAt = v.progressUpdated() == null ? null : JobJournal.instant(v.progressUpdated());
      j.result = v.result();
      j.error = v.error();
      j.exitCode = v.exitCode();
      j.started = v.started() == null ? null : JobJournal.instant(v.started());
      j.finished = JobJournal.instant(v.finished());
      return j;
    }

    public String id() {
      return id;
    }

    /** Whether the job was cancelled (its work stops at its next check, or when interrupted). */
    public boolean cancelled() {
      return cancelled;
    }

    /** Publishes the latest progress (any JSON-serialisable value). */
    public void progress(Object p) {
      this.progress = p;
      this.progressAt = Instant.now();
    }

    public JobView view() {
      State s = state;
      return new JobView(
          id,
          kind,
          description,
          s,
          progress,
          iso(progressAt),
          cancelled && (s == State.QUEUED || s == State.RUNNING),
          result,
          error,
          exitCode,
          iso(created),
          iso(started),
          iso(finished));
    }

    private static String iso(Instant t) {
      return t == null ? null : t.toString();
    }
  }

  private final ExecutorService pool;
  private final Clock clock;
  private final ToIntFunction<Throwable> exitCodes;
  private final int maxQueued;
  private final java.time.Duration cancelGrace;
  private final Map<String, Job> jobs = Collections.synchronizedMap(new LinkedHashMap<>());
  // The scheduler's state, guarded by itself: queued jobs in submission order, the repositories
  // a running job works on, the running jobs' futures.
  private final Deque<Queued> queue = new ArrayDeque<>();
  // running jobs' ids -> the repository each works on
  private final Map<String, RepoKey> busy = new HashMap<>();
  // cancelled jobs still running past CANCEL_GRACE: not counted against WORKERS
  private final Set<String> stuck = new HashSet<>();
  // running jobs' ids -> the worker thread running them, or null until a worker starts them
  private final Map<String, Thread> running = new HashMap<>();
  private final Map<String, String> claims = new HashMap<>(); // claim -> job id
  private boolean closed;

  private record Queued(Job job, RepoKey key, Work work) {}

  /**
   * A repository as the scheduler tells one from another, looked at once when its job is submitted
   * (never while the scheduler is locked: a path on a hung mount would stop every job): the
   * directory's device and inode (null if it does not exist), and its names, absolute and with
   * links resolved. Two are the same repository if the identities or any names match: a link or a
   * bind mount of it is the same, and so is a repository that appears after a job naming it was
   * queued (a job naming it through a link then resolves to the first job's name).
   */
  private record RepoKey(Object identity, Set<Path> names) {
    boolean same(RepoKey other) {
      if (identity != null && identity.equals(other.identity)) {
        return true;
      }
      for (Path n : names) {
        if (other.names.contains(n)) {
          return true;
        }
      }
      return false;
    }

    static boolean any(java.util.Collection<RepoKey> keys, RepoKey key) {
      for (RepoKey k : keys) {
        if (k.same(key)) {
          return true;
        }
      }
      return false;
    }
  }

  /** Refused work: another queued or running job holds its claim (HTTP 409). */
  public static final class Claimed extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Claimed(String message) {
      super(message);
    }
  }

  /** Refused work: too many jobs queued, or the server is stopping. */
  public static final class Refused extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Refused(String message) {
      super(message);
    }
  }

  /**
   * @param exitCodes maps a failure to the CLI exit code that means the same
   */
  public Jobs(Clock clock, ToIntFunction<Throwable> exitCodes) {
    this(clock, exitCodes, MAX_QUEUED);
  }

  Jobs(Clock clock, ToIntFunction<Throwable> exitCodes, int maxQueued) {
    this(clock, exitCodes, maxQueued, CANCEL_GRACE);
  }

  Jobs(
      Clock clock,
      ToIntFunction<Throwable> exitCodes,
      int maxQueued,
      java.time.Duration cancelGrace) {
    this(clock, exitCodes, maxQueued, cancelGrace, null);
  }

  /**
   * @param journal where the jobs are kept across restarts ({@code jobs/} of the server's data
   *     directory), or null to keep them in memory only
   */
  public Jobs(Clock clock, ToIntFunction<Throwable> exitCodes, Path journal) {
    this(clock, exitCodes, MAX_QUEUED, CANCEL_GRACE, journal);
  }

  Jobs(
      Clock clock,
      ToIntFunction<Throwable> exitCodes,
      int maxQueued,
      java.time.Duration cancelGrace,
      Path journal) {
    this.journal = journal == null ? null : JobJournal.open(journal, KEEP, clock.instant());
    if (this.journal != null) {
      for (JobView v : this.journal.recovered()) {
        jobs.put(v.id(), Job.of(v));
      }
      this.journal.start(this::list);
    }
    this.cancelGrace = cancelGrace;
    this.clock = clock;
    this.exitCodes = exitCodes;
    this.maxQueued = maxQueued;
    this.pool =
        Executors.newCachedThreadPool( // at most WORKERS jobs counted at once: see dispatch
            r -> {
              Thread t = new Thread(r, "granule-job");
              t.setDaemon(true);
              return t;
            });
    // A stop (SIGTERM) closes the intake at once: the framework stops the plugins first, which
    // waits for running jobs' leases, and meanwhile new jobs were accepted and queued ones
    // started, to fail as "shutting down".
    this.stopHook = new Thread(this::close, "granule-jobs-stop");
    try {
      Runtime.getRuntime().addShutdownHook(stopHook);
    } catch (IllegalStateException stopping) {
      // already stopping: close() comes
    }
  }

  private final Thread stopHook;
  private final JobJournal journal; // null: in memory only

  /** Journals {@code job}'s state, if there is a journal. */
  private void journal(Job job) {
    if (journal != null) {
      journal.record(job.view());
    }
  }

  /**
   * Queues {@code work}. Jobs start in the order they were submitted, at most {@link #WORKERS} at
   * once and one per repository at a time: a job waits for an earlier one on its repository (so a
   * backup then a restore of "latest" run in that order), never for another repository's.
   *
   * @throws Refused if {@link #MAX_QUEUED} jobs wait already, or the server is stopping
   */
  public Job submit(String kind, String description, Path repository, Work work) {
    return submit(kind, description, repository, null, work);
  }

  /**
   * As {@link #submit(String, String, Path, Work)}, the job also holding {@code claim} (a restore
   * target, say) until it ends: a job submitted meanwhile with the same claim is refused.
   *
   * @throws Claimed if a queued or running job holds {@code claim}
   */
  public Job submit(String kind, String description, Path repository, String claim, Work work) {
    Job job = new Job(UUID.randomUUID().toString(), kind, description, clock.instant());
    RepoKey key = key(repository); // file system calls: before the scheduler's lock
    synchronized (queue) {
      if (closed) {
        throw new Refused("the server is stopping: no new jobs");
      }
      if (queue.size() >= maxQueued) {
        throw new Refused(
            queue.size() + " jobs are queued already: submit again once some have run");
      }
      // one repository may not fill the queue for all (its jobs wait behind one stuck in a read
      // that never returns, say)
      int same = 0;
      for (Queued q : queue) {
        if (q.key().same(key)) {
          same++;
        }
      }
      if (same >= Math.max(1, maxQueued / 4)) {
        throw new Refused(
            same
                + " jobs are queued for this repository already (is the one running stuck?):"
                + " submit again once some have run");
      }
      if (claim != null) {
        String holder = claims.get(claim);
        if (holder != null) {
          throw new Claimed(claim + " is taken by job " + holder + ", queued or running");
        }
        claims.put(claim, job.id);
        job.claim = claim;
      }
      synchronized (jobs) {
        jobs.put(job.id, job);
        trim();
      }
      queue.add(new Queued(job, key, work));
      journal(job);
      dispatch();
    }
    return job;
  }

  /** The repository named {@code repository}, as the scheduler tells it from others. */
  private static RepoKey key(Path repository) {
    Path p = repository.toAbsolutePath().normalize();
    Object identity;
    try {
      identity = java.nio.file.Files.readAttributes(p, "unix:dev,ino");
    } catch (java.io.IOException | RuntimeException e) {
      identity = null; // not there (yet): known by name
    }
    Set<Path> names = new HashSet<>();
    names.add(p);
    try {
      names.add(p.toRealPath());
    } catch (java.io.IOException | RuntimeException e) {
      // not there (yet): its directory's real name and its own
      Path parent = p.getParent();
      if (parent != null && p.getFileName() != null) {
        try {
          names.add(parent.toRealPath().resolve(p.getFileName()));
        } catch (java.io.IOException | RuntimeException e2) {
          // nor its directory
        }
      }
    }
    return new RepoKey(identity, Set.copyOf(names));
  }

  /** Starts queued jobs while a worker is free; the caller holds {@code queue}'s monitor. */
  private void dispatch() {
    if (closed) {
      return;
    }
    List<RepoKey> passed = new ArrayList<>(); // repositories with an earlier job still queued
    for (Iterator<Queued> it = queue.iterator();
        it.hasNext() && running.size() - stuck.size() < WORKERS; ) {
      Queued q = it.next();
      RepoKey key = q.key();
      if (RepoKey.any(busy.values(), key) || RepoKey.any(passed, key)) {
        passed.add(key);
        continue;
      }
      it.remove();
      busy.put(q.job.id, key);
      q.job.state = State.RUNNING;
      q.job.started = clock.instant();
      journal(q.job);
      running.put(q.job.id, null);
      pool.execute(() -> run(q));
    }
  }

  private void run(Queued q) {
    Job job = q.job;
    State end = State.FAILED;
    try {
      synchronized (queue) {
        if (job.cancelled) {
          throw new java.util.concurrent.CancellationException("cancelled as it started");
        }
        running.put(job.id, Thread.currentThread()); // from now on, cancel() interrupts it
      }
      Object result = q.work.run(job);
      job.result = result;
      job.exitCode = 0;
      end = State.SUCCEEDED;
    } catch (Exception | Error e) {
      String message = e.getMessage() == null ? e.toString() : e.getMessage();
      if (job.cancelled) {
        job.error = "cancelled while it ran";
        job.exitCode = 130;
        LOG.info("job {} cancelled: {}", job.id, message);
      } else {
        job.error = message;
        if (e instanceof Failed f) {
          job.result = f.result;
          job.exitCode = f.exitCode;
        } else {
          int code;
          try {
            code = exitCodes.applyAsInt(e);
          } catch (RuntimeException | StackOverflowError mapper) {
            code = 1; // the job still ends
          }
          job.exitCode = code;
        }
      }
      LOG.warn("job {} ({}) failed: {}", job.id, job.description, job.error);
    } finally {
      synchronized (queue) {
        running.remove(job.id);
        stuck.remove(job.id);
        Thread.interrupted(); // a cancel that came as the work ended does not reach the next job
        busy.remove(job.id);
        release(job);
        // ended only once its claim is free: a client that saw it end may reuse the target
        job.finished = clock.instant();
        job.state = end;
        journal(job);
        synchronized (jobs) {
          trim();
        }
        dispatch();
      }
    }
  }

  /** Frees the job's claim; the caller holds the scheduler's monitor. */
  private void release(Job job) {
    if (job.claim != null) {
      claims.remove(job.claim, job.id);
      job.claim = null;
    }
  }

  /**
   * Ends a job that never ran: FAILED with {@code why} and exit code 130; the caller holds the
   * scheduler's monitor.
   */
  private void abandon(Job job, String why) {
    // logged by another thread: the caller holds the scheduler's monitor, and a log write that
    // blocks (a log on a filesystem a job froze) must not hold every request behind it
    String description = job.description;
    TIMER.execute(() -> LOG.warn("job {} ({}) ended unrun: {}", job.id, description, why));
    release(job);
    job.error = why;
    job.exitCode = 130;
    job.finished = clock.instant();
    job.state = State.FAILED;
    journal(job);
  }

  /**
   * Cancels job {@code id}: a queued one never runs; a running one is interrupted (its operation
   * stops at its next interruptible step and cleans up as on any failure: locks released, the
   * application and filesystem released). Either way it ends FAILED with exit code 130.
   *
   * @return the job, or empty if there is none of that id
   */
  public Optional<JobView> cancel(String id) {
    Job job = jobs.get(id);
    if (job == null) {
      return Optional.empty();
    }
    synchronized (queue) {
      if (job.state == State.QUEUED && queue.removeIf(q -> q.job == job)) {
        abandon(job, "cancelled before it started");
        synchronized (jobs) {
          trim();
        }
      } else if (job.state == State.RUNNING && running.containsKey(id)) {
        // a job a worker has not started yet sees the flag when it does; a started one is
        // interrupted (and its work may check the flag: Job.cancelled())
        job.cancelled = true;
        Thread worker = running.get(id);
        if (worker != null) {
          worker.interrupt();
        }
        TIMER.schedule(
            () -> {
              boolean nowStuck;
              synchronized (queue) {
                nowStuck = running.containsKey(id) && stuck.add(id);
                if (nowStuck) {
                  dispatch();
                }
              }
              if (nowStuck) {
                // logged outside the scheduler's monitor: a log on a frozen filesystem blocks
                LOG.warn(
                    "job {} was cancelled {} s ago and still runs (stuck in I/O?): it no longer"
                        + " holds a worker",
                    id,
                    cancelGrace.toSeconds());
              }
            },
            cancelGrace.toMillis(),
            TimeUnit.MILLISECONDS);
      }
    }
    return Optional.of(job.view());
  }

  /** Drops the finished jobs that ended first, beyond the newest {@link #KEEP}. */
  private void trim() {
    List<Job> finished = new ArrayList<>();
    for (Job j : jobs.values()) {
      if ((j.state == State.SUCCEEDED || j.state == State.FAILED) && j.finished != null) {
        finished.add(j);
      }
    }
    if (finished.size() <= KEEP) {
      return;
    }
    // by when they ended, not when submitted: a long backup's result outlives the short jobs
    // submitted after it that ended before it
    finished.sort(java.util.Comparator.comparing((Job j) -> j.finished));
    for (int i = 0; i < finished.size() - KEEP; i++) {
      jobs.remove(finished.get(i).id);
    }
  }

  public Optional<JobView> get(String id) {
    Job j = jobs.get(id);
    return j == null ? Optional.empty() : Optional.of(j.view());
  }

  /** Every kept job, oldest first. */
  public List<JobView> list() {
    synchronized (jobs) {
      return jobs.values().stream().map(Job::view).toList();
    }
  }

  /**
   * Stops: takes no new jobs, ends the queued ones without running them, waits up to 30 s for the
   * running ones, then interrupts them.
   */
  @Override
  public void close() {
    if (Thread.currentThread() != stopHook) {
      try {
        Runtime.getRuntime().removeShutdownHook(stopHook);
      } catch (IllegalStateException stopping) {
        // the hook runs (or ran) close() too: the second call finds it done
      }
    }
    synchronized (queue) {
      closed = true;
      for (Queued q : queue) {
        abandon(q.job, "the server stopped before the job started");
      }
      queue.clear();
    }
    pool.shutdown();
    try {
      if (!pool.awaitTermination(STOP_GRACE.toSeconds(), TimeUnit.SECONDS)) {
        synchronized (queue) {
          for (String id : running.keySet()) {
            Job j = jobs.get(id);
            if (j != null) {
              j.cancelled = true; // interrupted by the stop: exit code 130, as a cancel
            }
          }
        }
        pool.shutdownNow();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      pool.shutdownNow();
    }
    if (journal != null) {
      journal.close(); // what ended by now is written; a job still running is "stopped" next time
    }
  }
}
