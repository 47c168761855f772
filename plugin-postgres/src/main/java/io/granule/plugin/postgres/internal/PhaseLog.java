package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationPlugin.RestoreProgress;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/** Times the phases of a restore and tells the engine as each starts. Not thread-safe. */
final class PhaseLog {
  private final RestoreProgress progress;
  private final Map<String, Duration> phases = new LinkedHashMap<>();
  private String current;
  private long startNanos;

  PhaseLog(RestoreProgress progress) {
    this.progress = progress == null ? (p, d) -> {} : progress;
  }

  /** Ends the running phase (if any) and starts {@code phase}. */
  void begin(String phase, String detail) {
    end();
    current = phase;
    startNanos = System.nanoTime();
    progress.phase(phase, detail == null ? "" : detail);
  }

  /** Ends the running phase, recording its duration. */
  void end() {
    if (current != null) {
      phases.merge(current, Duration.ofNanos(System.nanoTime() - startNanos), Duration::plus);
      current = null;
    }
  }

  Map<String, Duration> phases() {
    return phases;
  }
}
