package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.WorkerFailures;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.repo.store.ChunkReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One disk restore (see {@link DiskRestorer}): worker threads take runs of adjacent chunks of one
 * kind in disk order, and each fetches, checks and decompresses its run into its own aligned buffer
 * and writes it at its offset, while a {@link RestoreReadAhead} reads their packs ahead of them.
 *
 * <p>An {@link RunTarget#ordered() ordered} target (an image file written by a format plugin) takes
 * the runs in disk order, one at a time, on the thread that called {@link #run}: each worker hands
 * its decoded run over and waits until that thread has written it, while the other workers decode
 * the next runs. A chunk at several places is then kept for its next place by a {@link
 * DuplicateCache} ({@link #DUPLICATE_BYTES} of them), fetched again where it was not kept.
 *
 * <p>A chunk at several places of the disk is fetched once, at its first place: the writer of that
 * run also writes it at the others ({@link FixedIndex#nextSame}), which no run covers (copies of
 * adjacent chunks to adjacent places in one write). The data comes from the checked buffer, so a
 * copy is as verified as the chunk; a VM image's duplicated files and the bench image's duplicated
 * regions are fetched, decrypted and checked once instead of at each place. Workers are never
 * interrupted: an interrupt closes a {@code FileChannel} for every thread. They stop at the first
 * failure, after their current run; the failure at the lowest offset is the one thrown.
 */
final class RunRestore {
  private final SnapshotDisk disk;
  private final FixedIndex fixed;
  private final RunTarget out;
  private final boolean ordered;
  private final boolean fresh;
  private final int threads;
  private final RestoreListener listener;

  /** Bytes of the disk restored: written, copied, or left as holes. */
  private final AtomicLong done = new AtomicLong();

  // The largest value reported: reports never go backwards, whichever writer sends them first.
  private final Object reportLock = new Object();
  private long reported;

  /** Chunks per run at most. */
  private final int perRun;

  /** Per position, the next place of the same chunk, or -1; null when copies are off. */
  private final FixedIndex.NextSame nextSame;

  /** The table behind {@link #nextSame} and {@link #duplicates}, closed at the end; or null. */
  private final FixedIndex.NextSame same;

  /**
   * Ordered target: decoded chunks kept for their next place (at each place otherwise fetched
   * again); null when copies are off or the target is not ordered.
   */
  private final DuplicateCache duplicates;

  /**
   * Bytes of decoded chunks an ordered restore keeps for their next place ({@code
   * -Dgranule.restore.duplicate-mib}, default 32: 64 chunks of 512 KiB, 8 of 4 MiB; 0 turns it
   * off). Bytes, not chunks: direct memory is shared with the runs and the read-ahead.
   */
  static final long DUPLICATE_BYTES =
      Math.max(0, Long.getLong("granule.restore.duplicate-mib", 32)) << 20;

  /** Positions written as copies of an earlier place of their chunk; empty when copies are off. */
  private final BitSet copies = new BitSet();

  private final Object lock = new Object();
  // Guarded by lock.
  private int cursor;
  // Runs handed out, and (ordered target) runs written: the next one to write is run `written`.
  private int assigned;
  private int written;
  // Ordered target: decoded runs waiting for their turn, by number (at most one per worker).
  private final Map<Integer, Decoded> decoded = new HashMap<>();
  private long zeroChunks;
  private int failedAt = Integer.MAX_VALUE;
  private Throwable failure;
  private ByteBuffer zeros;

  private volatile boolean stop;

  /** Per writer: the position of the next chunk it reads, or MAX_VALUE between runs. */
  private final AtomicIntegerArray reading;

  private final AtomicInteger workerIds = new AtomicInteger();

  /** Run number {@code seq}: {@code count} chunks from {@code start}, all zero or all data. */
  private record Run(int seq, int start, int count, boolean zero) {}

  /**
   * A decoded run of an ordered target, its bytes in {@code data}, to be written at {@code offset}.
   */
  private record Decoded(Run run, ByteBuffer data, long offset) {}

  /**
   * Whether packs are read ahead of the writers ({@code -Dgranule.restore.readahead=false}: no).
   */
  static final boolean READ_AHEAD =
      !"false".equals(System.getProperty("granule.restore.readahead"));

  /**
   * Whether a chunk at several places is fetched once and copied ({@code
   * -Dgranule.restore.copies=false}: fetched at each place, for measurements).
   */
  static final boolean COPIES = !"false".equals(System.getProperty("granule.restore.copies"));

  RunRestore(
      SnapshotDisk disk, RunTarget out, boolean fresh, int threads, RestoreListener listener) {
    this.disk = disk;
    this.fixed = disk.fixedIndex();
    this.out = out;
    this.ordered = out.ordered();
    this.fresh = fresh;
    this.threads = threads;
    this.listener = listener;
    this.perRun = Math.max(1, DiskRestorer.MAX_WRITE / fixed.chunkSize());
    FixedIndex.NextSame same = COPIES ? fixed.nextSame() : null;
    this.same = same;
    this.nextSame = ordered ? null : same;
    this.duplicates =
        ordered && same != null && DUPLICATE_BYTES >= fixed.chunkSize()
            ? new DuplicateCache(
                same, (int) Math.min(4096, DUPLICATE_BYTES / fixed.chunkSize()), fixed.chunkSize())
            : null;
    if (nextSame != null) {
      try {
        for (int p = 0; p < nextSame.count(); p++) {
          int q = nextSame.get(p);
          if (q >= 0) {
            copies.set(q);
          }
        }
      } catch (RuntimeException e) {
        same.close();
        throw e;
      }
    }
    this.reading = new AtomicIntegerArray(Math.max(1, threads));
    for (int i = 0; i < reading.length(); i++) {
      reading.set(i, Integer.MAX_VALUE);
    }
  }

  /**
   * Writes every run and returns the number of zero chunks.
   *
   * @throws IOException if a write failed
   */
  long run() throws IOException {
    try {
      return runAll();
    } finally {
      if (same != null) {
        same.close(); // a large disk's temporary file
      }
    }
  }

  private long runAll() throws IOException {
    reserve();
    int n = (int) Math.max(1, Math.min(threads, fixed.count()));
    ExecutorService pool =
        Executors.newFixedThreadPool(
            n,
            r -> {
              Thread t = new Thread(r, "granule-restore-write");
              t.setDaemon(true);
              return t;
            });
    boolean interrupted = false;
    RestoreReadAhead readAhead = null;
    Thread readAheadThread = null;
    if (READ_AHEAD) {
      readAhead =
          new RestoreReadAhead(disk, lock, () -> cursor, this::lowestUnread, p -> !copies.get(p));
      readAheadThread = new Thread(readAhead, "granule-restore-readahead");
      readAheadThread.setDaemon(true);
      readAheadThread.start();
    }
    try {
      List<Future<?>> workers = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        workers.add(pool.submit(this::work));
      }
      if (ordered) {
        interrupted |= writeInOrder();
      }
      for (Future<?> f : workers) {
        while (true) {
          try {
            f.get();
            break;
          } catch (InterruptedException e) {
            // Stop taking runs, and wait for the runs being written: never leave a writer behind.
            interrupted = true;
            stop = true;
          } catch (ExecutionException e) {
            fail(Integer.MAX_VALUE, e.getCause());
            break;
          }
        }
      }
    } finally {
      pool.shutdown();
      if (readAhead != null) {
        readAhead.stop();
        // a hint may be waiting for the store's room (PrefetchingBlobStore): none is needed now
        readAheadThread.interrupt();
        interrupted |= join(readAheadThread);
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
    synchronized (lock) {
      WorkerFailures.rethrow(failure, "restore");
      if (interrupted) {
        throw new RepositoryException("restore interrupted");
      }
      report(done.get()); // the whole disk: holes at its end are counted after the last write
      return zeroChunks;
    }
  }

  /**
   * Allocates what will be written before any write ({@link RawTarget#reserve}): the whole disk, or
   * in a new file only its chunks that are not zero (holes stay holes).
   */
  private void reserve() throws IOException {
    long size = fixed.diskSize();
    if (!fresh) {
      out.reserve(new long[] {0}, new long[] {size}, size > 0 ? 1 : 0);
      return;
    }
    long[] starts = new long[16];
    long[] ends = new long[16];
    int n = 0;
    int chunk = fixed.chunkSize();
    for (int p = 0; p < fixed.count(); p++) {
      if (fixed.get(p).isZero()) {
        continue;
      }
      long from = (long) p * chunk;
      long to = Math.min(size, from + chunk);
      if (n > 0 && ends[n - 1] == from) {
        ends[n - 1] = to;
        continue;
      }
      if (n == starts.length) {
        starts = Arrays.copyOf(starts, n * 2);
        ends = Arrays.copyOf(ends, n * 2);
      }
      starts[n] = from;
      ends[n++] = to;
    }
    out.reserve(starts, ends, n);
  }

  /** The lowest position a writer has still to read: called under {@link #lock}. */
  private int lowestUnread() {
    int low = cursor;
    for (int i = 0; i < reading.length(); i++) {
      low = Math.min(low, reading.get(i));
    }
    return low;
  }

  private void work() {
    int id = workerIds.getAndIncrement();
    ByteBuffer buf = null;
    try (ChunkReader.Decoder decoder = disk.decoder()) {
      Run r;
      while ((r = next(id)) != null) {
        try {
          long offset = (long) r.start() * fixed.chunkSize();
          int length =
              (int)
                  (Math.min(fixed.diskSize(), offset + (long) r.count() * fixed.chunkSize())
                      - offset);
          ByteBuffer src;
          if (r.zero()) {
            src = zeros().duplicate().limit(length);
          } else {
            if (buf == null) {
              buf = out.allocate(perRun * fixed.chunkSize());
            }
            buf.clear();
            for (int p = r.start(); p < r.start() + r.count(); p++) {
              reading.set(id, p);
              if (duplicates == null) {
                disk.readChunk(p, buf, decoder);
                continue;
              }
              ChunkId chunk = fixed.get(p);
              if (!duplicates.take(chunk, p, buf)) {
                int at = buf.position();
                disk.readChunk(p, buf, decoder);
                duplicates.offer(chunk, p, buf, at, buf.position() - at);
              }
            }
            reading.set(id, Integer.MAX_VALUE);
            src = buf.flip();
          }
          if (ordered) {
            if (!handOver(new Decoded(r, src, offset))) {
              return;
            }
            continue;
          }
          out.write(src, offset);
          long copied = !r.zero() && nextSame != null ? writeCopies(r, buf) : 0;
          report(done.addAndGet(length + copied));
        } catch (IOException | RuntimeException | Error e) {
          fail(r.start(), e);
          return;
        }
      }
    }
  }

  /**
   * Ordered target: hands decoded run {@code d} to the thread that writes, and waits until it has
   * been written (its buffer is free again). Returns false if the restore stops first.
   */
  private boolean handOver(Decoded d) {
    synchronized (lock) {
      decoded.put(d.run().seq(), d);
      lock.notifyAll();
      while (!stop && written <= d.run().seq()) {
        try {
          lock.wait();
        } catch (InterruptedException e) {
          // Workers are not interrupted (see above); if one is, the restore stops.
          fail(d.run().start(), e);
          Thread.currentThread().interrupt();
          return false;
        }
      }
      return !stop;
    }
  }

  /**
   * Ordered target: writes the decoded runs in order, on this thread, until every run is written or
   * the restore stops. Returns whether this thread was interrupted (the restore then stops).
   */
  private boolean writeInOrder() {
    while (true) {
      Decoded d;
      synchronized (lock) {
        while (!stop
            && !decoded.containsKey(written)
            && !(cursor >= fixed.count() && written == assigned)) {
          try {
            lock.wait();
          } catch (InterruptedException e) {
            stop = true;
            lock.notifyAll();
            return true;
          }
        }
        d = stop ? null : decoded.remove(written);
      }
      if (d == null) {
        return false; // stopped, or all written
      }
      int length = d.data().remaining();
      try {
        out.write(d.data(), d.offset());
      } catch (IOException | RuntimeException | Error e) {
        fail(d.run().start(), e);
        return false;
      }
      synchronized (lock) {
        written++;
        lock.notifyAll();
      }
      done.addAndGet(length);
      report(d.offset() + length); // the holes before it count as restored
    }
  }

  /**
   * Writes the chunks of run {@code r}, read into {@code buf} (chunk {@code i} of the run at {@code
   * i * chunkSize}), at their other places on the disk: adjacent places that take adjacent chunks
   * in one write. Returns the bytes written.
   */
  private long writeCopies(Run r, ByteBuffer buf) throws IOException {
    long[] pairs = new long[8]; // place << 32 | index in the run
    int n = 0;
    for (int i = 0; i < r.count(); i++) {
      for (int q = nextSame.get(r.start() + i); q >= 0; q = nextSame.get(q)) {
        if (n == pairs.length) {
          pairs = Arrays.copyOf(pairs, n * 2);
        }
        pairs[n++] = (long) q << 32 | i;
      }
    }
    if (n == 0) {
      return 0;
    }
    Arrays.sort(pairs, 0, n);
    int chunk = fixed.chunkSize();
    long written = 0;
    int g = 0;
    while (g < n) {
      int place = (int) (pairs[g] >>> 32);
      int index = (int) pairs[g];
      int k = 1;
      while (g + k < n
          && (int) (pairs[g + k] >>> 32) == place + k
          && (int) pairs[g + k] == index + k) {
        k++;
      }
      long offset = (long) place * chunk;
      int length = (int) (Math.min(fixed.diskSize(), offset + (long) k * chunk) - offset);
      int from = index * chunk;
      out.write(buf.duplicate().limit(from + length).position(from), offset);
      written += length;
      g += k;
    }
    return written;
  }

  private void report(long value) {
    synchronized (reportLock) {
      if (value > reported) {
        reported = value;
        listener.progress(value, fixed.diskSize());
      }
    }
  }

  /** Waits for {@code t} to end; returns whether this thread was interrupted meanwhile. */
  private static boolean join(Thread t) {
    boolean interrupted = false;
    while (true) {
      try {
        t.join();
        return interrupted;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
  }

  /**
   * The next run for writer {@code id} to write, or null when there is none left or the restore
   * stops; a run of data is marked as being read by it before the cursor passes it.
   */
  private Run next(int id) {
    synchronized (lock) {
      if (stop) {
        return null;
      }
      int count = fixed.count();
      while (cursor < count && (copies.get(cursor) || fresh && fixed.get(cursor).isZero())) {
        if (!copies.get(cursor)) {
          zeroChunks++;
          done.addAndGet(fixed.length(cursor)); // a hole of the new file
        }
        cursor++;
      }
      if (cursor >= count) {
        return null;
      }
      int start = cursor;
      boolean zero = fixed.get(start).isZero();
      while (cursor < count
          && cursor - start < perRun
          && !copies.get(cursor)
          && fixed.get(cursor).isZero() == zero) {
        cursor++;
      }
      if (zero) {
        zeroChunks += cursor - start;
      } else {
        reading.set(id, start);
      }
      lock.notifyAll(); // the read-ahead waits for the cursor to move
      return new Run(assigned++, start, cursor - start, zero);
    }
  }

  /** A shared buffer of zeros, as large as a run; only read from. */
  private ByteBuffer zeros() {
    synchronized (lock) {
      if (zeros == null) {
        zeros = out.allocate(perRun * fixed.chunkSize());
      }
      return zeros;
    }
  }

  private void fail(int position, Throwable t) {
    synchronized (lock) {
      stop = true;
      lock.notifyAll();
      if (position < failedAt || failure == null) {
        if (failure != null) {
          t.addSuppressed(failure);
        }
        failure = t;
        failedAt = position;
      } else {
        failure.addSuppressed(t);
      }
    }
  }
}
