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
 */
final class StartupWarmup {
  private static final Logger LOG = LoggerFactory.getLogger(StartupWarmup.class);

  private StartupWarmup() {}

  /** Starts the warm-up thread, unless {@code -Dgranule.startup.warmup=false}. */
  static void start() {
    if (!Boolean.parseBoolean(System.getProperty("granule.startup.warmup", "true"))) {
      return;
    }
    Thread t = new Thread(StartupWarmup::run, "granule-warmup");
    t.setDaemon(true);
    t.start();
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
