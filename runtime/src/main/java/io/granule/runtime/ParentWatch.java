package io.granule.runtime;

import java.util.Optional;

/**
 * Stops this JVM as a SIGTERM does when the launcher script that waits for it has ended first. The
 * script runs java as its child (not exec'd) only on a run that writes a class-data-sharing archive
 * at exit, which it then publishes; it passes on SIGTERM, SIGINT and SIGHUP, but a SIGKILL of the
 * script's pid (a {@code kill -9 $!}) cannot be passed on, and left java running the command
 * (holding its repository lock) with no one to wait for it (audit K7). The script names itself in
 * {@code -Dgranule.launcher.pid}; without that property nothing is watched.
 */
final class ParentWatch {
  /** How often the parent is looked at. */
  static final long PERIOD_MS = 250;

  /** The exit code of a JVM stopped by SIGTERM (128 + 15), which this stop is. */
  static final int SIGTERM_EXIT = 143;

  private ParentWatch() {}

  /**
   * Starts watching, if the launcher named itself and is this process's parent now; returns the
   * daemon thread, or null.
   */
  static Thread start() {
    Long launcher = launcherPid(System.getProperty("granule.launcher.pid"));
    if (launcher == null) {
      return null; // not started by a waiting launcher
    }
    if (!isParent(launcher, ProcessHandle.current().parent())) {
      // Not the parent already at start: gone in the moment before (rare), or a /proc that is not
      // this pid namespace's, where no parent can be told (audit M4: every dump run stopped at
      // once, 143, and no archive was ever published). Nothing is watched.
      return null;
    }
    Thread t =
        new Thread(
            () -> {
              try {
                while (isParent(launcher, ProcessHandle.current().parent())) {
                  Thread.sleep(PERIOD_MS);
                }
              } catch (InterruptedException e) {
                return;
              }
              // what the JVM's own SIGTERM handler does: the shutdown hooks stop the command
              System.exit(SIGTERM_EXIT);
            },
            "granule-parent-watch");
    t.setDaemon(true);
    t.start();
    return t;
  }

  /** The pid {@code value} names, or null if it names none. */
  static Long launcherPid(String value) {
    if (value == null || !value.matches("[1-9][0-9]{0,9}")) {
      return null;
    }
    return Long.valueOf(value);
  }

  /** Whether {@code parent} is the process {@code pid}. */
  static boolean isParent(long pid, Optional<ProcessHandle> parent) {
    return parent.isPresent() && parent.get().pid() == pid;
  }
}
