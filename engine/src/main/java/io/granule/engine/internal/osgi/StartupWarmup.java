package io.granule.engine.internal.osgi;

import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.crypto.NativeCrypto;
import io.granule.engine.internal.repo.lock.LockInfo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Does, on a background thread while the launcher is still starting the other bundles, the work
 * that every repository command's main thread would otherwise do first, one core of two idle
 * meanwhile: Jackson's first mapper and the introspection of the config and lock records (about 0.1
 * s of CPU in a one-shot JVM), and the binding of libcrypto and BLAKE3's self-test. Nothing it does
 * has an effect but warmer classes: the command runs the same with or without it, and a failure
 * here is only logged. One-shot commands only (the server has time).
 *
 * <p>A quick command ({@code plugins}, {@code snapshots}) can end before the thread has: the
 * component waits for it when it is deactivated ({@link #await}), before the framework closes the
 * engine bundle's jar. Stopped under it, the thread's loading of libgranule-native from that jar
 * failed, and Felix printed an ERROR and a stack trace after the command's own output, with a
 * warning that native crypto was unavailable (about one quick command in eight).
 */
final class StartupWarmup {
  private static final Logger LOG = LoggerFactory.getLogger(StartupWarmup.class);

  private StartupWarmup() {}

  /** The longest {@link #await} waits: the warm-up takes about 0.1 s. */
  private static final long AWAIT_MS = 5_000;

  /**
   * Starts the warm-up thread, unless {@code -Dgranule.startup.warmup=false}; returns it, or null.
   */
  static Thread start() {
    if (!Boolean.parseBoolean(System.getProperty("granule.startup.warmup", "true"))) {
      return null;
    }
    Thread t = new Thread(StartupWarmup::run, "granule-warmup");
    t.setDaemon(true);
    t.start();
    return t;
  }

  /** Waits (a bounded time) for the warm-up thread {@code t} (null: none) to end. */
  static void await(Thread t) {
    if (t == null) {
      return;
    }
    try {
      t.join(AWAIT_MS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void run() {
    try {
      RepositoryConfig.warmUp();
      LockInfo.warmUp();
      NativeCrypto.available();
      NativeCrypto.blake3Available();
    } catch (RuntimeException | LinkageError e) {
      LOG.debug("start-up warm-up failed (harmless): {}", e.toString());
    }
  }
}
