package io.granule.engine.internal.ops;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's jobs on disk, so a restarted server still shows what ran before it: {@code
 * jobs/jobs.jsonl} in the data directory, one JSON line per change of a job (queued, started,
 * ended), the latest line of a job winning. A job the last server left queued or running (it was
 * killed, or stuck past its stop) comes back {@code FAILED}, exit code 130, saying so.
 *
 * <p>Lines are written by a thread of its own, never by the caller: a data directory on a frozen or
 * hung filesystem delays the journal, not the scheduler or a request. The file is rewritten with
 * only the kept jobs when the last server's lines are read and whenever it has grown past {@link
 * #COMPACT_LINES} lines. One server writes it at a time (a lock on {@code jobs/jobs.lock}); a
 * second server on the same data directory keeps its jobs in memory and says so. Owner-only
 * (0700/0600): results name paths and repositories.
 */
final class JobJournal implements Closeable {
  private static final Logger LOG = LoggerFactory.getLogger(JobJournal.class);

  /** Lines appended before the file is rewritten with only the kept jobs. */
  static final int COMPACT_LINES = 1000;

  // a newer server's fields are not a reason to lose the line
  private static final ObjectMapper JSON =
      JsonMapper.builder()
          .disable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
          .build();
  private static final Object STOP = new Object();

  private final Path file;
  private final FileChannel lockChannel;
  private final FileLock lock;
  private final List<Jobs.JobView> recovered;
  private final LinkedBlockingQueue<Object> lines = new LinkedBlockingQueue<>(); // views, STOP
  private final Thread writer;
  private final java.util.concurrent.atomic.AtomicBoolean closed =
      new java.util.concurrent.atomic.AtomicBoolean();
  private Supplier<List<Jobs.JobView>> kept = List::of; // set before the first line

  private JobJournal(
      Path file, FileChannel lockChannel, FileLock lock, List<Jobs.JobView> recovered) {
    this.file = file;
    this.lockChannel = lockChannel;
    this.lock = lock;
    this.recovered = recovered;
    this.writer = new Thread(this::write, "granule-job-journal");
    this.writer.setDaemon(true);
  }

