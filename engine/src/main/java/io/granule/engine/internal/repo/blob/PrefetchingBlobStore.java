package io.granule.engine.internal.repo.blob;

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
 * Acts on {@link #prefetch} hints for a remote store: each hinted range is fetched with one request
 * on a background thread into a buffer of its own, and the loads that fall inside it are served
 * from there. A raw restore's read-ahead hints ranges of up to 8 MiB of a pack, so a restore from
 * S3 makes one ranged GET per range instead of one per chunk (512 KiB by default): fewer requests
 * to sign, send and pay for, and no round trip per chunk on the writers' path.
 *
 * <p>Memory is a fixed set of direct buffers ("slabs", {@code budget / slabSize} of them, made as
 * needed and reused; none on the Java heap, so the garbage collector and the heap's size are not
 * involved). A range is let go once the loads it served add up to its useful bytes (the hint says
 * how many: the gaps between records it was read through do not count), less those of the loads of
 * it that came before the hint (the writers had overtaken the read-ahead: the last {@link #MISSES}
 * loads no range served are remembered for this; a range they cover whole is not fetched). A hint
 * that finds no free slab waits for one, and after {@link #WAIT_MILLIS} evicts the range used least
 * recently. A slab goes back to the set only when its range is let go, its request is over and no
 * load is copying from it. A range longer than a slab is not fetched. A failed fetch is dropped:
 * the loads it would have served go to the store and report the error there. Everything but
 * prefetch and ranged loads goes straight to the delegate.
 */
public final class PrefetchingBlobStore extends ForwardingBlobStore {
  /** Bytes of slabs at most by default. */
  public static final long DEFAULT_BUDGET = 64L << 20;

  /** Size of a slab by default: the read-ahead's largest range. */
  public static final int DEFAULT_SLAB = 8 << 20;

  /** Requests in flight at most by default. */
  public static final int DEFAULT_THREADS = 4;

  /** How long a hint waits for a slab before it evicts the range used least recently. */
  static final long WAIT_MILLIS = 200;

  /** Loads not served from a range that are remembered, for hints that come after them. */
  static final int MISSES = 4096;

  private static final Logger LOG = LoggerFactory.getLogger(PrefetchingBlobStore.class);

  private final int slabSize;
  private final int maxSlabs;
  private final ThreadPoolExecutor fetchers;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition released = lock.newCondition();
  // Guarded by lock: held ranges, oldest first, and the sum of their lengths; slabs.
  private final ArrayDeque<Range> ranges = new ArrayDeque<>();
  private long held;
  private int slabs;
  private final ArrayDeque<ByteBuffer> freeSlabs = new ArrayDeque<>();
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
    final ByteBuffer slab;

    /** True once fetched, false if the fetch failed. */
    final CompletableFuture<Boolean> data = new CompletableFuture<>();

    // Guarded by the store's lock.
    long used;
    long lastUse = System.nanoTime();
    boolean gone;
    int pins = 1; // the fetch's, until it is over

    Range(BlobName name, long offset, int length, long useful, ByteBuffer slab) {
      this.name = name;
      this.offset = offset;
      this.length = length;
      this.useful = useful;
      this.slab = slab;
    }

    boolean covers(BlobName n, long at, int len) {
      return name.equals(n) && at >= offset && at + len <= offset + length;
    }
  }

  /** A load that no held range covered. */
  private record Miss(BlobName name, long offset, int length) {}

  /**
   * Holds at most {@code budget} bytes in slabs of {@code slabSize} (at least one), fetched by up
   * to {@code threads} requests at a time.
   */
  public PrefetchingBlobStore(BlobStore delegate, long budget, int slabSize, int threads) {
    super(delegate);
    if (budget <= 0 || slabSize <= 0 || threads <= 0) {
      throw new IllegalArgumentException("budget, slab size and threads must be positive");
    }
    this.slabSize = slabSize;
    this.maxSlabs = (int) Math.max(1, Math.min(Integer.MAX_VALUE, budget / slabSize));
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

  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    if (offset < 0 || length <= 0 || length > slabSize || useful <= 0) {
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
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MILLIS);
      while (freeSlabs.isEmpty() && slabs >= maxSlabs) {
        long left = deadline - System.nanoTime();
        if (left <= 0 && !ranges.isEmpty()) {
          drop(leastRecentlyUsed());
          evicted.incrementAndGet();
          deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MILLIS);
        } else {
          // a slab of a range let go comes back when its request and loads are over
          released.awaitNanos(left > 0 ? left : TimeUnit.MILLISECONDS.toNanos(WAIT_MILLIS));
        }
      }
      ByteBuffer slab;
      if (freeSlabs.isEmpty()) {
        slab = ByteBuffer.allocateDirect(slabSize);
        slabs++;
      } else {
        slab = freeSlabs.pop();
      }
      r = new Range(name, offset, (int) length, useful - loaded, slab);
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

  private void fetch(Range r) {
    try {
      ByteBuffer dst = r.slab.duplicate().clear().limit(r.length);
      delegate.load(r.name, r.offset, dst);
      if (dst.hasRemaining()) {
        throw new java.io.EOFException("short read of " + r.name);
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

  /** Lets {@code r} go; its slab comes back once it is unpinned. Holds the lock. */
  private void drop(Range r) {
    if (r != null && !r.gone) {
      r.gone = true;
      ranges.remove(r);
      held -= r.length;
      recycle(r);
    }
  }

  /** Gives {@code r}'s slab back if it is let go and nothing uses it. Holds the lock. */
  private void recycle(Range r) {
    if (r.gone && r.pins == 0) {
      freeSlabs.push(r.slab);
      released.signalAll();
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

  /** The held range used least recently (hinted or served). Holds the lock. */
  private Range leastRecentlyUsed() {
    Range lru = null;
    for (Range r : ranges) {
      if (lru == null || r.lastUse - lru.lastUse < 0) {
        lru = r;
      }
    }
    return lru;
  }

  /**
   * The held range that covers the load, pinned (its slab stays until {@link #unpin}), or null:
   * then the load is remembered as a miss.
   */
  private Range find(BlobName name, long offset, int length) {
    lock.lock();
    try {
      for (Range r : ranges) {
        if (r.covers(name, offset, length)) {
          r.lastUse = System.nanoTime();
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
      int at = (int) (offset - r.offset);
      dst.put(r.slab.duplicate().limit(at + length).position(at));
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

  /** Slabs made so far. */
  int slabs() {
    lock.lock();
    try {
      return slabs;
    } finally {
      lock.unlock();
    }
  }
}
