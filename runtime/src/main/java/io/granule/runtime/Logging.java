package io.granule.runtime;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Logging set-up: SLF4J with Logback on the launcher's class path, shared with every bundle.
 *
 * <p>The server logs INFO to the console and to {@code DATA/logs/granule.log} (rolled daily, 14
 * days kept). One-shot commands keep the console for their own output and print only warnings and
 * errors there; they also log INFO to the same file when the data directory exists. {@code
 * GRANULE_LOG_LEVEL} (ERROR, WARN, INFO, DEBUG, TRACE) changes the level of Granule's own loggers;
 * {@code -Dlogback.configurationFile=FILE} replaces the configuration entirely. The configuration
 * itself is built in code by {@link LogConfigurator}, which Logback finds as a service.
 */
final class Logging {
  private static final String SLF4J_PACKAGES =
      "org.slf4j,org.slf4j.event,org.slf4j.helpers,org.slf4j.spi";

  private Logging() {}

  static void configure(LaunchOptions options) {
    Path logDir = options.dataDir().resolve("logs");
    boolean toFile = options.server() || Files.isDirectory(options.dataDir());
    System.setProperty(LogConfigurator.DIR_PROPERTY, logDir.toString());
    String level = System.getenv("GRANULE_LOG_LEVEL");
    if (level != null && !level.isBlank()) {
      System.setProperty(
          LogConfigurator.LEVEL_PROPERTY, level.trim().toUpperCase(java.util.Locale.ROOT));
    }
    LogConfigurator.Mode mode;
    if (options.server()) {
      mode = LogConfigurator.Mode.SERVER;
    } else if (toFile) {
      mode = LogConfigurator.Mode.CLI;
    } else {
      mode = LogConfigurator.Mode.CONSOLE;
    }
    System.setProperty(LogConfigurator.MODE_PROPERTY, mode.name());
  }

  /**
   * Starts Logback's configuration on a thread of its own (set up by {@link #configure} first);
   * {@link #await} it before any logger is asked for: one asked for meanwhile would be SLF4J's
   * substitute, whose events are replayed with a notice on stderr.
   */
  static Thread initialize() {
    Thread t = new Thread(org.slf4j.LoggerFactory::getILoggerFactory, "granule-logging");
    t.setDaemon(true);
    t.start();
    return t;
  }

  /** Waits for {@link #initialize}'s thread {@code t} to end. */
  static void await(Thread t) {
    boolean interrupted = false;
    while (true) {
      try {
        t.join();
        break;
      } catch (InterruptedException e) {
        interrupted = true; // the configuration is short: finish waiting, keep the interrupt
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  /** The SLF4J packages the system bundle exports to bundles, with their version. */
  static String exportedPackages() {
    String version = BuildInfo.get("slf4j.version").replaceAll("[^0-9.].*$", "");
    StringBuilder sb = new StringBuilder();
    for (String p : SLF4J_PACKAGES.split(",")) {
      if (sb.length() > 0) {
        sb.append(',');
      }
      sb.append(p).append(";version=\"").append(version).append('"');
    }
    return sb.toString();
  }
}