  /**
   * Opens the journal in {@code dir} (created 0700), reads the last server's jobs and rewrites the
   * file with the newest {@code keep} of them; null, with a warning, if it cannot (another server
   * holds it, the directory is not writable): jobs are then kept in memory only.
   */
  static JobJournal open(Path dir, int keep, java.time.Instant now) {
    FileChannel ch = null;
    try {
      Files.createDirectories(dir);
      if (!Files.isDirectory(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)
          || !Files.getOwner(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)
              .equals(Files.getOwner(dir.getParent()))) {
        throw new IOException(
            dir + " is a link, or not owned by the data directory's owner: remove it");
      }
      Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
      ch =
          FileChannel.open(
              dir.resolve("jobs.lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
      FileLock lock = ch.tryLock();
      if (lock == null) {
        LOG.warn(
            "another granule server uses the job journal in {}: this one keeps its jobs in memory"
                + " only (give each server its own --data directory)",
            dir);
        ch.close();
        return null;
      }
      Path file = dir.resolve("jobs.jsonl");
      List<Jobs.JobView> recovered = read(file, keep, now);
      JobJournal j = new JobJournal(file, ch, lock, recovered);
      j.rewrite(recovered);
      return j;
    } catch (IOException | RuntimeException e) {
      LOG.warn(
          "the job journal in {} cannot be used ({}): jobs are kept in memory only, and a"
              + " restarted server will not show them",
          dir,
          e.toString());
      if (ch != null) {
        try {
          ch.close();
        } catch (IOException ignored) {
          // the warning says it all
        }
      }
      return null;
    }
  }

  /**
   * The last server's jobs, oldest first, at most {@code keep} of the ended ones (by when they
   * ended); those it left queued or running, ended now as FAILED 130.
   */
  private static List<Jobs.JobView> read(Path file, int keep, java.time.Instant now)
      throws IOException {
    if (!Files.exists(file)) {
      return List.of();
    }
    Map<String, Jobs.JobView> latest = new LinkedHashMap<>();
    int bad = 0;
    // line by line, each decoded on its own: a line torn inside a multi-byte character (a name
    // with an 'é') made the whole file unreadable, and every later start ran without a journal
    byte[] all = Files.readAllBytes(file);
    for (int start = 0; start < all.length; ) {
      int end = start;
      while (end < all.length && all[end] != '\n') {
        end++;
      }
      int from = start;
      start = end + 1;
      String line;
      try {
        line =
            StandardCharsets.UTF_8
                .newDecoder()
                .decode(java.nio.ByteBuffer.wrap(all, from, end - from))
                .toString();
      } catch (java.nio.charset.CharacterCodingException e) {
        bad++;
        continue;
      }
      if (line.isBlank()) {
        continue;
      }
      try {
        Jobs.JobView v = JSON.readValue(line, Jobs.JobView.class);
        if (v.id() == null || v.state() == null) {
          throw new IOException("no id or state");
        }
        latest.put(v.id(), v);
      } catch (IOException e) {
        bad++; // a line torn by a crash mid-write, most likely the last
      }
    }
    if (bad > 0) {
      LOG.warn("{} unreadable line(s) of the job journal {} skipped", bad, file);
    }
    List<Jobs.JobView> out = new ArrayList<>();
    for (Jobs.JobView v : latest.values()) {
      if (v.state() == Jobs.State.QUEUED || v.state() == Jobs.State.RUNNING) {
        boolean ran = v.state() == Jobs.State.RUNNING;
        v =
            new Jobs.JobView(
                v.id(),
                v.kind(),
                v.description(),
                Jobs.State.FAILED,
                v.progress(),
                v.progressUpdated(),
                false,
                v.result(),
                ran
                    ? "the server stopped while the job ran (killed, or it did not end within the"
                        + " stop's grace time): its outcome is unknown; its repository's next"
                        + " command finds and clears what it left"
                    : "the server stopped before the job started",
                130,
                v.created(),
                v.started(),
                now.toString());
      }
      out.add(v);
    }
    out.sort(Comparator.comparing(JobJournal::ended));
    List<Jobs.JobView> newest = out.subList(Math.max(0, out.size() - keep), out.size());
    List<Jobs.JobView> kept = new ArrayList<>(newest);
    kept.sort(Comparator.comparing(v -> instant(v.created()))); // in submission order
    return List.copyOf(kept);
  }

  private static java.time.Instant ended(Jobs.JobView v) {
    return instant(v.finished() != null ? v.finished() : v.created());
  }

  static java.time.Instant instant(String iso) {
    try {
      return iso == null ? java.time.Instant.EPOCH : java.time.Instant.parse(iso);
    } catch (java.time.format.DateTimeParseException e) {
      return java.time.Instant.EPOCH;
    }
  }

  /** The last server's jobs, ended, oldest submitted first. */
  List<Jobs.JobView> recovered() {
    return recovered;
  }

  /** Starts writing; {@code kept} lists the jobs to keep when the file is rewritten. */
  void start(Supplier<List<Jobs.JobView>> kept) {
    this.kept = kept;
    writer.start();
  }

  /** Records {@code v} (queued, started or ended); never blocks (written by another thread). */
  void record(Jobs.JobView v) {
    lines.add(v);
  }

  private void write() {
    int appended = 0;
    while (true) {
      Object first;
      try {
        first = lines.take();
      } catch (InterruptedException e) {
        return;
      }
      List<Object> batch = new ArrayList<>();
      batch.add(first);
      lines.drainTo(batch);
      boolean stop = batch.remove(STOP);
      if (batch.isEmpty()) {
        return;
      }
      try {
        if (appended + batch.size() > COMPACT_LINES) {
          rewrite(kept.get());
          appended = 0;
        } else {
          append(batch);
          appended += batch.size();
        }
      } catch (IOException | RuntimeException e) {
        LOG.warn("the job journal {} was not written: {}", file, e.toString());
      }
      if (stop) {
        return;
      }
    }
  }

  private void append(List<Object> batch) throws IOException {
    StringBuilder sb = new StringBuilder();
    for (Object v : batch) {
      try {
        sb.append(JSON.writeValueAsString(v)).append('\n');
      } catch (IOException | RuntimeException e) {
        LOG.warn("job {} not journaled: {}", ((Jobs.JobView) v).id(), e.toString());
      }
    }
    try (FileChannel ch =
        FileChannel.open(
            file,
            java.util.Set.of(
                StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND),
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
      ByteBuffer b = ByteBuffer.wrap(sb.toString().getBytes(StandardCharsets.UTF_8));
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(false);
    }
  }

  /** Replaces the file with one line per job of {@code views}: written aside, synced, renamed. */
  private void rewrite(List<Jobs.JobView> views) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.deleteIfExists(tmp);
    StringBuilder sb = new StringBuilder();
    for (Jobs.JobView v : views) {
      sb.append(JSON.writeValueAsString(v)).append('\n');
    }
    try (FileChannel ch =
        FileChannel.open(
            tmp,
            java.util.Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
      ByteBuffer b = ByteBuffer.wrap(sb.toString().getBytes(StandardCharsets.UTF_8));
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(false);
    }
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /** Writes what is queued (waiting up to 5 s: a hung data directory), then lets go of the file. */
  @Override
  public void close() {
    if (closed.getAndSet(true)) {
      return; // a stop's hook and the component both close the jobs
    }
    lines.add(STOP);
    try {
      writer.join(TimeUnit.SECONDS.toMillis(5));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (writer.isAlive()) {
      LOG.warn("the job journal {} was not written within 5 s of the stop", file);
    }
    try {
      lock.release();
      lockChannel.close();
    } catch (IOException e) {
      LOG.warn("the job journal's lock was not released: {}", e.toString());
    }
  }
}
