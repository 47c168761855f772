package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.store.ChunkReader;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Random-access reads of one disk inside a snapshot: {@link #read} fetches only the chunks the
 * range touches (one range load each from its pack), keeping decompressed chunks in a bounded LRU
 * cache. Zero chunks cost nothing. Counters tell how many chunks and bytes were fetched, so callers
 * can report the fraction of the disk they needed.
 *
 * <p>As a {@link DiskImage} it can feed anything that reads disks (file-level restore, NBD export).
 * A damaged chunk fails the read with a {@link RepositoryCorruptedException} naming the chunk, the
 * pack, the snapshot and the disk; a read never returns wrong bytes. Thread-safe: concurrent reads
 * fetch different chunks in parallel and share the cache; readers of a chunk being fetched wait for
 * it instead of fetching it again.
 *
 * <p>The cache is a set of slots, each a direct buffer of the chunk size that a chunk is decoded
 * into (a pooled {@link ChunkReader.Decoder}: no array per chunk) and copied out of; an evicted
 * slot's buffer takes the next chunk. A read therefore allocates nothing once the cache is full: a
 * long sequential read (an NBD client copying the disk) used to allocate two arrays per chunk and
 * spent a quarter of its CPU time in garbage collection.
 */
public final class SnapshotDisk implements DiskImage {
  private static final byte[] ZEROS = new byte[64 << 10];

  /** Buffers kept for reuse beyond the cache's slots (reads of an uncached disk, overshoot). */
  private static final int SPARE_BUFFERS = 4;

  private final Manifest snapshot;
  private final Manifest.DiskEntry disk;
  private final FixedIndex fixed;
  private final ChunkReader chunks;
  private final int maxSlots;
  private final AtomicLong chunksFetched = new AtomicLong();
  private final AtomicLong bytesFetched = new AtomicLong();
  private final ConcurrentLinkedDeque<ChunkReader.Decoder> decoders = new ConcurrentLinkedDeque<>();

  private final Object lock = new Object();
  // Guarded by lock: slots by chunk position in access order, eldest first.
  private final LinkedHashMap<Integer, Slot> cache = new LinkedHashMap<>(16, 0.75f, true);
  // Guarded by lock.
  private final ArrayDeque<ByteBuffer> spare = new ArrayDeque<>();
  // Guarded by lock.
  private boolean closed;

  /**
   * One chunk's plaintext in a buffer of the chunk size. Pinned while it is being fetched or copied
   * out of: only an unpinned slot is evicted (its buffer reused), so its bytes never change under a
   * reader. Fields guarded by {@link #lock}; {@link #data}'s bytes are written before {@link
   * #ready} is set and read only after a reader saw it set, both under the lock.
   */
  private static final class Slot {
    ByteBuffer data;
    int pins = 1;
    boolean ready;
    boolean cached;
  }

  /** A reader of {@code disk} of {@code snapshot} caching up to {@code cacheBytes} of plaintext. */
  public SnapshotDisk(
      Manifest snapshot,
      Manifest.DiskEntry disk,
      FixedIndex fixed,
      ChunkReader chunks,
      long cacheBytes) {
    this.snapshot = snapshot;
    this.disk = disk;
    this.fixed = fixed;
    this.chunks = chunks;
    this.maxSlots = (int) Math.min(Integer.MAX_VALUE, Math.max(0, cacheBytes) / fixed.chunkSize());
  }

  @Override
  public long size() {
    return fixed.diskSize();
  }

  @Override
  public String format() {
    return "raw";
  }

  /** The snapshot this disk belongs to. */
  public Manifest snapshot() {
    return snapshot;
  }

  /** The disk entry of the manifest. */
  public Manifest.DiskEntry disk() {
    return disk;
  }

  /** The fixed index of the disk. */
  public FixedIndex fixedIndex() {
    return fixed;
  }

  /** Number of chunks fetched from packs so far (cache misses of non-zero chunks). */
  public long chunksFetched() {
    return chunksFetched.get();
  }

  /** Plaintext bytes of the chunks fetched so far. */
  public long bytesFetched() {
    return bytesFetched.get();
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws EOFException {
    if (offset < 0 || offset + dst.remaining() > fixed.diskSize()) {
      throw new EOFException(
          "read past the end of disk '"
              + disk.name()
              + "' of snapshot "
              + snapshot.id()
              + ": offset="
              + offset
              + " length="
              + dst.remaining()
              + " size="
              + fixed.diskSize());
    }
    long pos = offset;
    while (dst.hasRemaining()) {
      int position = (int) (pos / fixed.chunkSize());
      int within = (int) (pos - (long) position * fixed.chunkSize());
      int n = Math.min(dst.remaining(), fixed.length(position) - within);
      ChunkId id = fixed.get(position);
      if (id.isZero()) {
        for (int left = n; left > 0; ) {
          int k = Math.min(left, ZEROS.length);
          dst.put(ZEROS, 0, k);
          left -= k;
        }
      } else {
        Slot slot = acquire(position);
        try {
          ByteBuffer src = slot.data.duplicate();
          src.limit(within + n).position(within);
          dst.put(src);
        } finally {
          release(slot);
        }
      }
      pos += n;
    }
  }

  /**
   * The slot holding the chunk at {@code position}, pinned: from the cache, after waiting for
   * another reader that is fetching it, or fetched here (into a slot that joins the cache, if it
   * has any, evicting the least recently used unpinned ones beyond its size).
   */
  private Slot acquire(int position) {
    Slot slot;
    ByteBuffer buffer;
    synchronized (lock) {
      boolean interrupted = false;
      try {
        for (Slot s = cache.get(position); s != null; s = cache.get(position)) {
          if (s.ready) {
            s.pins++;
            return s;
          }
          try {
            lock.wait();
          } catch (InterruptedException e) {
            interrupted = true; // the fetch it waits for ends either way
          }
        }
      } finally {
        if (interrupted) {
          Thread.currentThread().interrupt();
        }
      }
      slot = new Slot();
      if (maxSlots > 0 && !closed) {
        slot.cached = true;
        cache.put(position, slot);
        evict();
      }
      buffer = spare.poll();
    }
    boolean fetched = false;
    ChunkReader.Decoder decoder = decoders.poll();
    try {
      if (buffer == null) {
        buffer = ByteBuffer.allocateDirect(fixed.chunkSize());
      }
      if (decoder == null) {
        decoder = chunks.decoder();
      }
      readChunk(position, buffer.clear(), decoder);
      fetched = true;
    } finally {
      if (decoder != null) {
        giveBack(decoder);
      }
      synchronized (lock) {
        if (fetched) {
          slot.data = buffer;
          slot.ready = true;
        } else {
          if (slot.cached) {
            cache.remove(position, slot);
            slot.cached = false;
          }
          recycle(buffer);
        }
        lock.notifyAll();
      }
    }
    return slot;
  }

  /** Unpins {@code slot}; its buffer is reused if it is no longer in the cache. */
  private void release(Slot slot) {
    synchronized (lock) {
      if (--slot.pins == 0 && !slot.cached) {
        recycle(slot.data);
        slot.data = null;
      }
    }
  }

  /** Drops the least recently used unpinned slots while the cache holds more than its size. */
  private void evict() {
    var it = cache.values().iterator();
    while (cache.size() > maxSlots && it.hasNext()) {
      Slot s = it.next();
      if (s.pins == 0) {
        it.remove();
        s.cached = false;
        recycle(s.data);
        s.data = null;
      }
    }
  }

  private void recycle(ByteBuffer buffer) {
    if (buffer != null && !closed && spare.size() < SPARE_BUFFERS) {
      spare.push(buffer);
    }
  }

  private void giveBack(ChunkReader.Decoder decoder) {
    synchronized (lock) {
      if (!closed) {
        decoders.push(decoder);
        return;
      }
    }
    decoder.close();
  }

  /**
   * Where the chunk at {@code position} is stored, or null if it is a zero chunk or no index lists
   * it (reading it names the damage).
   */
  public ChunkLocation location(int position) {
    ChunkId id = fixed.get(position);
    return id.isZero() ? null : chunks.locate(id);
  }

  /** See {@link ChunkReader#prefetch}. */
  public void prefetch(
      io.granule.engine.internal.repo.PackId pack, long offset, long length, long useful) {
    chunks.prefetch(pack, offset, length, useful);
  }

  /** A decoder for {@link #readChunk(int, ByteBuffer, ChunkReader.Decoder)}, for one thread. */
  public ChunkReader.Decoder decoder() {
    return chunks.decoder();
  }

  /**
   * Puts the plaintext of the non-zero chunk at {@code position} into {@code dst} at its position
   * and advances it by the chunk's length, bypassing the cache; checked, counted and named in
   * errors as by {@link #read} (which goes through the cache). Zero chunks are the caller's to
   * skip.
   */
  public void readChunk(int position, ByteBuffer dst, ChunkReader.Decoder decoder) {
    ChunkId id = fixed.get(position);
    if (id.isZero()) {
      throw new IllegalArgumentException("position " + position + " holds a zero chunk");
    }
    ChunkLocation loc;
    try {
      loc = chunks.location(id);
    } catch (RepositoryCorruptedException e) {
      throw named(position, e);
    }
    if (loc.rawLength() != fixed.length(position)) {
      throw wrongLength(id, loc.rawLength(), position);
    }
    try {
      decoder.read(id, loc, dst);
    } catch (RepositoryCorruptedException e) {
      throw named(position, e);
    }
    chunksFetched.incrementAndGet();
    bytesFetched.addAndGet(fixed.length(position));
  }

  private RepositoryCorruptedException named(int position, RepositoryCorruptedException e) {
    return new RepositoryCorruptedException(
        "snapshot "
            + snapshot.id()
            + " disk '"
            + disk.name()
            + "' at offset "
            + (long) position * fixed.chunkSize()
            + ": "
            + e.getMessage(),
        e);
  }

  private RepositoryCorruptedException wrongLength(ChunkId id, int actual, int position) {
    return new RepositoryCorruptedException(
        "snapshot "
            + snapshot.id()
            + " disk '"
            + disk.name()
            + "': chunk "
            + id
            + " has the wrong length: actual="
            + actual
            + " expected="
            + fixed.length(position));
  }

  /** Non-zero chunk positions as extents. */
  @Override
  public List<Extent> allocation(long offset, long length) {
    List<Extent> out = new ArrayList<>();
    long end = Math.min(offset + length, fixed.diskSize());
    long runStart = -1;
    for (int p = (int) (offset / fixed.chunkSize()); (long) p * fixed.chunkSize() < end; p++) {
      long s = Math.max(offset, (long) p * fixed.chunkSize());
      if (!fixed.get(p).isZero()) {
        if (runStart < 0) {
          runStart = s;
        }
      } else if (runStart >= 0) {
        out.add(new Extent(runStart, s - runStart));
        runStart = -1;
      }
    }
    if (runStart >= 0 && end > runStart) {
      out.add(new Extent(runStart, end - runStart));
    }
    return out;
  }

  @Override
  public void close() {
    synchronized (lock) {
      closed = true;
      for (Slot s : cache.values()) {
        s.cached = false;
      }
      cache.clear();
      spare.clear();
    }
    for (ChunkReader.Decoder d = decoders.poll(); d != null; d = decoders.poll()) {
      d.close();
    }
    fixed.close(); // a large disk's temporary file
    chunks.close(); // an index of this disk's chunks alone, if it has one
  }
}
