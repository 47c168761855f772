package io.granule.engine.internal.repo.backup;

import java.time.Duration;
import java.util.List;

/**
 * A progress report of a running backup. Byte counts are cumulative over all disks and streams.
 *
 * @param disk name of the disk or stream being read
 * @param bytesTotal logical bytes of all disks (streams have no known size)
 * @param bytesRead logical bytes processed (read, or skipped as unallocated)
 * @param bytesNew bytes stored for new chunks (after compression)
 * @param bytesDeduplicated logical bytes of chunks that were already stored
 * @param bytesZero logical bytes of zero or unallocated chunks (never stored)
 * @param bytesUnchanged logical bytes not read because changed-block tracking showed them unchanged
 *     since the parent snapshot (their chunk ids are the parent's)
 * @param elapsed time since the backup started
 * @param done whether this is the final report
 * @param entries the same counts per disk and stream, in request order
 */
public record BackupProgress(
    String disk,
    long bytesTotal,
    long bytesRead,
    long bytesNew,
    long bytesDeduplicated,
    long bytesZero,
    long bytesUnchanged,
    Duration elapsed,
    boolean done,
    List<EntryProgress> entries) {

  public BackupProgress {
    entries = List.copyOf(entries);
  }

  /**
   * Progress of one disk or stream.
   *
   * @param name its name
   * @param size its size, or -1 for a stream
   * @param bytesRead logical bytes processed
   * @param bytesNew bytes stored for its new chunks (after compression)
   */
  public record EntryProgress(String name, long size, long bytesRead, long bytesNew) {}

  /** Logical bytes read per stored byte ({@code bytesRead / bytesNew}); 0 before anything. */
  public double dedupRatio() {
    return bytesNew == 0 ? 0 : (double) bytesRead / bytesNew;
  }

  /** Logical bytes per second. */
  public double rate() {
    double s = elapsed.toNanos() / 1e9;
    return s <= 0 ? 0 : bytesRead / s;
  }

  /** Estimated time left at the current rate, or null before the rate is known. */
  public Duration eta() {
    double r = rate();
    return r <= 0 ? null : Duration.ofMillis((long) ((bytesTotal - bytesRead) / r * 1000));
  }
}
