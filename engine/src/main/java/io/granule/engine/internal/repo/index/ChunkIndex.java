package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryException;
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The dedup lookup table: chunk id to {@link ChunkLocation}, for every chunk of the repository,
 * kept off the Java heap so that it scales to 10^8 chunks.
 *
 * <p>An open-addressing hash table with linear probing in a memory-mapped temporary file (deleted
 * as soon as it is mapped; the kernel pages it in and out as needed). Each slot is 64 bytes: the
 * full chunk id (32; all-zero means empty, which is safe because {@link ChunkId#ZERO} is never
 * stored), the pack id (16), u32 offset, u32 stored length, u32 raw length (24 bits) and flags (8
 * bits). Sized for an expected count, it is 70 % full once they are in (91 bytes per chunk); it
 * grows by half when it is 80 % full, so a table grown by inserts is 53 to 80 % full: <b>80 to 120
 * bytes per chunk, none of it on the Java heap</b> (10^8 chunks: 8 to 12 GB of file-backed
 * mapping). Ids are uniformly distributed (BLAKE3, SHA-256 or keyed), so the first word of the id,
 * scaled to the capacity, is the slot where its probe starts.
 *
 * <p>Thread-safe: all methods synchronize on the index. Lookups cost one or two cache lines.
 */
public final class ChunkIndex implements Closeable {
  /** Largest raw chunk length a slot can hold (24 bits). */
  public static final int MAX_RAW_LENGTH = (1 << 24) - 1;

  static final int SLOT = 64;

  /** Slots per mapping: 16 MiB, so that a table being grown releases its old one piecemeal. */
  private static final int SEGMENT_SHIFT = 18;

  private static final long SEGMENT_SLOTS = 1L << SEGMENT_SHIFT;
  private static final int MIN_CAPACITY = 1 << 12;

  private final Path dir;
  private Table table;
  private long size;

  /**
   * An empty index with its mapping file in {@code dir}, sized for {@code expected} chunks: 70 %
   * full when they are in (any capacity, not a power of two: a table sized to the next power of two
   * was 40-80 % full, up to twice the memory), so that ~14 % more fit before it grows.
   */
  public ChunkIndex(Path dir, long expected) {
    this.dir = dir;
    this.table = new Table(dir, Math.max(MIN_CAPACITY, expected * 10 / 7 + 1));
  }

  /** Number of chunks in the index. */
  public synchronized long size() {
    return size;
  }

  /** Bytes of mapping the table uses now. */
  public synchronized long mappedBytes() {
    return table.capacity * SLOT;
  }

  /** Whether {@code id} is in the index. */
  public synchronized boolean contains(ChunkId id) {
    long slot = table.find(id);
    return slot >= 0 && !table.reserved(slot);
  }

  /** The location of {@code id}, or null if absent (or only reserved). */
  public synchronized ChunkLocation get(ChunkId id) {
    long slot = table.find(id);
    return slot < 0 || table.reserved(slot) ? null : table.location(slot);
  }

  /**
   * Adds {@code id} without a location, for {@link #fill} to give it one: until then {@link #get}
   * and {@link #contains} do not see it. An index of the chunks one disk needs is made so: its ids
   * reserved first, then filled from the index blobs, which list the whole repository. Returns
   * whether it was added.
   */
  public synchronized boolean reserve(ChunkId id) {
    if (id.isZero()) {
      throw new IllegalArgumentException("the zero chunk id is never indexed");
    }
    if (table.find(id) >= 0) {
      return false;
    }
    if ((size + 1) * 5 > table.capacity * 4) {
      grow();
    }
    table.insert(id, null);
    size++;
    return true;
  }

  /**
   * Gives reserved {@code id} its location, unless it is not reserved or has one already (the first
   * location wins, as with {@link #put}); returns whether it did.
   */
  public synchronized boolean fill(ChunkId id, ChunkLocation location) {
    if (location.rawLength() > MAX_RAW_LENGTH || location.offset() > 0xffffffffL) {
      throw new IllegalArgumentException("chunk location out of range: " + location);
    }
    long slot = table.find(id);
    if (slot < 0 || !table.reserved(slot)) {
      return false;
    }
    table.locate(slot, location);
    return true;
  }

  /**
   * Adds {@code id} at {@code location} unless present; returns whether it was added (the first
   * location of a chunk wins).
   */
  public synchronized boolean put(ChunkId id, ChunkLocation location) {
    if (id.isZero()) {
      throw new IllegalArgumentException("the zero chunk id is never indexed");
    }
    if (location.rawLength() > MAX_RAW_LENGTH || location.offset() > 0xffffffffL) {
      throw new IllegalArgumentException("chunk location out of range: " + location);
    }
    long slot = table.find(id);
    if (slot >= 0) {
      return false;
    }
    if ((size + 1) * 5 > table.capacity * 4) {
      grow();
    }
    table.insert(id, location);
    size++;
    return true;
  }

  /**
   * Adds chunk {@code id} of pack {@code location.pack()} to an index of (pack, chunk) pairs, in
   * which the same chunk in two packs is two entries; returns whether it was added (false: that
   * pair is present, or, never in practice, another pair has its key). Such an index takes only
   * {@code putInPack} and {@link #getInPack}. The key is the id with the pack id folded (xor) into
   * its first 128 bits: the first word stays uniform, and two pairs share a key only if their chunk
   * ids share their last 128 bits, which {@link #getInPack} tells apart by the pack it stored.
   */
  public synchronized boolean putInPack(ChunkId id, ChunkLocation location) {
    ChunkId key = inPack(location.pack(), id);
    return !key.isZero() && put(key, location);
  }

  /** The location of chunk {@code id} in pack {@code pack} (see {@link #putInPack}), or null. */
  public synchronized ChunkLocation getInPack(PackId pack, ChunkId id) {
    ChunkLocation l = get(inPack(pack, id));
    return l != null && l.pack().equals(pack) ? l : null;
  }

  private static ChunkId inPack(PackId pack, ChunkId id) {
    return new ChunkId(id.w0() ^ pack.hi(), id.w1() ^ pack.lo(), id.w2(), id.w3());
  }

  /**
   * Grows the table by half. Each mapping of the old one is released as soon as its slots are
   * moved, so that the two tables are never both in memory (a table of 2 M chunks is 256 MiB).
   */
  private void grow() {
    Table bigger = new Table(dir, table.capacity * 3 / 2);
    for (long s = 0; s < table.capacity; s++) {
      ChunkId id = table.id(s);
      if (!id.isZero()) {
        bigger.insert(id, table.location(s));
      }
      if (((s + 1) & (SEGMENT_SLOTS - 1)) == 0) {
        table.release((int) (s >>> SEGMENT_SHIFT)); // never read again
      }
    }
    table.release(); // unreachable from here on: its mapping goes now, not at the next GC
    table = bigger;
  }

  @Override
  public synchronized void close() {
    table.close();
  }

  /** The location a reserved id has until it is filled. */
  private static final ChunkLocation RESERVED =
      new ChunkLocation(new PackId(0, 0), 0, 0, MAX_RAW_LENGTH, 0xff);

  private static final class Table {
    final long capacity;
    final MappedByteBuffer[] segments;
    final FileChannel channel;

    Table(Path dir, long capacity) {
      this.capacity = capacity;
      try {
        Files.createDirectories(dir);
        Path file = Files.createTempFile(dir, ".chunk-index-", ".tmp");
        channel =
            FileChannel.open(
                file,
                StandardOpenOption.READ,
                StandardOpenOption.WRITE,
                StandardOpenOption.DELETE_ON_CLOSE);
        int n = (int) ((capacity + SEGMENT_SLOTS - 1) / SEGMENT_SLOTS);
        segments = new MappedByteBuffer[n];
        for (int i = 0; i < n; i++) {
          long slots = Math.min(SEGMENT_SLOTS, capacity - i * SEGMENT_SLOTS);
          segments[i] =
              channel.map(FileChannel.MapMode.READ_WRITE, i * SEGMENT_SLOTS * SLOT, slots * SLOT);
        }
        Files.deleteIfExists(file);
      } catch (IOException e) {
        throw new RepositoryException(
            "unable to create the chunk index in "
                + dir
                + ": "
                + e.getMessage()
                + " (free space there or point the cache directory elsewhere)",
            e);
      }
    }

    private MappedByteBuffer seg(long slot) {
      return segments[(int) (slot >>> SEGMENT_SHIFT)];
    }

    private static int pos(long slot) {
      return (int) (slot & (SEGMENT_SLOTS - 1)) * SLOT;
    }

    ChunkId id(long slot) {
      MappedByteBuffer b = seg(slot);
      int p = pos(slot);
      return new ChunkId(b.getLong(p), b.getLong(p + 8), b.getLong(p + 16), b.getLong(p + 24));
    }

    ChunkLocation location(long slot) {
      MappedByteBuffer b = seg(slot);
      int p = pos(slot);
      int rawAndFlags = b.getInt(p + 56);
      return new ChunkLocation(
          new PackId(b.getLong(p + 32), b.getLong(p + 40)),
          Integer.toUnsignedLong(b.getInt(p + 48)),
          b.getInt(p + 52),
          rawAndFlags >>> 8,
          rawAndFlags & 0xff);
    }

    /** The slot where {@code id}'s probe starts: its first word scaled to the capacity. */
    long home(ChunkId id) {
      return Math.multiplyHigh(id.w0() >>> 1, capacity << 1);
    }

    long next(long s) {
      return s + 1 == capacity ? 0 : s + 1;
    }

    long find(ChunkId id) {
      for (long s = home(id); ; s = next(s)) {
        MappedByteBuffer b = seg(s);
        int p = pos(s);
        long w0 = b.getLong(p);
        long w1 = b.getLong(p + 8);
        long w2 = b.getLong(p + 16);
        long w3 = b.getLong(p + 24);
        if ((w0 | w1 | w2 | w3) == 0) {
          return -1;
        }
        if (w0 == id.w0() && w1 == id.w1() && w2 == id.w2() && w3 == id.w3()) {
          return s;
        }
      }
    }

    /** Inserts {@code id} at {@code l}, or reserved (see {@link #reserved}) if null. */
    void insert(ChunkId id, ChunkLocation l) {
      long s = home(id);
      while (!id(s).isZero()) {
        s = next(s);
      }
      locate(s, l == null ? RESERVED : l);
      MappedByteBuffer b = seg(s);
      int p = pos(s);
      b.putLong(p, id.w0()).putLong(p + 8, id.w1()).putLong(p + 16, id.w2());
      b.putLong(p + 24, id.w3());
    }

    /** Writes the location of slot {@code s}. */
    void locate(long s, ChunkLocation l) {
      MappedByteBuffer b = seg(s);
      int p = pos(s);
      b.putLong(p + 32, l.pack().hi()).putLong(p + 40, l.pack().lo());
      b.putInt(p + 48, (int) l.offset()).putInt(p + 52, l.storedLength());
      b.putInt(p + 56, (l.rawLength() << 8) | (l.flags() & 0xff));
    }

    /**
     * Whether slot {@code s} (in use) has no location yet: pack id zero (never a pack's) and raw
     * length and flags all ones (no chunk's: its flags use the low bits), as {@link #RESERVED}.
     */
    boolean reserved(long s) {
      MappedByteBuffer b = seg(s);
      int p = pos(s);
      return (b.getLong(p + 32) | b.getLong(p + 40)) == 0 && b.getInt(p + 56) == -1;
    }

    void close() {
      try {
        channel.close();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    /** Closes the table and releases its mappings: it must never be touched again. */
    void release() {
      close();
      for (int i = 0; i < segments.length; i++) {
        release(i);
      }
    }

    /** Releases mapping {@code i}: its slots must never be touched again. */
    void release(int i) {
      io.granule.engine.internal.repo.Unmapper.unmap(segments[i]);
      segments[i] = null;
    }
  }
}
