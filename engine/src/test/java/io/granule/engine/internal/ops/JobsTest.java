package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The scheduler on its own: cancels racing the start of jobs, and which finished jobs it keeps. */
class JobsTest {

  /** Waits (up to 20 s) for job {@code id} to end; its view. */
  static Jobs.JobView await(Jobs jobs, String id) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (System.nanoTime() < deadline) {
      Jobs.JobView v = jobs.get(id).orElseThrow();
      if (v.state() == Jobs.State.SUCCEEDED || v.state() == Jobs.State.FAILED) {
        return v;
      }
      Thread.sleep(2);
    }
    throw new AssertionError("job " + id + " never ended: " + jobs.get(id).orElseThrow());
  }

  /**
   * A cancel that lands after a job was handed to a worker but before the worker started it used to
   * cancel the task itself: its bookkeeping never ran, the job stayed RUNNING, its worker slot and
   * claim were never freed, and after two of them no job ever started again.
   */
  @Test
  void cancelAsAJobStartsNeverWedgesTheScheduler() throws Exception {
    try (Jobs jobs = new Jobs(Clock.systemUTC(), e -> 1)) {
      AtomicInteger ran = new AtomicInteger();
      for (int i = 0; i < 300; i++) {
        Path repo = Path.of("/repo" + (i % 3));
        int pause = i % 2;
        Jobs.Job job =
            jobs.submit(
                "verify",
                "job " + i,
                repo,
                "/target" + (i % 3),
                j -> {
                  ran.incrementAndGet();
                  Thread.sleep(pause);
                  return "done";
                });
        jobs.cancel(job.id());
        Jobs.JobView v = await(jobs, job.id());
        if (v.state() == Jobs.State.FAILED) {
          assertThat(v.exitCode()).as(v.toString()).isEqualTo(130);
        } else {
          assertThat(v.result()).isEqualTo("done");
        }
      }
      // every slot, repository and claim is free: new jobs on them all run
      List<String> ids = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        ids.add(
            jobs.submit("verify", "after", Path.of("/repo" + i), "/target" + i, j -> "ok").id());
      }
      for (String id : ids) {
        assertThat(await(jobs, id).state()).isEqualTo(Jobs.State.SUCCEEDED);
      }
    }
  }

  /**
   * A stalled job showed its last rate and ETA as if current, and a cancel that had not taken
   * effect was invisible: the view says when the progress was published, and that a cancel came.
   */
  @Test
  void aStalledJobSaysWhenItLastMovedAndThatACancelCame() throws Exception {
    try (Jobs jobs = new Jobs(Clock.systemUTC(), e -> 1)) {
      CountDownLatch published = new CountDownLatch(1);
      CountDownLatch release = new CountDownLatch(1);
      Jobs.Job job =
          jobs.submit(
              "backup",
              "stalls",
              Path.of("/r"),
              j -> {
                j.progress(java.util.Map.of("bytesPerSecond", 20_000_000));
                published.countDown();
                while (release.getCount() > 0) {
                  try {
                    release.await();
                  } catch (InterruptedException stuck) {
                    // stuck in I/O: a cancel does not stop it
                  }
                }
                return "done";
              });
      assertThat(published.await(10, TimeUnit.SECONDS)).isTrue();
      Jobs.JobView v = jobs.get(job.id()).orElseThrow();
      assertThat(v.progressUpdated()).isNotNull();
      java.time.Instant at = java.time.Instant.parse(v.progressUpdated());
      assertThat(at).isBeforeOrEqualTo(java.time.Instant.now());
      assertThat(v.cancelRequested()).isFalse();
      jobs.cancel(job.id());
      v = jobs.get(job.id()).orElseThrow();
      assertThat(v.state()).isEqualTo(Jobs.State.RUNNING);
      assertThat(v.cancelRequested()).isTrue();
      assertThat(v.progressUpdated()).as("no newer progress").isEqualTo(at.toString());
      release.countDown();
      v = await(jobs, job.id()); // it ends once its I/O returns
      assertThat(v.cancelRequested()).as("a job that has ended is no longer cancelling").isFalse();
    }
  }

  /** A running job's worker is interrupted by a cancel and the job ends FAILED 130. */
  @Test
  void cancelInterruptsARunningJob() throws Exception {
    try (Jobs jobs = new Jobs(Clock.systemUTC(), e -> 1)) {
      CountDownLatch started = new CountDownLatch(1);
      Jobs.Job job =
          jobs.submit(
              "verify",
              "sleeper",
              Path.of("/r"),
              j -> {
                started.countDown();
                Thread.sleep(60_000);
                return "slept";
              });
      assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
      jobs.cancel(job.id());
      Jobs.JobView v = await(jobs, job.id());
      assertThat(v.state()).isEqualTo(Jobs.State.FAILED);
      assertThat(v.exitCode()).isEqualTo(130);
      assertThat(v.error()).contains("cancelled");
      // the interrupt does not leak into the next job on that worker
      Jobs.Job next =
          jobs.submit(
              "verify",
              "next",
              Path.of("/r"),
              j -> Thread.currentThread().isInterrupted() ? "interrupted" : "clean");
      assertThat(await(jobs, next.id()).result()).isEqualTo("clean");
    }
  }

  /**
   * Finished jobs are dropped in the order they ended: a long job's result is kept although more
   * than {@link Jobs#KEEP} shorter jobs submitted after it ended first.
   */
  @Test
  void aLongJobsResultOutlivesShorterLaterOnes() throws Exception {
    try (Jobs jobs = new Jobs(Clock.systemUTC(), e -> 1)) {
      CountDownLatch release = new CountDownLatch(1);
      Jobs.Job longOne =
          jobs.submit(
              "backup",
              "long",
              Path.of("/slow"),
              j -> {
                release.await();
                return "long result";
              });
      String last = null;
      for (int i = 0; i < Jobs.KEEP + 20; i++) {
        last = jobs.submit("verify", "short " + i, Path.of("/fast"), j -> "short").id();
      }
      await(jobs, last);
      release.countDown();
      assertThat(await(jobs, longOne.id()).result()).isEqualTo("long result");
      Thread.sleep(50); // the trim after the long job ended
      assertThat(jobs.get(longOne.id())).as("the job that ended last is kept").isPresent();
      assertThat(jobs.list().stream().filter(v -> v.finished() != null)).hasSize(Jobs.KEEP);
    }
  }

  /**
   * A cancelled job stuck in a read that never returns (a hung source disk) held its worker for
   * good: two of them kept every other repository's jobs queued. Past the cancel grace it no longer
   * holds a worker; it keeps its repository until it ends.
   */
  @Test
  void aCancelledJobStuckInIoStopsHoldingAWorker() throws Exception {
    try (Jobs jobs =
        new Jobs(Clock.systemUTC(), e -> 1, Jobs.MAX_QUEUED, java.time.Duration.ofMillis(300))) {
      CountDownLatch release = new CountDownLatch(1);
      List<Jobs.Job> stuck = new ArrayList<>();
      for (int i = 0; i < Jobs.WORKERS; i++) {
        stuck.add(
            jobs.submit(
                "backup",
                "stuck " + i,
                Path.of("/stuck" + i),
                j -> {
                  while (true) { // deaf to interrupts, as a read of a hung device is
                    try {
                      if (release.await(10, TimeUnit.MILLISECONDS)) {
                        return "late";
                      }
                    } catch (InterruptedException ignored) {
                      // still stuck
                    }
                  }
                }));
      }
      Jobs.Job other = jobs.submit("verify", "other", Path.of("/other"), j -> "ran");
      Thread.sleep(500);
      assertThat(jobs.get(other.id()).orElseThrow().state()).isEqualTo(Jobs.State.QUEUED);
      for (Jobs.Job j : stuck) {
        jobs.cancel(j.id());
      }
      assertThat(await(jobs, other.id()).state()).isEqualTo(Jobs.State.SUCCEEDED);
      Jobs.Job same = jobs.submit("verify", "same repository", Path.of("/stuck0"), j -> "after");
      Thread.sleep(500);
      assertThat(jobs.get(same.id()).orElseThrow().state())
          .as("waits for the stuck job of its repository")
          .isEqualTo(Jobs.State.QUEUED);
      release.countDown();
      for (Jobs.Job j : stuck) {
        // work that finished in spite of the cancel says so (a backup checks before it commits)
        assertThat(await(jobs, j.id()).result()).isEqualTo("late");
      }
      assertThat(await(jobs, same.id()).state()).isEqualTo(Jobs.State.SUCCEEDED);
    }
  }

  /**
   * A job named a repository that did not exist yet (it was being made), and the scheduler keyed it
   * by name; once the directory existed, a job naming it through a link was keyed by device and
   * inode, and both ran at once on one repository.
   */
  @Test
  void aRepositoryThatAppearsAfterAJobStartedIsStillOneRepository(
      @org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    Path repo = tmp.resolve("repo");
    try (Jobs jobs = new Jobs(Clock.systemUTC(), e -> 1)) {
      CountDownLatch started = new CountDownLatch(1);
      CountDownLatch release = new CountDownLatch(1);
      AtomicInteger atOnce = new AtomicInteger();
      AtomicInteger most = new AtomicInteger();
      Jobs.Job first =
          jobs.submit(
              "backup",
              "before the repository exists",
              repo,
              j -> {
                most.accumulateAndGet(atOnce.incrementAndGet(), Math::max);
                started.countDown();
                release.await();
                atOnce.decrementAndGet();
                return "first";
              });
      assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
      java.nio.file.Files.createDirectories(repo);
      Path alias = java.nio.file.Files.createSymbolicLink(tmp.resolve("alias"), repo);
      Jobs.Job second =
          jobs.submit(
              "restore-disk",
              "through a link",
              alias,
              j -> {
                most.accumulateAndGet(atOnce.incrementAndGet(), Math::max);
                atOnce.decrementAndGet();
                return "second";
              });
      Thread.sleep(300);
      assertThat(jobs.get(second.id()).orElseThrow().state())
          .as("waits for the job on its repository")
          .isEqualTo(Jobs.State.QUEUED);
      release.countDown();
      assertThat(await(jobs, first.id()).state()).isEqualTo(Jobs.State.SUCCEEDED);
      assertThat(await(jobs, second.id()).state()).isEqualTo(Jobs.State.SUCCEEDED);
      assertThat(most.get()).isEqualTo(1);
    }
  }

  /**
   * A repository whose running job is stuck took every queue slot with its waiting jobs, and every
   * other repository's submissions were refused. A quarter of the queue is its limit now.
   */
  @Test
  void oneRepositoryCannotFillTheQueueForAll() throws Exception {
    try (Jobs jobs = new Jobs(Clock.systemUTC(), e -> 1, 8)) {
      CountDownLatch release = new CountDownLatch(1);
      jobs.submit(
          "backup",
          "stuck",
          Path.of("/stuck"),
          j -> {
            release.await();
            return "late";
          });
      jobs.submit("verify", "waits 1", Path.of("/stuck"), j -> "1");
      jobs.submit("verify", "waits 2", Path.of("/stuck"), j -> "2");
      org.assertj.core.api.Assertions.assertThatThrownBy(
              () -> jobs.submit("verify", "one too many", Path.of("/stuck"), j -> "3"))
          .isInstanceOf(Jobs.Refused.class)
          .hasMessageContaining("queued for this repository already");
      Jobs.Job other = jobs.submit("verify", "another repository", Path.of("/other"), j -> "ok");
      assertThat(await(jobs, other.id()).state()).isEqualTo(Jobs.State.SUCCEEDED);
      release.countDown();
    }
  }
}
