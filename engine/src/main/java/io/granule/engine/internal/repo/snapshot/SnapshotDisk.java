package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.store.ChunkReader;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 * fetch different chunks in parallel and share the cache.
 */
public final class SnapshotDisk implements DiskImage {
  private static final byte[] ZEROS = new byte[64 << 10];

  private final Manifest snapshot;
  private final Manifest.DiskEntry disk;
  private final FixedIndex fixed;
  private final ChunkReader chunks;
  private final long cacheBytes;
  private final LinkedHashMap<Integer, byte[]> cache = new LinkedHashMap<>(16, 0.75f, true);
  private long cached;
  private final AtomicLong chunksFetched = new AtomicLong();
  private final AtomicLong bytesFetched = new AtomicLong();

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
    this.cacheBytes = cacheBytes;
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
        dst.put(chunk(position, id), within, n);
      }
      pos += n;
    }
  }

  private byte[] chunk(int position, ChunkId id) {
    synchronized (cache) {
      byte[] c = cache.get(position);
      if (c != null) {
        return c;
      }
    }
    // Fetch outside the lock so that readers of other chunks proceed; two readers of the same
    // missing chunk may both fetch it, which is harmless.
    byte[] c = fetch(position, id);
    synchronized (cache) {
      if (c.length > cacheBytes || cache.containsKey(position)) {
        return c;
      }
      cache.put(position, c);
      cached += c.length;
      var it = cache.entrySet().iterator();
      while (cached > cacheBytes && it.hasNext()) {
        Map.Entry<Integer, byte[]> eldest = it.next();
        cached -= eldest.getValue().length;
        it.remove();
      }
      return c;
    }
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

  private byte[] fetch(int position, ChunkId id) {
    byte[] c;
    try {
      c = chunks.read(id);
    } catch (RepositoryCorruptedException e) {
      throw named(position, e);
    }
    if (c.length != fixed.length(position)) {
      throw wrongLength(id, c.length, position);
    }
    chunksFetched.incrementAndGet();
    bytesFetched.addAndGet(c.length);
    return c;
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
    synchronized (cache) {
      cache.clear();
      cached = 0;
    }
  }
}
