package io.granule.engine.internal.image;

import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.osgi.service.component.annotations.Component;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code fsfreeze}: freezes mounted filesystems (ext4, XFS, btrfs…) with util-linux {@code fsfreeze
 * -f} while a backup reads the devices under them, and thaws them with {@code fsfreeze -u}.
 *
 * <p>Thaw is guaranteed on every path the process survives: on {@link Hold#close}, by a watchdog
 * thread when {@code maxHold} passes (the backup then fails), and by a JVM shutdown hook (SIGTERM,
 * Ctrl-C). A mount whose {@code fsfreeze -f} did not finish in {@link #STEP_LIMIT} stays tracked:
 * the kernel may complete that freeze later (it waits for writers to drain, and a thaw meanwhile is
 * answered EINVAL), so it is thawed again once that fsfreeze has ended. A process killed with
 * SIGKILL cannot thaw: each freeze is recorded in {@code /run/granule/frozen/} ({@link
 * FreezeRecord}), and the next granule command thaws a mount whose freezer is gone and which is
 * still the filesystem it froze ({@link #thawStale}). By hand: {@code fsfreeze -u MOUNT}.
 *
 * <p>Each target must be a mount point, and is resolved once and held ({@link FreezeTarget}): the
 * refusal of this process's own filesystems, the record, the freeze and the thaw all reach the
 * directory resolved, whatever is renamed on its path meanwhile. A thaw answered "not frozen" for a
 * freeze that succeeded is an error: someone thawed it while the backup read.
 */
@Component(service = SnapshotProvider.class)
public final class FsFreeze implements SnapshotProvider {
  public static final String NAME = "fsfreeze";
  static final Path RECORDS = Path.of("/run/granule/frozen");
  private static final Logger LOG = LoggerFactory.getLogger(FsFreeze.class);

  /** How long one fsfreeze may take before it is given up on (it is still waited for after). */
  static final Duration STEP_LIMIT = Duration.ofSeconds(30);

  // what tests replace: where records go, the fsfreeze run, its bound, and what records see
  static volatile Path records = RECORDS;
  static volatile String command = "fsfreeze";
  static volatile Duration stepLimit = STEP_LIMIT;
  static volatile FreezeRecord.Host host = FreezeRecord.LINUX;

  /** How often a thaw that failed is tried again while the process lives, and for how long. */
  static volatile Duration retryEvery = Duration.ofSeconds(30);

  static volatile Duration retryFor = Duration.ofMinutes(10);

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Hold begin(List<Path> targets, Duration maxHold) throws IOException {
    thawStale();
    // each resolved once and held: every step below reaches what was resolved and checked
    List<FreezeTarget> held = new ArrayList<>();
    try {
      for (Path t : targets) {
        FreezeTarget ft = FreezeTarget.resolve(t);
        if (held.stream().anyMatch(h -> h.real().equals(ft.real()))) {
          ft.close(); // named twice
          continue;
        }
        held.add(ft);
        if (!FreezeTarget.directoriesStandIn) {
          refuseOwnFilesystems(ft);
        }
      }
    } catch (IOException | RuntimeException e) {
      for (FreezeTarget ft : held) {
        try {
          ft.close();
        } catch (IOException c) {
          e.addSuppressed(c);
        }
      }
      throw e;
    }
    FrozenHold hold = new FrozenHold(held, maxHold);
    // The limit counts from the first freeze, and its thaw comes before anything is logged: a
    // write to a frozen filesystem (a log, a temporary file) blocks until the thaw.
    hold.startWatchdog();
    try {
      for (FreezeTarget t : held) {
        LOG.info("freezing {}", t.real()); // before: a log on a frozen filesystem would block
        hold.freeze(t);
      }
    } catch (IOException | RuntimeException e) {
      try {
        hold.close();
      } catch (IOException | RuntimeException c) {
        e.addSuppressed(c);
      }
      throw e;
    }
    return hold;
  }

  /**
   * The files this process writes while it runs, by what holds them: a freeze of a filesystem
   * holding any would block this process (and a log write before the watchdog started blocked the
   * thaw itself); the root filesystem, where every process of the machine writes, is among them.
   */
  public static Map<String, Path> ownFiles() {
    Map<String, Path> ours = new LinkedHashMap<>();
    ours.put("the root filesystem (every process of this machine writes there)", Path.of("/"));
    String logs = System.getProperty("granule.log.dir");
    if (logs != null) {
      ours.put("this process's log directory", Path.of(logs).toAbsolutePath());
    }
    ours.put("this process's temporary files", Path.of(System.getProperty("java.io.tmpdir")));
    // the JVM maps its performance counters from /tmp/hsperfdata_USER whatever java.io.tmpdir is
    // (and the attach socket is there): frozen, every thread that touches them stalls
    ours.put("the JVM's performance data (/tmp)", Path.of("/tmp"));
    String scratch = System.getProperty("granule.tmpdir");
    if (scratch != null) {
      ours.put("this process's scratch directory", Path.of(scratch));
    }
    for (int fd : new int[] {1, 2}) { // output redirected to a file blocks there too
      Path out = Path.of("/proc/self/fd/" + fd);
      if (Files.isRegularFile(out)) {
        ours.put(fd == 1 ? "this process's standard output" : "this process's error output", out);
      }
    }
    return ours;
  }

  /**
   * Refuses a target on the filesystem of {@link #ownFiles}, by the device of the directory held
   * (the backup checks the names before; this is what is frozen).
   */
  private static void refuseOwnFilesystems(FreezeTarget t) throws IOException {
    for (Map.Entry<String, Path> e : ownFiles().entrySet()) {
      Path existing = null;
      for (Path a = e.getValue().toAbsolutePath(); a != null; a = a.getParent()) {
        if (Files.exists(a)) {
          existing = a;
          break;
        }
      }
      Object dev;
      try {
        dev = existing == null ? null : Files.getAttribute(existing, "unix:dev");
      } catch (IOException | RuntimeException x) {
        continue; // cannot tell
      }
      if (dev instanceof Number n && n.longValue() == t.dev()) {
        throw new IOException(
            "refusing to freeze '"
                + t.named()
                + "'"
                + (t.real().equals(t.named()) ? "" : " ('" + t.real() + "')")
                + ": it is on the filesystem of "
                + e.getKey()
                + " ("
                + e.getValue()
                + "), which would hang until the freeze's limit; name the mount point of the"
                + " application's own filesystem");
      }
    }
  }

  /**
   * Thaws mounts frozen by granule processes that no longer exist (killed with SIGKILL), each only
   * if its freezer is gone (pid absent, or taken by a process with another start time), the
   * filesystem mounted there is still the one it froze, no {@code fsfreeze -f} of it is under way,
   * no live freezer has a record of that filesystem, and the freeze's deadline is at most {@link
   * FreezeRecord#STALE_MARGIN} ago. Records that fail a test other than the first are removed
   * without a thaw (see {@link FreezeRecord.Verdict}).
   */
  public static void thawStale() {
    Path dir = records;
    if (!Files.isDirectory(dir) || !Files.isWritable(dir)) {
      return; // none, or not root: this process could neither thaw nor clean up
    }
    Map<Path, FreezeRecord> found = new LinkedHashMap<>();
    try (var list = Files.list(dir)) {
      for (Path r : list.toList()) {
        if (!r.getFileName().toString().endsWith(FreezeRecord.SUFFIX)) {
          continue;
        }
        try {
          found.put(r, FreezeRecord.parse(Files.readString(r, StandardCharsets.UTF_8)));
        } catch (IOException | RuntimeException e) {
          LOG.warn("unable to read freeze record {}: {}", r, e.toString());
        }
      }
    } catch (IOException e) {
      LOG.warn("unable to list {}: {}", dir, e.toString());
      return;
    }
    FreezeRecord.Host h = host;
    Map<Path, FreezeRecord.Verdict> verdicts = new LinkedHashMap<>();
    // each recorded mount resolved once (by SafePath's rules) and held: the filesystem checked is
    // the one thawed
    Map<Path, FreezeTarget> held = new HashMap<>();
    Map<Path, String> unreachable = new HashMap<>();
    for (Map.Entry<Path, FreezeRecord> e : found.entrySet()) {
      FreezeRecord rec = e.getValue();
      Path at = rec.mount;
      if (!rec.legacy && Files.exists(rec.mount)) {
        try {
          FreezeTarget t = FreezeTarget.forThaw(rec.mount);
          held.put(e.getKey(), t);
          at = t.at();
        } catch (IOException | RuntimeException x) {
          unreachable.put(e.getKey(), x.getMessage());
        }
      }
      verdicts.put(e.getKey(), rec.verdict(h, at));
    }
    try {
      actOnStale(found, verdicts, held, unreachable);
    } finally {
      for (FreezeTarget t : held.values()) {
        try {
          t.close();
        } catch (IOException x) {
          LOG.warn("unable to close {}: {}", t.real(), x.toString());
        }
      }
    }
  }

  private static void actOnStale(
      Map<Path, FreezeRecord> found,
      Map<Path, FreezeRecord.Verdict> verdicts,
      Map<Path, FreezeTarget> held,
      Map<Path, String> unreachable) {
    for (Map.Entry<Path, FreezeRecord> e : found.entrySet()) {
      Path r = e.getKey();
      FreezeRecord rec = e.getValue();
      try {
        switch (verdicts.get(r)) {
          case KEEP:
            break;
          case DROP_LEGACY:
            LOG.warn(
                "freeze record {} (granule process {} froze {}) is from an older granule and cannot"
                    + " be checked: removed; if {} is still frozen, thaw it with 'fsfreeze -u {}'",
                r,
                rec.pid,
                rec.mount,
                rec.mount,
                rec.mount);
            Files.deleteIfExists(r);
            break;
          case DROP_REBOOTED:
            Files.deleteIfExists(r);
            break;
          case DROP_EXPIRED:
            // no thaw was tried for it (its freezer was killed, and no command since could): say
            // so loudly, the filesystem may have stayed frozen all along
            LOG.error(
                "freeze record {}: granule process {} froze {} and is gone, and the freeze's limit"
                    + " passed more than {} ago with no thaw of it: removed without thawing (a"
                    + " freeze there now may be another tool's); {} may still be frozen: if"
                    + " writes to it hang, run 'fsfreeze -u {}'",
                r,
                rec.pid,
                rec.mount,
                FreezeRecord.STALE_MARGIN.toMinutes() + " min",
                rec.mount,
                rec.mount);
            Files.deleteIfExists(r);
            break;
          case DROP_OTHER_FILESYSTEM:
            LOG.info(
                "freeze record {}: {} is no longer the filesystem granule process {} froze"
                    + " (unmounted): removed without thawing",
                r,
                rec.mount,
                rec.pid);
            Files.deleteIfExists(r);
            break;
          case THAW:
            boolean liveFreeze = false;
            for (Map.Entry<Path, FreezeRecord> o : found.entrySet()) {
              liveFreeze |=
                  verdicts.get(o.getKey()) == FreezeRecord.Verdict.KEEP
                      && o.getValue().sameFilesystemAs(rec);
            }
            if (liveFreeze) {
              LOG.info(
                  "freeze record {}: granule process {} is gone, but another freeze of {} is live:"
                      + " removed without thawing",
                  r,
                  rec.pid,
                  rec.mount);
            } else if (!held.containsKey(r)) {
              LOG.error(
                  "freeze record {}: granule process {} froze {} and is gone, but it cannot be"
                      + " reached safely ({}): removed without thawing; if it is still frozen,"
                      + " run 'fsfreeze -u' on its real path",
                  r,
                  rec.pid,
                  rec.mount,
                  unreachable.getOrDefault(r, "not held"));
            } else if (run("-u", held.get(r).at(), rec.mount) == Outcome.DONE) {
              LOG.warn(
                  "thawed {}: frozen by granule process {}, which is gone", rec.mount, rec.pid);
            } else {
              LOG.info(
                  "{} (frozen by granule process {}, which is gone) was thawed already",
                  rec.mount,
                  rec.pid);
            }
            Files.deleteIfExists(r);
            break;
        }
      } catch (IOException | RuntimeException x) {
        LOG.warn("unable to act on freeze record {}: {}", r, x.toString());
      }
    }
  }

  /** What a finished fsfreeze did. */
  enum Outcome {
    /** It froze, or thawed. */
    DONE,
    /** A thaw answered EINVAL: the filesystem was not frozen (or its freeze is not complete). */
    NOT_FROZEN
  }

  /** fsfreeze did not finish within {@link #stepLimit}: it may still take effect later. */
  static final class StuckException extends IOException {
    private static final long serialVersionUID = 1L;
    final transient Process process;

    StuckException(String message, Process process) {
      super(message);
      this.process = process;
    }
  }

  /**
   * Runs {@code fsfreeze FLAG AT} ({@code AT} reaches {@code mount}, which messages name), waiting
   * at most {@link #stepLimit}, whatever interrupts the thread meanwhile (a cancel): a thaw given
   * up half way left a filesystem frozen, and a freeze given up may still take effect. The
   * interrupt is kept for the caller. One given up on is left running (inside the kernel a kill
   * would not stop it), for the caller to wait for.
   *
   * @throws StuckException if it did not finish in time (it may still take effect)
   */
  static Outcome run(String flag, Path at, Path mount) throws IOException {
    Process p = new ProcessBuilder(command, flag, at.toString()).redirectErrorStream(true).start();
    // read aside: reading first and waiting after put no bound on an fsfreeze that hangs
    java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
    Thread reader =
        new Thread(
            () -> {
              try (var in = p.getInputStream()) {
                in.transferTo(buf);
              } catch (IOException e) {
                // the process is gone
              }
            },
            "fsfreeze-output");
    reader.setDaemon(true);
    reader.start();
    boolean interrupted = false;
    Duration limit = stepLimit;
    long deadline = System.nanoTime() + limit.toNanos();
    boolean done = false;
    while (!done) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        break;
      }
      try {
        done = p.waitFor(left, TimeUnit.NANOSECONDS);
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    if (!done) {
      throw new StuckException(
          "fsfreeze "
              + flag
              + " "
              + mount
              + " did not finish in "
              + limit(limit)
              + " (a filesystem it needs is frozen, its device hangs, or a writer to it does not"
              + " finish)",
          p);
    }
    try {
      reader.join(1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    String out;
    synchronized (buf) {
      out = buf.toString(StandardCharsets.UTF_8).trim().replace(at.toString(), mount.toString());
    }
    if (p.exitValue() != 0) {
      // EINVAL: not frozen, or a freeze not complete yet (it waits for writers): the caller judges
      if (flag.equals("-u") && out.contains("Invalid argument")) {
        return Outcome.NOT_FROZEN;
      }
      throw new IOException(
          "fsfreeze "
              + flag
              + " "
              + mount
              + " failed: "
              + (out.isEmpty() ? "exit code " + p.exitValue() : out)
              + (flag.equals("-f") ? " (is it a mounted ext4, XFS or btrfs filesystem?)" : ""));
    }
    return Outcome.DONE;
  }

  /**
   * Frozen mounts, each tracked from before its freeze until it is known thawed: by a thaw that
   * succeeded, or one answered "not frozen" while no fsfreeze of it is under way.
   */
  static final class FrozenHold implements Hold {
    private final List<Path> mounts; // the targets' real paths
    private final Map<Path, FreezeTarget> targets = new HashMap<>(); // held till known thawed
    private final java.util.Set<Path> confirmed = new java.util.HashSet<>(); // fsfreeze -f: done
    private final List<Path> frozen = new ArrayList<>(); // tracked: may be frozen by this hold
    private final List<Path> freezing = new ArrayList<>(); // fsfreeze -f under way, in its step
    private final Map<Path, Process> pending = new HashMap<>(); // fsfreeze given up on, running
    private final Map<Path, Path> recordFiles = new HashMap<>(); // this hold's own records
    private final Object thawLock = new Object(); // one thaw at a time (the others wait for it)
    private boolean thawing; // a thaw was asked for: a freeze finishing now thaws again
    private final Duration maxHold;
    private final Thread shutdownHook;
    private Thread watchdog;
    private Thread retrier;
    private volatile boolean expired;
    private volatile boolean thawedAtExit;
    private boolean closed;

    FrozenHold(List<FreezeTarget> held, Duration maxHold) {
      this.mounts = new ArrayList<>();
      for (FreezeTarget t : held) {
        mounts.add(t.real());
        targets.put(t.real(), t);
      }
      this.maxHold = maxHold;
      this.shutdownHook =
          new Thread(
              () -> {
                // the process is stopping: whatever reads on (a server lets running jobs finish)
                // must not save a snapshot as frozen
                thawedAtExit = true;
                thawQuietly();
                awaitPendingAtExit();
              },
              "granule-thaw-on-exit");
      Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /**
     * Freezes {@code m}. It counts as frozen from before fsfreeze runs (its record is written
     * first), and fsfreeze runs outside this hold's monitor: a freeze that hangs (a filesystem
     * inside an image on one frozen already, a writer that does not finish) no longer kept the
     * watchdog, the exit hook and the thaw waiting on it. One given up on may still take effect: it
     * stays tracked, and is thawed once its fsfreeze has ended.
     */
    void freeze(FreezeTarget t) throws IOException {
      Path m = t.real();
      FreezeRecord rec = FreezeRecord.ofThisProcess(m, t.dev(), t.mountId(), maxHold, host);
      Path dir = records;
      Path file = dir.resolve(rec.fileName());
      synchronized (this) {
        Files.createDirectories(dir);
        Path tmp = dir.resolve(rec.fileName() + ".tmp");
        Files.writeString(tmp, rec.format(), StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
        recordFiles.put(m, file);
        frozen.add(m);
        freezing.add(m);
      }
      boolean thawNow;
      try {
        run("-f", t.at(), m);
        synchronized (this) {
          confirmed.add(m);
        }
      } catch (StuckException e) {
        synchronized (this) {
          freezing.remove(m);
          pending.put(m, e.process); // thawed once it ends: it may freeze at any time till then
        }
        startRetrier();
        throw e;
      } catch (IOException e) {
        synchronized (this) { // refused outright (EBUSY: frozen by another): nothing to thaw
          freezing.remove(m);
          frozen.remove(m);
          forgetRecord(m);
        }
        throw e;
      } finally {
        synchronized (this) {
          freezing.remove(m);
          thawNow = thawing && frozen.contains(m) && !pending.containsKey(m);
        }
      }
      if (thawNow) {
        thaw(); // a thaw ran while this froze: it could not count on this one
      }
    }

    void startWatchdog() {
      watchdog =
          new Thread(
              () -> {
                try {
                  Thread.sleep(maxHold.toMillis());
                } catch (InterruptedException e) {
                  return;
                }
                expired = true;
                thawQuietly(); // first: logging while frozen may block
                LOG.error(
                    "{} stayed frozen for the {} limit: thawed; the backup fails",
                    mounts,
                    limit(maxHold));
              },
              "granule-freeze-watchdog");
      watchdog.setDaemon(true);
      watchdog.start();
    }

    @Override
    public void check() throws IOException {
      if (thawedAtExit) {
        throw new IOException(
            "the freeze of "
                + mounts
                + " was lifted because the process is stopping: the snapshot would not be"
                + " consistent");
      }
      if (expired) {
        throw new IOException(
            "the freeze of "
                + mounts
                + " passed its "
                + limit(maxHold)
                + " limit and was lifted while the backup read: the snapshot would not be"
                + " consistent (raise --freeze-timeout, or back up less at once)");
      }
    }

    private void thawQuietly() {
      try {
        thaw();
      } catch (IOException e) {
        LOG.error("unable to thaw {}: {}; run 'fsfreeze -u' on them now", tracked(), e.toString());
      }
    }

    synchronized List<Path> tracked() {
      return new ArrayList<>(frozen);
    }

    /** Mounts whose fsfreeze ran past its step and has not ended yet. */
    synchronized List<Path> pending() {
      return new ArrayList<>(pending.keySet());
    }

    /** Forgets the fsfreeze runs given up on that have ended; whether any had. */
    private synchronized boolean reapPending() {
      boolean ended = pending.values().removeIf(p -> !p.isAlive());
      if (ended) {
        notifyAll();
      }
      return ended;
    }

    /**
     * Thaws every mount tracked, last first, outside this hold's monitor (a thaw may wait for a
     * hung freeze), except those with an fsfreeze under way: the end of that thaws them. One that
     * fails is tried again once the others are thawed (a filesystem inside an image on another
     * thaws once that other does), and in the background after, as long as the process lives.
     */
    private void thaw() throws IOException {
      List<Path> thawed = new ArrayList<>();
      List<Path> thawedByOthers = new ArrayList<>();
      List<Path> wereNot = new ArrayList<>();
      IOException first = null;
      synchronized (thawLock) {
        synchronized (this) {
          thawing = true;
        }
        reapPending();
        for (int pass = 0; pass < 2; pass++) {
          List<Path> todo;
          synchronized (this) {
            todo = new ArrayList<>(frozen);
            todo.removeAll(freezing); // its freeze, once it returns, thaws it again
            todo.removeAll(pending.keySet()); // thawed once that fsfreeze ends
          }
          if (todo.isEmpty()) {
            break;
          }
          first = null;
          for (int i = todo.size() - 1; i >= 0; i--) {
            Path m = todo.get(i);
            Outcome o;
            boolean wasConfirmed;
            try {
              Path at;
              synchronized (this) {
                FreezeTarget t = targets.get(m);
                at = t == null ? m : t.at();
                wasConfirmed = confirmed.contains(m);
              }
              o = run("-u", at, m);
            } catch (StuckException e) {
              synchronized (this) {
                pending.put(m, e.process); // it may thaw later; tried again once it has ended
              }
              if (first == null) {
                first = e;
              }
              continue;
            } catch (IOException e) {
              if (first == null) {
                first = e;
              }
              continue;
            }
            synchronized (this) {
              if (freezing.contains(m) || pending.containsKey(m)) {
                continue; // a freeze of it is under way: a thaw now does not count
              }
              frozen.remove(m);
              forgetRecord(m);
            }
            if (o == Outcome.DONE) {
              thawed.add(m);
            } else if (wasConfirmed) {
              // its freeze succeeded, through the same held directory: thawed meanwhile by
              // another (a thaw by hand), so what was read after that was not frozen
              thawedByOthers.add(m);
            } else {
              wereNot.add(m);
            }
          }
        }
      }
      // when all are thawed: a log may be on one
      thawed.forEach(m -> LOG.info("thawed {}", m));
      wereNot.forEach(m -> LOG.info("thawed {} (it was not frozen)", m));
      if (first == null && !thawedByOthers.isEmpty()) {
        first =
            new IOException(
                "fsfreeze -u "
                    + thawedByOthers
                    + " answered that "
                    + (thawedByOthers.size() == 1 ? "it was" : "they were")
                    + " not frozen, though the freeze succeeded: another process thawed it"
                    + " meanwhile, so the data read after that may not be consistent; check that"
                    + " no filesystem is left frozen (by hand: fsfreeze -u MOUNT)");
      }
      if (!tracked().isEmpty()) {
        startRetrier();
      }
      if (first != null) {
        throw first;
      }
    }

    /** Deletes this hold's record of {@code m}, and no other (caller holds this monitor). */
    private void forgetRecord(Path m) {
      confirmed.remove(m);
      release(m);
      Path file = recordFiles.remove(m);
      if (file == null) {
        return;
      }
      try {
        Files.deleteIfExists(file);
      } catch (IOException e) {
        LOG.warn("unable to delete freeze record {}: {}", file, e.toString());
      }
    }

    /** Closes the descriptor of {@code m}'s target (caller holds this monitor). */
    private void release(Path m) {
      FreezeTarget t = targets.remove(m);
      if (t == null) {
        return;
      }
      try {
        t.close();
      } catch (IOException e) {
        LOG.warn("unable to close {}: {}", m, e.toString());
      }
    }

    /** Closes the descriptors of targets not tracked (never frozen, or known thawed). */
    private synchronized void releaseUntracked() {
      for (Path m : new ArrayList<>(targets.keySet())) {
        if (!frozen.contains(m)) {
          release(m);
        }
      }
    }

    /**
     * Starts (once) the thread that, after a thaw left mounts tracked, thaws each again once its
     * fsfreeze given up on has ended, and retries failed thaws every {@link #retryEvery} for {@link
     * #retryFor}. Once nothing is tracked, the exit hook is not needed any more.
     */
    private synchronized void startRetrier() {
      if (retrier != null && retrier.isAlive()) {
        return;
      }
      retrier =
          new Thread(
              () -> {
                long giveUp = System.nanoTime() + retryFor.toNanos();
                long next = System.nanoTime() + retryEvery.toNanos();
                boolean warned = false;
                while (true) {
                  synchronized (this) {
                    if (frozen.isEmpty()) {
                      break;
                    }
                  }
                  boolean ended = reapPending();
                  long now = System.nanoTime();
                  boolean failedOnly = pending().isEmpty() && !ended;
                  if (failedOnly && now - giveUp > 0) {
                    LOG.error(
                        "unable to thaw {} for {}: giving up; run 'fsfreeze -u' on them now",
                        tracked(),
                        retryFor);
                    return;
                  }
                  if (ended || now - next > 0) {
                    next = now + retryEvery.toNanos();
                    try {
                      thaw();
                    } catch (IOException e) {
                      if (!warned) {
                        LOG.warn("unable to thaw {} yet: {}", tracked(), e.toString());
                        warned = true;
                      }
                    }
                  }
                  try {
                    Thread.sleep(100);
                  } catch (InterruptedException e) {
                    return;
                  }
                }
                try {
                  Runtime.getRuntime().removeShutdownHook(shutdownHook);
                } catch (IllegalStateException shuttingDown) {
                  // the hook runs anyway
                }
              },
              "granule-thaw-retry");
      retrier.setDaemon(true);
      retrier.start();
    }

    /**
     * Waits up to {@link #stepLimit} for the fsfreeze runs given up on to end, thawing each mount
     * once its own has (on close, and at exit: a command ends with {@code halt}, and a process gone
     * leaves what is still under way to the next granule command).
     */
    private void awaitPending() {
      long deadline = System.nanoTime() + stepLimit.toNanos();
      while (!pending().isEmpty() && System.nanoTime() - deadline < 0) {
        if (reapPending()) {
          thawQuietly();
        } else {
          try {
            Thread.sleep(100);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            break;
          }
        }
      }
      if (!tracked().isEmpty()) {
        thawQuietly(); // after a thaw under way in the background, if one is
      }
    }

    private void awaitPendingAtExit() {
      awaitPending();
      List<Path> left = tracked();
      if (!left.isEmpty()) {
        LOG.error(
            "{} may still be frozen, or become frozen once an fsfreeze under way ends: the next"
                + " granule command thaws {} (records in {}); by hand: fsfreeze -u MOUNT",
            left,
            left.size() == 1 ? "it" : "them",
            records);
      }
    }

    @Override
    public void close() throws IOException {
      synchronized (this) {
        if (closed) {
          return;
        }
        closed = true;
      }
      if (watchdog != null) {
        watchdog.interrupt();
      }
      try {
        thaw();
      } finally {
        if (!pending().isEmpty()) {
          awaitPending();
        }
        List<Path> stillPending = pending();
        if (!stillPending.isEmpty()) {
          LOG.warn(
              "{}: an fsfreeze given up on is still under way: thawed as soon as it ends (by the"
                  + " next granule command if this process has ended by then)",
              stillPending);
        }
        releaseUntracked();
        if (tracked().isEmpty()) {
          try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
          } catch (IllegalStateException shuttingDown) {
            // the hook runs anyway
          }
        }
      }
    }
  }

  /** A freeze's time limit as a user gave it: "120 s", or "250 ms" when not in whole seconds. */
  static String limit(Duration d) {
    return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
  }
}
