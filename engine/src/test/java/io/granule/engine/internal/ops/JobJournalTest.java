package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A server's jobs outlive it: what the next server shows of the last one's. */
class JobJournalTest {
  @TempDir Path tmp;

  private static Jobs.JobView await(Jobs jobs, String id) throws InterruptedException {
    return JobsTest.await(jobs, id);
  }

  private static Jobs jobs(Path dir) {
    return new Jobs(Clock.systemUTC(), e -> 5, dir);
  }

  /** Waits until the journal file holds {@code text} (it is written by a thread of its own). */
  private static void awaitJournal(Path file, String text) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (System.nanoTime() < deadline) {
      if (Files.exists(file) && Files.readString(file).contains(text)) {
        return;
      }
      Thread.sleep(5);
    }
    throw new AssertionError(file + " never held " + text);
  }

  @Test
  void endedJobsComeBackWithTheirResultsAndErrors() throws Exception {
    Path dir = tmp.resolve("jobs");
    String ok;
    String failed;
    try (Jobs jobs = jobs(dir)) {
      ok = jobs.submit("verify", "a verify", Path.of("/r1"), j -> Map.of("damaged", 0)).id();
      failed =
          jobs.submit(
                  "backup",
                  "a backup",
                  Path.of("/r2"),
                  j -> {
                    throw new java.io.IOException("disk gone");
                  })
              .id();
      await(jobs, ok);
      await(jobs, failed);
    }
    assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)))
        .isEqualTo("rwx------");
    assertThat(
            PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("jobs.jsonl"))))
        .isEqualTo("rw-------");
    try (Jobs again = jobs(dir)) {
      List<Jobs.JobView> list = again.list();
      assertThat(list).extracting(Jobs.JobView::id).containsExactly(ok, failed);
      Jobs.JobView a = again.get(ok).orElseThrow();
      assertThat(a.state()).isEqualTo(Jobs.State.SUCCEEDED);
      assertThat(a.exitCode()).isZero();
      assertThat(a.result()).isEqualTo(Map.of("damaged", 0));
      assertThat(a.started()).isNotNull();
      Jobs.JobView b = again.get(failed).orElseThrow();
      assertThat(b.state()).isEqualTo(Jobs.State.FAILED);
      assertThat(b.error()).isEqualTo("disk gone");
      assertThat(b.exitCode()).isEqualTo(5);
      // and new jobs go on beside them
      String next = again.submit("verify", "next", Path.of("/r1"), j -> "fine").id();
      assertThat(await(again, next).state()).isEqualTo(Jobs.State.SUCCEEDED);
    }
    try (Jobs third = jobs(dir)) {
      assertThat(third.list()).hasSize(3);
    }
  }

  /**
   * A line torn inside a multi-byte character (a description with an 'é') is skipped alone: read as
   * one text, the whole journal was refused and every later server ran without one.
   */
  @Test
  void aLineTornInsideACharacterIsSkippedAlone() throws Exception {
    Path dir = tmp.resolve("jobs");
    String ok;
    try (Jobs jobs = jobs(dir)) {
      ok = jobs.submit("verify", "café", Path.of("/r1"), j -> "fine").id();
      await(jobs, ok);
    }
    Path file = dir.resolve("jobs.jsonl");
    awaitJournal(file, "caf");
    byte[] torn =
        "{\"id\":\"x\",\"state\":\"SUCCEEDED\",\"description\":\"caf\u00e9"
            .getBytes(StandardCharsets.UTF_8);
    byte[] cut = java.util.Arrays.copyOf(torn, torn.length - 1); // half of the 'é'
    Files.write(file, cut, java.nio.file.StandardOpenOption.APPEND);
    try (Jobs again = jobs(dir)) {
      assertThat(again.list()).extracting(Jobs.JobView::id).containsExactly(ok);
      String next = again.submit("verify", "next", Path.of("/r1"), j -> "fine").id();
      await(again, next);
    }
    try (Jobs third = jobs(dir)) {
      assertThat(third.list()).hasSize(2);
    }
  }

  /**
   * A server killed with jobs queued and running (its journal copied while they were): the next one
   * shows them FAILED 130, saying the server stopped; a torn last line is skipped. A second server
   * on a journal in use keeps its jobs in memory.
   */
  @Test
  void jobsALostServerLeftRunningEndFailedAndASecondServerDoesNotShareTheJournal()
      throws Exception {
    Path dir = tmp.resolve("jobs");
    CountDownLatch release = new CountDownLatch(1);
    Path killed = tmp.resolve("killed");
    String running;
    String queued;
    try (Jobs jobs = jobs(dir)) {
      running =
          jobs.submit(
                  "backup",
                  "long",
                  Path.of("/r"),
                  j -> {
                    release.await();
                    return "done";
                  })
              .id();
      queued = jobs.submit("verify", "behind it", Path.of("/r"), j -> "v").id();
      awaitJournal(dir.resolve("jobs.jsonl"), "\"RUNNING\"");
      awaitJournal(dir.resolve("jobs.jsonl"), queued);
      Files.createDirectories(killed);
      Files.write(
          killed.resolve("jobs.jsonl"),
          (Files.readString(dir.resolve("jobs.jsonl")) + "{\"id\":\"torn")
              .getBytes(StandardCharsets.UTF_8));

      try (Jobs second = jobs(dir)) {
        assertThat(second.list()).as("the journal in use is not read or written").isEmpty();
        String own = second.submit("verify", "own", Path.of("/s"), j -> "x").id();
        await(second, own);
      }
      release.countDown();
      await(jobs, running);
      await(jobs, queued);
    }
    try (Jobs after = jobs(killed)) {
      Jobs.JobView r = after.get(running).orElseThrow();
      assertThat(r.state()).isEqualTo(Jobs.State.FAILED);
      assertThat(r.exitCode()).isEqualTo(130);
      assertThat(r.error()).contains("the server stopped while the job ran");
      assertThat(r.finished()).isNotNull();
      Jobs.JobView q = after.get(queued).orElseThrow();
      assertThat(q.state()).isEqualTo(Jobs.State.FAILED);
      assertThat(q.error()).contains("before the job started");
      assertThat(after.list()).hasSize(2);
    }
    try (Jobs after = jobs(dir)) {
      assertThat(after.get(running).orElseThrow().state()).isEqualTo(Jobs.State.SUCCEEDED);
      assertThat(after.list()).as("the second server's job was not journaled").hasSize(2);
    }
  }

  /** A journal directory that is a link is not followed (nor chmodded): jobs stay in memory. */
  @Test
  void aLinkInPlaceOfTheJournalDirectoryIsNotFollowed() throws Exception {
    Path elsewhere = Files.createDirectories(tmp.resolve("elsewhere"));
    Files.setPosixFilePermissions(elsewhere, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path dir = Files.createSymbolicLink(tmp.resolve("jobs"), elsewhere);
    try (Jobs jobs = jobs(dir)) {
      await(jobs, jobs.submit("verify", "v", Path.of("/r"), j -> "x").id());
    }
    assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(elsewhere)))
        .isEqualTo("rwxr-xr-x");
    try (java.util.stream.Stream<Path> s = Files.list(elsewhere)) {
      assertThat(s).isEmpty();
    }
  }

  /** The file is rewritten with only the kept jobs as it grows; a restart shows the newest. */
  @Test
  void theJournalKeepsTheNewestJobsAndStaysSmall() throws Exception {
    Path dir = tmp.resolve("jobs");
    String last = null;
    int n = JobJournal.COMPACT_LINES / 3 + Jobs.KEEP;
    try (Jobs jobs = jobs(dir)) {
      for (int i = 0; i < n; i++) {
        int k = i;
        last = jobs.submit("verify", "job " + i, Path.of("/r" + (i % 7)), j -> k).id();
        await(jobs, last);
      }
    }
    long lines = Files.readAllLines(dir.resolve("jobs.jsonl")).size();
    assertThat(lines).as("rewritten once past the limit").isLessThan(JobJournal.COMPACT_LINES);
    try (Jobs again = jobs(dir)) {
      List<Jobs.JobView> list = again.list();
      assertThat(list).hasSize(Jobs.KEEP);
      assertThat(list.get(list.size() - 1).id()).isEqualTo(last);
      assertThat(list.get(list.size() - 1).result()).isEqualTo(n - 1);
      assertThat(list.get(0).description()).isEqualTo("job " + (n - Jobs.KEEP));
    }
  }
}
