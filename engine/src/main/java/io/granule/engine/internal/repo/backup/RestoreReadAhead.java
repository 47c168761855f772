package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads the packs of a raw restore ahead of its writers, on a thread of its own, so that they find
 * their chunks' records in the page cache instead of each waiting for the disk. Without it, a
 * restore from a repository that is not cached (the usual case: restores come days after the
 * backup, and packs are written past the page cache) reads every chunk with a small read of its
 * own, one at a time per writer.
 *
 * <p>It looks at the chunks {@link #BATCH_BYTES} of disk at a time, from the writers' cursor on,
 * sorts their locations by pack and offset, merges records that are adjacent or close in a pack
 * into ranges of up to {@link #MAX_RANGE}, and asks the store to prefetch each range ({@link
 * SnapshotDisk#prefetch}: large sequential reads). It stays at most {@link #AHEAD_BYTES} of disk
 * ahead of the runs handed to the writers (bounded page cache use) and jumps forward if their reads
 * overtake it (a run is up to 16 MiB of disk, read chunk by chunk after it was handed out, so what
 * the writers have read, not what they were given, says what is too late to prefetch). A hint only:
 * errors are dropped, and the writers' own reads report them.
 */
final class RestoreReadAhead implements Runnable {
  private static final Logger LOG = LoggerFactory.getLogger(RestoreReadAhead.class);

  /** Disk bytes the read-ahead may be ahead of the writers' cursor. */
  static final long AHEAD_BYTES = 96L << 20;

  /** Disk bytes looked at in one step. */
  static final long BATCH_BYTES = 16L << 20;

  /** Bytes between two records of a pack that are read through rather than skipped. */
  static final long GAP = 256L << 10;

  /** Largest range prefetched at once. */
  static final long MAX_RANGE = 8L << 20;

  private final SnapshotDisk disk;
  private final int count;
  private final int ahead;
  private final int batch;
  private final Object lock;
  private final IntSupplier cursor;
  private final IntSupplier reading;
  private final IntPredicate fetched;
  // Guarded by lock.
  private boolean stopped;

  /**
   * A read-ahead of {@code disk}; {@code cursor} is the position of the next run to hand out, read
   * and advanced under {@code lock}, whose owner notifies it when the cursor moves; {@code reading}
   * is the lowest position a writer is still to read (at most the cursor); {@code fetched} says
   * whether the chunk at a position is fetched there (not copied from another place).
   */
  RestoreReadAhead(
      SnapshotDisk disk,
      Object lock,
      IntSupplier cursor,
      IntSupplier reading,
      IntPredicate fetched) {
    this.disk = disk;
    this.count = disk.fixedIndex().count();
    int chunk = disk.fixedIndex().chunkSize();
    this.ahead = (int) Math.max(1, AHEAD_BYTES / chunk);
    this.batch = (int) Math.max(1, Math.min(ahead, BATCH_BYTES / chunk));
    this.lock = lock;
    this.cursor = cursor;
    this.reading = reading;
    this.fetched = fetched;
  }

  /** Stops the read-ahead after its current range. */
  void stop() {
    synchronized (lock) {
      stopped = true;
      lock.notifyAll();
    }
  }

  @Override
  public void run() {
    try {
      int pos = 0;
      while (true) {
        synchronized (lock) {
          while (!stopped && pos < count && pos >= cursor.getAsInt() + ahead) {
            lock.wait();
          }
          if (stopped || pos >= count) {
            return;
          }
          pos = Math.max(pos, reading.getAsInt());
        }
        int end = (int) Math.min(count, (long) pos + batch);
        fetch(pos, end);
        pos = end;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      LOG.debug("restore read-ahead stopped: {}", e.toString());
    }
  }

  /** Prefetches the records of the chunks at positions {@code [from, to)}. */
  private void fetch(int from, int to) {
    List<ChunkLocation> locations = new ArrayList<>(to - from);
    for (int p = from; p < to; p++) {
      ChunkLocation loc = fetched.test(p) ? disk.location(p) : null;
      if (loc != null) {
        locations.add(loc);
      }
    }
    for (Range r : ranges(locations)) {
      synchronized (lock) {
        if (stopped) {
          return;
        }
      }
      disk.prefetch(r.pack(), r.offset(), r.length(), r.useful());
    }
  }

  /** A range of one pack to prefetch, {@code useful} bytes of it the records' (gaps aside). */
  record Range(PackId pack, long offset, long length, long useful) {}

  /**
   * The ranges that cover {@code locations}: by pack and offset, records at most {@link #GAP} apart
   * merged, each range at most {@link #MAX_RANGE} long (a record longer than that is a range of its
   * own).
   */
  static List<Range> ranges(List<ChunkLocation> locations) {
    List<ChunkLocation> sorted = new ArrayList<>(locations);
    sorted.sort(
        Comparator.comparingLong((ChunkLocation l) -> l.pack().hi())
            .thenComparingLong(l -> l.pack().lo())
            .thenComparingLong(ChunkLocation::offset));
    List<Range> out = new ArrayList<>();
    PackId pack = null;
    long start = 0;
    long end = 0;
    long useful = 0;
    for (ChunkLocation l : sorted) {
      long lEnd = l.offset() + l.storedLength();
      if (pack != null
          && l.pack().equals(pack)
          && l.offset() <= end + GAP
          && Math.max(end, lEnd) - start <= MAX_RANGE) {
        end = Math.max(end, lEnd);
        useful += l.storedLength(); // a chunk at two places of the disk is loaded twice
        continue;
      }
      if (pack != null) {
        out.add(new Range(pack, start, end - start, useful));
      }
      pack = l.pack();
      start = l.offset();
      end = lEnd;
      useful = l.storedLength();
    }
    if (pack != null) {
      out.add(new Range(pack, start, end - start, useful));
    }
    return out;
  }
}
