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
        hold.freeze(m);
        LOG.info("froze {}", m);
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

  static void run(String flag, Path mount) throws IOException {
    Process p =
        new ProcessBuilder("fsfreeze", flag, mount.toString()).redirectErrorStream(true).start();
    String out;
    try {
      out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("fsfreeze " + flag + " " + mount + " did not finish in 30 s");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while running fsfreeze " + flag + " " + mount, e);
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

    synchronized void freeze(Path m) throws IOException {
      Files.createDirectories(RECORDS);
      Path record = record(m);
      Files.writeString(record, ProcessHandle.current().pid() + "\n" + m + "\n");
      try {
        run("-f", m);
      } catch (IOException e) {
        Files.deleteIfExists(record);
        throw e;
      }
      frozen.add(m);
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

    private void thaw() throws IOException {
      List<Path> thawed = new ArrayList<>();
      IOException first = null;
      synchronized (this) {
        for (int i = frozen.size() - 1; i >= 0; i--) {
          Path m = frozen.get(i);
          try {
            run("-u", m);
            Files.deleteIfExists(record(m));
            thawed.add(m);
            frozen.remove(i);
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
