package io.granule.engine.internal.repo.blob;

import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Acts on {@link #prefetch} hints: each hinted range is read with one request on a background
 * thread into memory of its own, and the loads that fall inside it are served from there. A raw
 * restore's read-ahead hints ranges of up to 8 MiB of a pack, so a restore from S3 makes one ranged
 * GET per range instead of one per chunk (512 KiB by default): fewer requests to sign, send and pay
 * for, and no round trip per chunk on the writers' path. Over a local directory ({@link
 * LocalBlobStore#withDirectReadAhead}) the ranges are read with {@code O_DIRECT} by a {@link
 * RangeReader}: no page-cache pages to allocate and fill, no copy out of them, several large reads
 * in flight.
 *
 * <p>Memory is one direct buffer of {@code budget} bytes (the "arena", made at the first hint and
 * reused; nothing on the Java heap, so the garbage collector and the heap's size are not involved),
 * handed out as a ring: each range takes the next {@code length} bytes (rounded out to the reader's
 * alignment), wrapping to the start where the end has no room, and room comes back in the order it
 * was taken, once every range taken before it is let go too. Ranges of all sizes share the budget
 * by their length (a hint of 300 KiB holds 300 KiB, not a slab of the largest range). A range is
 * let go once the loads it served add up to its useful bytes (the hint says how many: the gaps
 * between records it was read through do not count), less those of the loads of it that came before
 * the hint (the writers had overtaken the read-ahead: the last {@link #MISSES} loads no range
 * served are remembered for this; a range they cover whole is not fetched). A hint that finds no
 * room waits for it, and after {@link #WAIT_MILLIS} evicts the range held longest (the one that
 * keeps the ring from moving on). A range's room comes back only when it is let go, its request is
 * over and no load is copying from it. A range longer than {@code maxRange} is not fetched. A
 * failed fetch is dropped: the loads it would have served go to the store and report the error
 * there. Everything but prefetch and ranged loads goes straight to the delegate.
 */
public final class PrefetchingBlobStore extends ForwardingBlobStore {
  /** Bytes held at most by default. */
  public static final long DEFAULT_BUDGET = 64L << 20;

  /** The longest range fetched by default: the read-ahead's largest range. */
  public static final int DEFAULT_MAX_RANGE = 8 << 20;

  /** Requests in flight at most by default. */
  public static final int DEFAULT_THREADS = 4;

  /** How long a hint waits for room before it evicts the range held longest. */
  static final long WAIT_MILLIS = 200;

  /** Loads not served from a range that are remembered, for hints that come after them. */
  static final int MISSES = 4096;

  private static final Logger LOG = LoggerFactory.getLogger(PrefetchingBlobStore.class);

  private final int maxRange;
  private final int capacity;
  private final RangeReader reader;
  private final int align;
  private final ThreadPoolExecutor fetchers;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition released = lock.newCondition();
  // Guarded by lock: held ranges, oldest first, and the sum of their lengths.
  private final ArrayDeque<Range> ranges = new ArrayDeque<>();
  private long held;
  // Guarded by lock: the arena (null until the first hint), and its ranges in the order they took
  // their room (let go or not): room is taken at head and comes back at the first's start.
  private volatile ByteBuffer arena;
  private final ArrayDeque<Range> taken = new ArrayDeque<>();
  private int head;
  // Guarded by lock: the latest loads no range served, oldest first.
  private final ArrayDeque<Miss> misses = new ArrayDeque<>();
  private final AtomicLong fetched = new AtomicLong();
  private final AtomicLong served = new AtomicLong();
  private final AtomicLong evicted = new AtomicLong();

  private static final class Range {
    final BlobName name;
    final long offset;
    final int length;
    final long useful;

    /** Where its bytes start in the blob: its offset, rounded down to the reader's alignment. */
    final long base;

    /** Its room in the arena: from {@code at}, {@code room} bytes (from base on). */
    final int at;

    final int room;

    /** True once fetched, false if the fetch failed. */
    final CompletableFuture<Boolean> data = new CompletableFuture<>();

    // Guarded by the store's lock.
    long used;
    boolean gone;
    boolean free; // gone, and its room no longer in use
    int pins = 1; // the fetch's, until it is over

    Range(BlobName name, long offset, int length, long useful, long base, int at, int room) {
      this.name = name;
      this.offset = offset;
      this.length = length;
      this.useful = useful;
      this.base = base;
      this.at = at;
      this.room = room;
    }

    boolean covers(BlobName n, long from, int len) {
      return name.equals(n) && from >= offset && from + len <= offset + length;
    }
  }

  /**
   * Reads {@code dst.remaining()} bytes of blob {@code name} from {@code offset} into {@code dst},
   * fewer only where the blob ends; returns how many.
   */
  @FunctionalInterface
  public interface RangeReader {
    int read(BlobName name, long offset, ByteBuffer dst) throws IOException;
  }

  /** A load that no held range covered. */
  private record Miss(BlobName name, long offset, int length) {}

  /**
   * Holds at most {@code budget} bytes (at least one range of {@code maxRange}) of ranges of at
   * most {@code maxRange}, fetched with the delegate's ranged loads by up to {@code threads}
   * requests at a time.
   */
  public PrefetchingBlobStore(BlobStore delegate, long budget, int maxRange, int threads) {
    this(delegate, budget, maxRange, threads, null, 1);
  }

  /**
   * As {@link #PrefetchingBlobStore(BlobStore, long, int, int)}, fetching with {@code reader}
   * instead (null: the delegate's ranged loads), from offsets and for lengths rounded out to {@code
   * align} (a power of two), into memory aligned so.
   */
  public PrefetchingBlobStore(
      BlobStore delegate, long budget, int maxRange, int threads, RangeReader reader, int align) {
    super(delegate);
    if (budget <= 0 || maxRange <= 0 || threads <= 0 || Integer.bitCount(align) != 1) {
      throw new IllegalArgumentException(
          "budget, longest range and threads must be positive, the alignment a power of two");
    }
    this.maxRange = maxRange;
    this.reader = reader;
    this.align = align;
    long least = roundUp(maxRange + (long) align, align); // a range rounded out to the alignment
    long cap = Math.max(least, roundUp(budget, align));
    if (cap > Integer.MAX_VALUE - 2L * align) {
      throw new IllegalArgumentException("budget too large: " + budget);
    }
    this.capacity = (int) cap;
    this.fetchers =
        new ThreadPoolExecutor(
            threads,
            threads,
            5,
            TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(),
            r -> {
              Thread t = new Thread(r, "granule-prefetch");
              t.setDaemon(true);
              return t;
            });
    fetchers.allowCoreThreadTimeOut(true);
  }

  private static long roundUp(long n, int align) {
    return (n + align - 1) / align * align;
  }

  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    if (offset < 0 || length <= 0 || length > maxRange || useful <= 0) {
      return;
    }
    Range r;
    lock.lock();
    try {
      // Loads of this range made before the hint (the writers were ahead of the read-ahead) will
      // not come again: they are not waited for, and a range they cover whole is not fetched.
      long loaded = 0;
      for (Iterator<Miss> it = misses.iterator(); it.hasNext(); ) {
        Miss m = it.next();
        if (m.name().equals(name)
            && m.offset() >= offset
            && m.offset() + m.length() <= offset + length) {
          loaded += m.length();
          it.remove();
        }
      }
      if (loaded >= useful) {
        return;
      }
      long base = offset / align * align;
      int room = (int) (roundUp(offset + length, align) - base);
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MILLIS);
      int at;
      while ((at = room(room)) < 0) {
        long left = deadline - System.nanoTime();
        Range oldest = taken.peekFirst();
        if (left <= 0 && !oldest.gone) {
          drop(oldest);
          evicted.incrementAndGet();
          deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MILLIS);
        } else {
          // room comes back when the ranges before it are let go and their requests and loads over
          released.awaitNanos(left > 0 ? left : TimeUnit.MILLISECONDS.toNanos(WAIT_MILLIS));
        }
      }
      r = new Range(name, offset, (int) length, useful - loaded, base, at, room);
      taken.addLast(r);
      head = at + room;
      ranges.addLast(r);
      held += length;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    } finally {
      lock.unlock();
    }
    try {
      fetchers.execute(() -> fetch(r));
    } catch (RuntimeException e) {
      failed(r, e);
      unpin(r);
    }
  }

  /**
   * Where in the arena {@code room} bytes are free next (at the head, or at the arena's start when
   * the head's end has no room), or -1. Holds the lock.
   */
  private int room(int room) {
    if (arena == null) {
      arena = align > 1 ? DirectIo.allocate(capacity, align) : ByteBuffer.allocateDirect(capacity);
    }
    if (taken.isEmpty()) {
      head = 0;
      return room <= capacity ? 0 : -1;
    }
    int tail = taken.peekFirst().at;
    if (head > tail) { // in use: [tail, head)
      if (capacity - head >= room) {
        return head;
      }
      return tail >= room ? 0 : -1;
    }
    // in use: [tail, capacity) and [0, head), or all of it (head == tail)
    return tail - head >= room && head != tail ? head : -1;
  }

  /** The arena's bytes of {@code r}, from its base. */
  private ByteBuffer slab(Range r) {
    return arena.duplicate().limit(r.at + r.room).position(r.at).slice();
  }

  private void fetch(Range r) {
    try {
      ByteBuffer slab = slab(r);
      if (reader == null) {
        ByteBuffer dst = slab.limit(r.length);
        delegate.load(r.name, r.offset, dst);
        if (dst.hasRemaining()) {
          throw new EOFException("short read of " + r.name);
        }
      } else {
        int n = reader.read(r.name, r.base, slab);
        if (n < r.offset + r.length - r.base) {
          throw new EOFException(
              "blob " + r.name + " ends before " + (r.offset + r.length) + " (read " + n + ")");
        }
      }
      fetched.addAndGet(r.length);
      r.data.complete(true);
    } catch (IOException | RuntimeException e) {
      failed(r, e);
    } finally {
      unpin(r);
    }
  }

  private void failed(Range r, Exception e) {
    LOG.debug("prefetch of {} [{}, +{}) dropped: {}", r.name, r.offset, r.length, e.toString());
    r.data.complete(false);
    lock.lock();
    try {
      drop(r);
    } finally {
      lock.unlock();
    }
  }

  /** Lets {@code r} go; its room comes back once it is unpinned. Holds the lock. */
  private void drop(Range r) {
    if (r != null && !r.gone) {
      r.gone = true;
      ranges.remove(r);
      held -= r.length;
      recycle(r);
    }
  }

  /**
   * Marks {@code r}'s room free if it is let go and nothing uses it, and gives back the room of the
   * ranges at the ring's tail that are free. Holds the lock.
   */
  private void recycle(Range r) {
    if (r.gone && r.pins == 0 && !r.free) {
      r.free = true;
      boolean moved = false;
      while (!taken.isEmpty() && taken.peekFirst().free) {
        taken.removeFirst();
        moved = true;
      }
      if (moved) {
        released.signalAll();
      }
    }
  }

  private void unpin(Range r) {
    lock.lock();
    try {
      r.pins--;
      recycle(r);
    } finally {
      lock.unlock();
    }
  }

  /**
   * The held range that covers the load, pinned (its room stays until {@link #unpin}), or null:
   * then the load is remembered as a miss.
   */
  private Range find(BlobName name, long offset, int length) {
    lock.lock();
    try {
      for (Range r : ranges) {
        if (r.covers(name, offset, length)) {
          r.pins++;
          return r;
        }
      }
      if (misses.size() >= MISSES) {
        misses.removeFirst();
      }
      misses.addLast(new Miss(name, offset, length));
      return null;
    } finally {
      lock.unlock();
    }
  }

  /** Whether {@code r} was fetched, waiting for it. */
  private static boolean await(Range r) throws InterruptedIOException {
    try {
      return r.data.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while loading " + r.name);
    } catch (ExecutionException e) {
      return false;
    }
  }

  private void used(Range r, int length) {
    served.addAndGet(length);
    lock.lock();
    try {
      r.used += length;
      if (r.used >= r.useful) {
        drop(r);
      }
    } finally {
      lock.unlock();
    }
  }

  /** Copies {@code length} bytes at {@code offset} from {@code r} if it was fetched. */
  private boolean serve(Range r, long offset, int length, ByteBuffer dst)
      throws InterruptedIOException {
    try {
      if (!await(r)) {
        return false;
      }
      int at = (int) (offset - r.base);
      dst.put(slab(r).limit(at + length).position(at));
      used(r, length);
      return true;
    } finally {
      unpin(r);
    }
  }

  @Override
  public void load(BlobName name, long offset, ByteBuffer dst) throws IOException {
    int length = dst.remaining();
    Range r = length > 0 ? find(name, offset, length) : null;
    if (r == null || !serve(r, offset, length, dst)) {
      delegate.load(name, offset, dst);
    }
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    Range r = length > 0 ? find(name, offset, length) : null;
    if (r != null) {
      byte[] out = new byte[length];
      if (serve(r, offset, length, ByteBuffer.wrap(out))) {
        return out;
      }
    }
    return delegate.load(name, offset, length);
  }

  /** Bytes fetched by prefetches, served from them, and ranges evicted before they were used up. */
  long fetchedBytes() {
    return fetched.get();
  }

  long servedBytes() {
    return served.get();
  }

  long evictions() {
    return evicted.get();
  }

  /** Bytes of the ranges held now. */
  long heldBytes() {
    lock.lock();
    try {
      return held;
    } finally {
      lock.unlock();
    }
  }

  /** Bytes of the arena (0 until the first hint). */
  int arenaBytes() {
    lock.lock();
    try {
      return arena == null ? 0 : arena.capacity();
    } finally {
      lock.unlock();
    }
  }
}
