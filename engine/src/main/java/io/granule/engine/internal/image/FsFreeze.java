package io.granule.engine.internal.image;

import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
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
 * Ctrl-C). A process killed with SIGKILL cannot thaw: each frozen mount is recorded in {@code
 * /run/granule/frozen/} with the freezing process id, and the next granule command thaws mounts
 * whose freezer is gone ({@link #thawStale}). By hand: {@code fsfreeze -u MOUNT}.
 */
@Component(service = SnapshotProvider.class)
public final class FsFreeze implements SnapshotProvider {
  public static final String NAME = "fsfreeze";
  static final Path RECORDS = Path.of("/run/granule/frozen");
  private static final Logger LOG = LoggerFactory.getLogger(FsFreeze.class);

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Hold begin(List<Path> targets, Duration maxHold) throws IOException {
    thawStale();
    List<Path> mounts = new ArrayList<>();
    for (Path t : targets) {
      Path m = t.toAbsolutePath().normalize();
      if (m.getNameCount() == 0) {
        throw new IOException("refusing to freeze '/': it would hang this machine");
      }
      if (!Files.isDirectory(m)) {
        throw new IOException("unable to freeze '" + t + "': not a directory (name a mount point)");
      }
      mounts.add(m);
    }
    FrozenHold hold = new FrozenHold(mounts, maxHold);
    // The limit counts from the first freeze, and its thaw comes before anything is logged: a
    // write to a frozen filesystem (a log, a temporary file) blocks until the thaw.
    hold.startWatchdog();
    try {
      for (Path m : mounts) {
        LOG.info("freezing {}", m); // before: a log on a frozen filesystem would block
        hold.freeze(m);
      }
    } catch (IOException | RuntimeException e) {
      hold.close();
      throw e;
    }
    return hold;
  }

  /** Thaws mounts frozen by granule processes that no longer exist (killed with SIGKILL). */
  public static void thawStale() {
    if (!Files.isDirectory(RECORDS)) {
      return;
    }
    try (var records = Files.list(RECORDS)) {
      for (Path r : records.toList()) {
        try {
          List<String> lines = Files.readAllLines(r, StandardCharsets.UTF_8);
          long pid = Long.parseLong(lines.get(0).trim());
          Path mount = Path.of(lines.get(1).trim());
          if (ProcessHandle.of(pid).isEmpty()) {
            LOG.warn("thawing {}: frozen by granule process {}, which is gone", mount, pid);
            run("-u", mount);
            Files.deleteIfExists(r);
          }
        } catch (IOException | RuntimeException e) {
          LOG.warn("unable to check freeze record {}: {}", r, e.toString());
        }
      }
    } catch (IOException e) {
      LOG.warn("unable to list {}: {}", RECORDS, e.toString());
    }
  }

  /** How long one fsfreeze may take before it is given up on. */
  static final Duration STEP_LIMIT = Duration.ofSeconds(30);

  /** fsfreeze did not finish within {@link #STEP_LIMIT}: it may still take effect later. */
  static final class StuckException extends IOException {
    private static final long serialVersionUID = 1L;

    StuckException(String message) {
      super(message);
    }
  }

  /**
   * Runs {@code fsfreeze FLAG MOUNT}, waiting at most {@link #STEP_LIMIT}, whatever interrupts the
   * thread meanwhile (a cancel): a thaw given up half way left a filesystem frozen, and a freeze
   * given up may still take effect. The interrupt is kept for the caller.
   *
   * @throws StuckException if it did not finish in time (it may still take effect)
   */
  static void run(String flag, Path mount) throws IOException {
    Process p =
        new ProcessBuilder("fsfreeze", flag, mount.toString()).redirectErrorStream(true).start();
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
    long deadline = System.nanoTime() + STEP_LIMIT.toNanos();
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
      p.destroyForcibly(); // in the kernel it may not die: its effect may still come
      throw new StuckException(
          "fsfreeze "
              + flag
              + " "
              + mount
              + " did not finish in "
              + STEP_LIMIT.toSeconds()
              + " s (a filesystem it needs is frozen, or its device hangs)");
    }
    try {
      reader.join(1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    String out;
    synchronized (buf) {
      out = buf.toString(StandardCharsets.UTF_8).trim();
    }
    if (p.exitValue() != 0) {
      // Thawing a filesystem that is not frozen is harmless: fsfreeze says EINVAL.
      if (flag.equals("-u") && out.contains("Invalid argument")) {
        return;
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
  }

  /** Frozen mounts, thawed exactly once. */
  static final class FrozenHold implements Hold {
    private final List<Path> mounts;
    private final List<Path> frozen = new ArrayList<>();
    private final List<Path> freezing = new ArrayList<>(); // fsfreeze -f under way
    private final List<Path> stuck = new ArrayList<>(); // fsfreeze -f given up on
    private boolean thawing; // a thaw was asked for: a freeze finishing now thaws again
    private final Duration maxHold;
    private final Thread shutdownHook;
    private Thread watchdog;
    private volatile boolean expired;
    private volatile boolean thawedAtExit;
    private boolean closed;

    FrozenHold(List<Path> mounts, Duration maxHold) {
      this.mounts = mounts;
      this.maxHold = maxHold;
      this.shutdownHook =
          new Thread(
              () -> {
                // the process is stopping: whatever reads on (a server lets running jobs finish)
                // must not save a snapshot as frozen
                thawedAtExit = true;
                thawQuietly();
              },
              "granule-thaw-on-exit");
      Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /**
     * Freezes {@code m}. It counts as frozen from before fsfreeze runs (thawing what is not frozen
     * is harmless), and fsfreeze runs outside this hold's monitor: a freeze that hangs (a
     * filesystem inside an image on one frozen already) no longer kept the watchdog, the exit hook
     * and the thaw waiting on it, and one given up on may still take effect, so it stays to thaw.
     */
    void freeze(Path m) throws IOException {
      Path record = record(m);
      synchronized (this) {
        Files.createDirectories(RECORDS);
        Files.writeString(record, ProcessHandle.current().pid() + "\n" + m + "\n");
        frozen.add(m);
        freezing.add(m);
      }
      boolean thawNow;
      try {
        run("-f", m);
      } catch (StuckException e) {
        synchronized (this) {
          freezing.remove(m);
          stuck.add(m); // its record outlives a thaw: the next granule command thaws it again
        }
        throw e;
      } catch (IOException e) {
        synchronized (this) { // refused outright: nothing to thaw
          freezing.remove(m);
          frozen.remove(m);
          Files.deleteIfExists(record);
        }
        throw e;
      } finally {
        synchronized (this) {
          freezing.remove(m);
          thawNow = thawing && frozen.contains(m);
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
        LOG.error("unable to thaw {}: {}; run 'fsfreeze -u' on them now", frozen, e.toString());
      }
    }

    /**
     * Thaws every mount frozen (or being frozen), last first, outside this hold's monitor (a thaw
     * may wait for a hung freeze); one that fails is tried again once the others are thawed (a
     * filesystem inside an image on another thaws once that other does).
     */
    private void thaw() throws IOException {
      List<Path> thawed = new ArrayList<>();
      IOException first = null;
      synchronized (this) {
        thawing = true;
      }
      for (int pass = 0; pass < 2; pass++) {
        List<Path> todo;
        synchronized (this) {
          todo = new ArrayList<>(frozen);
          if (pass == 0) {
            // first those whose freeze went through: a freeze still hanging (or given up on)
            // usually waits for one of them, and a thaw of it would wait as long
            todo.removeAll(freezing);
            todo.removeAll(stuck);
          }
        }
        if (todo.isEmpty()) {
          continue;
        }
        first = null;
        for (int i = todo.size() - 1; i >= 0; i--) {
          Path m = todo.get(i);
          try {
            run("-u", m);
            synchronized (this) {
              if (freezing.contains(m)) {
                continue; // its freeze, once it returns, thaws it again
              }
              frozen.remove(m);
              if (!stuck.contains(m)) {
                Files.deleteIfExists(record(m));
              }
            }
            thawed.add(m);
          } catch (IOException e) {
            if (first == null) {
              first = e;
            }
          }
        }
      }
      thawed.forEach(m -> LOG.info("thawed {}", m)); // when all are thawed: a log may be on one
      if (first != null) {
        throw first;
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
        try {
          Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shuttingDown) {
          // the hook runs anyway
        }
      }
    }

    private static Path record(Path mount) {
      String name = Integer.toHexString(mount.toString().hashCode()) + ".frozen";
      return RECORDS.resolve(name);
    }
  }

  /** A freeze's time limit as a user gave it: "120 s", or "250 ms" when not in whole seconds. */
  static String limit(Duration d) {
    return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
  }
}
