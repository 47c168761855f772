package io.granule.engine.internal.cli;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;

/**
 * A one-line progress display for long operations.
 *
 * <p>On a terminal the line is redrawn in place (carriage return) at most ten times a second; when
 * the output is not a terminal (a log, a pipe) a plain line is printed every {@code quietEvery}
 * instead, so logs stay readable. Thread-safe.
 */
public final class ProgressBar {
  private static final int WIDTH = 24;

  private final PrintWriter out;
  private final boolean terminal;
  private final long minIntervalNanos;
  private long lastDraw;
  private int lastLength;

  /**
   * @param out where to draw (standard error, so that standard output stays machine-readable)
   * @param terminal whether {@code out} is a terminal
   * @param quietEvery the interval between plain lines when not a terminal
   */
  public ProgressBar(PrintWriter out, boolean terminal, Duration quietEvery) {
    this.out = out;
    this.terminal = terminal;
    this.minIntervalNanos = terminal ? 100_000_000L : quietEvery.toNanos();
    // Off a terminal, a short operation prints no progress at all: the first line comes after
    // quietEvery.
    this.lastDraw = terminal ? 0 : System.nanoTime();
  }

  /** Whether standard output is an interactive terminal. */
  public static boolean isTerminal() {
    return System.console() != null;
  }

  /**
   * Draws the state if enough time has passed since the last draw.
   *
   * @param label what is being done, e.g. {@code backup vm.img}
   * @param done bytes processed
   * @param total bytes to process, or -1 if unknown
   * @param detail extra text, e.g. {@code new 1.2 GiB, dedup 4.1x}
   * @param rate bytes per second
   */
  public synchronized void update(String label, long done, long total, String detail, double rate) {
    draw(render(label, done, total, detail, rate, Sizes::human));
  }

  /**
   * Draws a count of things (files, packs) rather than bytes: {@code 9 / 23 files}.
   *
   * @param unit what is counted, plural
   */
  public synchronized void updateCount(
      String label, long done, long total, String unit, String detail) {
    draw(render(label, done, total, detail, 0, n -> n + (n == total ? " " + unit : "")));
  }

  private void draw(String line) {
    long now = System.nanoTime();
    if ((!terminal || lastDraw != 0) && now - lastDraw < minIntervalNanos) {
      return;
    }
    lastDraw = now;
    if (terminal) {
      StringBuilder sb = new StringBuilder("\r").append(line);
      for (int i = line.length(); i < lastLength; i++) {
        sb.append(' ');
      }
      lastLength = line.length();
      out.print(sb);
    } else {
      out.println(line);
    }
    out.flush();
  }

  /** Ends the display: clears the in-place line, so the caller's summary starts clean. */
  public synchronized void finish() {
    if (terminal && lastLength > 0) {
      out.print("\r" + " ".repeat(lastLength) + "\r");
      out.flush();
    }
    lastLength = 0;
  }

  static String render(String label, long done, long total, String detail, double rate) {
    return render(label, done, total, detail, rate, Sizes::human);
  }

  private static String render(
      String label,
      long done,
      long total,
      String detail,
      double rate,
      java.util.function.LongFunction<String> amount) {
    StringBuilder sb = new StringBuilder(label).append(' ');
    if (total > 0) {
      double f = Math.min(1.0, (double) done / total);
      int filled = (int) Math.round(f * WIDTH);
      sb.append('[')
          .append("#".repeat(filled))
          .append("-".repeat(WIDTH - filled))
          .append("] ")
          .append(String.format(Locale.ROOT, "%3.0f%% ", f * 100))
          .append(amount.apply(done))
          .append(" / ")
          .append(amount.apply(total));
    } else {
      sb.append(amount.apply(done));
    }
    if (detail != null && !detail.isEmpty()) {
      sb.append("  ").append(detail);
    }
    if (rate > 0) {
      sb.append("  ").append(Sizes.human((long) rate)).append("/s");
      if (total > 0 && done < total) {
        sb.append("  ETA ").append(eta((long) ((total - done) / rate)));
      }
    }
    return sb.toString();
  }

  static String eta(long seconds) {
    long h = seconds / 3600;
    long m = (seconds % 3600) / 60;
    long s = seconds % 60;
    return h > 0
        ? String.format(Locale.ROOT, "%d:%02d:%02d", h, m, s)
        : String.format(Locale.ROOT, "%d:%02d", m, s);
  }
}
