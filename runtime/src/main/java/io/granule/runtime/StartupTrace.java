package io.granule.runtime;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Start-up phase timings, printed to stderr when the system property {@code granule.startup.trace}
 * is set ({@code GRANULE_JAVA_OPTS=-Dgranule.startup.trace bin/granule --version}): wall-clock time
 * and the launcher thread's CPU time per phase (Linux: from {@code /proc}), then the CPU time of
 * the whole process, JIT and GC threads included.
 */
final class StartupTrace {
  private static final boolean ENABLED = System.getProperty("granule.startup.trace") != null;
  private static final long T0 = System.nanoTime();
  private static final StringBuilder LINES = new StringBuilder();
  private static long lastWall = T0;
  private static long lastCpu = ENABLED ? threadCpu() : 0;
  private static final StringBuilder DETAILS = new StringBuilder();
  private static long lastDetailWall = T0;
  private static long lastDetailCpu = lastCpu;

  private StartupTrace() {}

  /** Starts the clock (the first phase is measured from here). */
  static void begin() {
    // loading this class did it
  }

  /** Records the end of a phase. */
  static void mark(String phase) {
    if (!ENABLED) {
      return;
    }
    long now = System.nanoTime();
    long cpu = threadCpu();
    LINES.append(line(String.format(Locale.ROOT, "%-18s", phase), now - lastWall, cpu - lastCpu));
    LINES.append(String.format(Locale.ROOT, "  (at %6.1f ms)%n", (now - T0) / 1e6));
    LINES.append(DETAILS);
    DETAILS.setLength(0);
    lastWall = lastDetailWall = now;
    lastCpu = lastDetailCpu = cpu;
  }

  /**
   * Records the end of a step inside the current phase (a bundle's start), indented, without ending
   * the phase: the phase's own line still covers all its steps.
   */
  static void detail(String step) {
    if (!ENABLED) {
      return;
    }
    long now = System.nanoTime();
    long cpu = threadCpu();
    DETAILS.append(
        line(
            String.format(Locale.ROOT, "  %-32.32s", step),
            now - lastDetailWall,
            cpu - lastDetailCpu));
    DETAILS.append(System.lineSeparator());
    lastDetailWall = now;
    lastDetailCpu = cpu;
  }

  private static String line(String label, long wallNanos, long cpuNanos) {
    return String.format(
        Locale.ROOT,
        "granule: startup %s wall %6.1f ms  cpu %6.1f ms",
        label,
        wallNanos / 1e6,
        cpuNanos / 1e6);
  }

  /** Prints what was recorded, with the CPU time of all the process's threads. */
  static void print() {
    if (!ENABLED) {
      return;
    }
    long sinceFirstMark = (System.nanoTime() - T0) / 1_000_000;
    // read last: java.lang.management loads many classes
    long uptime = java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime();
    System.err.printf(
        Locale.ROOT,
        "granule: startup %-18s wall %6d ms%n",
        "before launcher",
        uptime - sinceFirstMark);
    System.err.print(LINES);
    System.err.printf(
        Locale.ROOT, "granule: startup process cpu %.1f ms so far%n", processCpu() / 1e6);
  }

  private static long threadCpu() {
    return schedstat(Path.of("/proc/thread-self/schedstat"));
  }

  private static long processCpu() {
    long sum = 0;
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
      for (Path t : ds) {
        sum += schedstat(t.resolve("schedstat"));
      }
    } catch (IOException | RuntimeException e) {
      return -1;
    }
    return sum;
  }

  /** The first field of a schedstat file: nanoseconds on a CPU. */
  private static long schedstat(Path file) {
    try {
      String s = Files.readString(file, StandardCharsets.US_ASCII).trim();
      return Long.parseLong(s.substring(0, s.indexOf(' ')));
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }
}
