package io.granule.engine.internal.ops;

import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.ToIntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Long operations the server runs in the background (backups today), with their progress and
 * outcome, for {@code /api/jobs}.
 *
 * <p>At most {@link #WORKERS} jobs run at once; operations on one repository run one at a time in
 * this process (the repository has no cross-process writer lock yet). The newest {@link #KEEP}
 * finished jobs are kept. Thread-safe.
 */
public final class Jobs implements AutoCloseable {
  static final int WORKERS = 2;
  static final int KEEP = 100;
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

  /** A job as the API shows it. */
  public record JobView(
      String id,
      String kind,
      String description,
      State state,
      Object progress,
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
    private volatile Object result;
    private volatile String error;
    private volatile Integer exitCode;
    private volatile Instant started;
    private volatile Instant finished;

    Job(String id, String kind, String description, Instant created) {
      this.id = id;
      this.kind = kind;
      this.description = description;
      this.created = created;
    }

    public String id() {
      return id;
    }

    /** Publishes the latest progress (any JSON-serialisable value). */
    public void progress(Object p) {
      this.progress = p;
    }

    public JobView view() {
      return new JobView(
          id,
          kind,
          description,
          state,
          progress,
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
  private final Map<String, Job> jobs = Collections.synchronizedMap(new LinkedHashMap<>());
  private final Map<Path, ReentrantLock> repoLocks = new ConcurrentHashMap<>();

  /**
   * @param exitCodes maps a failure to the CLI exit code that means the same
   */
  public Jobs(Clock clock, ToIntFunction<Throwable> exitCodes) {
    this.clock = clock;
    this.exitCodes = exitCodes;
    this.pool =
        Executors.newFixedThreadPool(
            WORKERS,
            r -> {
              Thread t = new Thread(r, "granule-job");
              t.setDaemon(true);
              return t;
            });
  }

  /**
   * Queues {@code work}; it runs when a worker is free and no other job of this process works on
   * {@code repository}.
   */
  public Job submit(String kind, String description, Path repository, Work work) {
    Job job = new Job(UUID.randomUUID().toString(), kind, description, clock.instant());
    synchronized (jobs) {
      jobs.put(job.id, job);
      trim();
    }
    ReentrantLock lock =
        repoLocks.computeIfAbsent(
            repository.toAbsolutePath().normalize(), p -> new ReentrantLock());
    pool.execute(
        () -> {
          lock.lock();
          try {
            job.started = clock.instant();
            job.state = State.RUNNING;
            job.result = work.run(job);
            job.state = State.SUCCEEDED;
          } catch (Exception | Error e) {
            job.error = e.getMessage() == null ? e.toString() : e.getMessage();
            if (e instanceof Failed f) {
              job.result = f.result;
              job.exitCode = f.exitCode;
            } else {
              job.exitCode = exitCodes.applyAsInt(e);
            }
            job.state = State.FAILED;
            LOG.warn("job {} ({}) failed: {}", job.id, description, job.error);
          } finally {
            job.finished = clock.instant();
            lock.unlock();
          }
        });
    return job;
  }

  private void trim() {
    List<String> finished = new ArrayList<>();
    for (Job j : jobs.values()) {
      if (j.state == State.SUCCEEDED || j.state == State.FAILED) {
        finished.add(j.id);
      }
    }
    for (int i = 0; i < finished.size() - KEEP; i++) {
      jobs.remove(finished.get(i));
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

  /** Stops taking jobs and waits up to 30 s for running ones. */
  @Override
  public void close() {
    pool.shutdown();
    try {
      if (!pool.awaitTermination(30, TimeUnit.SECONDS)) {
        pool.shutdownNow();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      pool.shutdownNow();
    }
  }
}
