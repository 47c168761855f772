package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.zip.CRC32;

/**
 * The dedup lookup table: chunk id to {@link ChunkLocation}, for every chunk of the repository,
 * kept off the Java heap and in bounded memory so that it scales to 10^8 chunks.
 *
 * <p>An open-addressing hash table with linear probing. Each slot is 64 bytes: the full chunk id
 * (32; all-zero means empty, which is safe because {@link ChunkId#ZERO} is never stored), the pack
 * id (16), u32 offset, u32 stored length, u32 raw length (24 bits) and flags (8 bits). Sized for an
 * expected count, it is 70 % full once they are in (91 bytes per chunk); it grows by half when it
 * is 80 % full, so a table grown by inserts is 53 to 80 % full: <b>80 to 120 bytes per chunk</b>.
 * Ids are uniformly distributed (BLAKE3, SHA-256 or keyed), so the first word of the id, scaled to
 * the capacity, is the slot where its probe starts.
 *
 * <p>The table's bytes are {@link SlotPages}: off the Java heap, all in memory while the table fits
 * the index's memory budget ({@link #defaultMemory}, 80 to 128 MiB: 0.9 to 1.4 M chunks), else in a
 * temporary file read and written through a cache of that size, so that the process's memory does
 * not grow with the repository (10^8 chunks: 8 to 12 GB of file, which the kernel caches as it
 * can). Past the budget a lookup that misses the cache costs a read of 4 KiB from the file (~1.3 µs
 * from the kernel's cache, plus ~5 µs to write back a dirty page it evicts).
 *
 * <p>Thread-safe: all methods synchronize on the index. Lookups cost one or two cache lines.
 */
public final class ChunkIndex implements Closeable {
  /** Largest raw chunk length a slot can hold (24 bits). */
  public static final int MAX_RAW_LENGTH = (1 << 24) - 1;

  static final int SLOT = 64;

  /**
   * Memory an index holds at most unless told otherwise: {@code granule.index.memory-mib}, else 128
   * MiB or a quarter of the cap on direct buffers, whichever is less (80 MiB under {@code
   * bin/granule}'s 320 MiB heap), so that a backup's peak RSS stays under 512 MiB however many
   * chunks the repository has.
   */
  public static long defaultMemory() {
    Long mib = Long.getLong("granule.index.memory-mib");
    return mib != null ? Math.max(1, mib) << 20 : Math.min(128L << 20, SlotPages.DIRECT_LIMIT / 4);
  }

  private static final int MIN_CAPACITY = 1 << 12;

  private final Path dir;
  private final long memory;
  private Table table;
  private long size;

  /** Why the index became unusable, if it did (see {@link #grow}). */
  private Throwable failure;

  /**
   * An empty index with its mapping file in {@code dir}, sized for {@code expected} chunks: 70 %
   * full when they are in (any capacity, not a power of two: a table sized to the next power of two
   * was 40-80 % full, up to twice the memory), so that ~14 % more fit before it grows.
   */
  public ChunkIndex(Path dir, long expected) {
    this(dir, expected, defaultMemory());
  }

  /**
   * An empty index as {@link #ChunkIndex(Path, long)} that holds at most {@code memory} bytes in
   * memory (at least 1 MiB): past that its table is paged through a temporary file in {@code dir}.
   */
  public ChunkIndex(Path dir, long expected, long memory) {
    this(dir, memory, new Table(dir, Math.max(MIN_CAPACITY, expected * 10 / 7 + 1), memory));
  }

  private ChunkIndex(Path dir, long memory, Table table) {
    this.dir = dir;
    this.memory = memory;
    this.table = table;
  }

  /**
   * An index of {@code size} entries whose table of {@code capacity} slots is the {@code capacity *
   * 64} bytes at {@code offset} of {@code in} (as {@link #writeTable} wrote them), read once in
   * order and added to {@code crc}; its memory and files as {@link #ChunkIndex(Path, long,
   * long)}'s. A table over the memory budget keeps {@code in} open and reads its pages from there
   * until it writes them (see {@link SlotPages#readFrom}): then {@code in} is closed with the
   * index, else it is the caller's to close ({@link #resident} tells which).
   *
   * @throws IllegalArgumentException if no table has that capacity and size
   * @throws IOException if {@code in} fails or ends first
   */
  static ChunkIndex readTable(
      Path dir, long capacity, long size, long memory, RandomAccessFile in, long offset, CRC32 crc)
      throws IOException {
    if (capacity < MIN_CAPACITY
        || capacity > (Integer.MAX_VALUE * (long) SlotPages.PAGE) / SLOT
        || size < 0
        || size * 5 > capacity * 4) {
      throw new IllegalArgumentException(
          "no chunk index table has " + capacity + " slots and " + size + " entries");
    }
    ChunkIndex index = new ChunkIndex(dir, memory, new Table(dir, capacity, memory));
    try {
      index.table.slots.readFrom(in, offset, crc);
    } catch (IOException | RuntimeException | Error e) {
      index.close();
      throw e;
    }
    index.size = size;
    return index;
  }

  /** Slots of the table (see {@link #readTable}). */
  synchronized long capacity() {
    check();
    return table.capacity;
  }

  /**
   * Writes the table's {@code capacity() * 64} bytes to {@code out}, adding them to {@code crc}.
   */
  synchronized void writeTable(OutputStream out, CRC32 crc) throws IOException {
    check();
    table.slots.copyTo(out, crc);
  }

  /** Number of chunks in the index. */
  public synchronized long size() {
    return size;
  }

  /** Bytes the table takes: in memory while it fits the budget, else in its file. */
  public synchronized long tableBytes() {
    check();
    return table.capacity * SLOT;
  }

  /** Bytes of memory the table holds now (at most the budget). */
  public synchronized long memoryBytes() {
    check();
    return table.slots.memoryBytes();
  }

  /** Whether the whole table is in memory (it fits the budget). */
  public synchronized boolean resident() {
    check();
    return table.slots.resident();
  }

  /** Whether {@code id} is in the index. */
  public synchronized boolean contains(ChunkId id) {
    check();
    long slot = table.find(id);
    return slot >= 0 && !table.reserved(slot);
  }

  /** The location of {@code id}, or null if absent (or only reserved). */
  public synchronized ChunkLocation get(ChunkId id) {
    check();
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
    return add(id, null);
  }

  /**
   * Gives reserved {@code id} its location, unless it is not reserved or has one already (the first
   * location wins, as with {@link #put}); returns whether it did.
   */
  public synchronized boolean fill(ChunkId id, ChunkLocation location) {
    check();
    checkRange(location);
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
    checkRange(location);
    return add(id, location);
  }

  /** Adds {@code id} at {@code location} (reserved if null) unless present; whether it did. */
  private boolean add(ChunkId id, ChunkLocation location) {
    check();
    if (id.isZero()) {
      throw new IllegalArgumentException("the zero chunk id is never indexed");
    }
    if (table.find(id) >= 0) {
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
    ChunkId key = inPackKey(location.pack(), id);
    return !key.isZero() && put(key, location);
  }

  /** The location of chunk {@code id} in pack {@code pack} (see {@link #putInPack}), or null. */
  public synchronized ChunkLocation getInPack(PackId pack, ChunkId id) {
    ChunkLocation l = get(inPackKey(pack, id));
    return l != null && l.pack().equals(pack) ? l : null;
  }

  /**
   * The key of chunk {@code id} of pack {@code pack} in an index of (pack, chunk) pairs (see {@link
   * #putInPack}); the fold is its own inverse: {@code inPackKey(pack, key)} is the id again.
   */
  public static ChunkId inPackKey(PackId pack, ChunkId id) {
    return new ChunkId(id.w0() ^ pack.hi(), id.w1() ^ pack.lo(), id.w2(), id.w3());
  }

  /**
   * Grows the table by half, reading the old one in order and releasing its memory as it goes, so
   * that the two together hold no more than the budget (a resident table frees each block it has
   * read; a paged one writes back and drops its cache first). Ids come out of the old table nearly
   * in the order of their home slots, so the new one is written nearly in order too.
   */
  private void grow() {
    grow(table.capacity * 3 / 2);
  }

  private void grow(long capacity) {
    Table old = table;
    Table bigger = new Table(dir, capacity, memory);
    try {
      old.slots.beginScan();
      bigger.slots.limit(memory - old.slots.memoryBytes());
      for (long s = 0; s < old.capacity; s++) {
        ChunkId id = old.id(s);
        if (!id.isZero()) {
          bigger.insert(id, old.location(s));
        }
        long end = (s + 1) * SLOT;
        if ((end & (SlotPages.BLOCK - 1)) == 0) {
          old.slots.scanned(end); // never read again
          bigger.slots.limit(memory - old.slots.memoryBytes());
        }
      }
    } catch (RuntimeException | Error e) {
      // the old table has given up part of its memory: the index is unusable from here on
      bigger.close();
      old.close();
      table = null;
      failure = e;
      throw e;
    }
    old.close(); // its memory goes now, not at the next GC
    bigger.slots.limit(memory);
    table = bigger;
  }

  /** Whether a slot can hold {@code location}: an offset under 2^32, a raw length under 2^24. */
  public static boolean fits(ChunkLocation location) {
    return location.rawLength() <= MAX_RAW_LENGTH && location.offset() <= 0xffffffffL;
  }

  /**
   * Why no chunk of a repository whose records go through {@code codec} can be stored at {@code
   * location}, or null if one can: a slot must hold it ({@link #fits}), its lengths and offset are
   * not negative, and its stored length is at most its plaintext length through the codec. Every
   * writer keeps a chunk's zstd output only when it is shorter than the plaintext ({@code
   * ChunkCompressor.MIN_SAVING_PERCENT}), else stores the plaintext, so no genuine record is
   * longer; a longer one is damage or forgery (audit12 L1: a stored length near 2^31 in an index
   * blob crashed restore, or ran it out of memory).
   */
  public static String impossible(ChunkLocation location, BlobCodec codec) {
    if (!fits(location)
        || location.offset() < 0
        || location.rawLength() < 0
        || location.storedLength() < 0) {
      return "impossible location " + location;
    }
    int most = codec.encodedLength(location.rawLength());
    if (most >= 0 && location.storedLength() > most) {
      return "impossible stored length "
          + location.storedLength()
          + " for a chunk of "
          + location.rawLength()
          + " bytes (at most "
          + most
          + ")";
    }
    return null;
  }

  /**
   * @throws IllegalArgumentException unless a slot can hold {@code location} (see {@link #fits})
   */
  static void checkRange(ChunkLocation location) {
    if (!fits(location)) {
      throw new IllegalArgumentException("chunk location out of range: " + location);
    }
  }

  /** Whether the index failed (a table could not grow: no room for its file) and is unusable. */
  public synchronized boolean failed() {
    return failure != null;
  }

  private void check() {
    if (table == null) {
      throw new RepositoryException(
          failure == null
              ? "the chunk index is closed"
              : "the chunk index is unusable after an earlier failure ("
                  + failure.getMessage()
                  + "): the repository reloads it on its next use",
          failure);
    }
  }

  /**
   * Takes {@code fresh}'s entries in place of its own (a repository reloading its index): readers
   * that hold this index see the fresh entries from now on, and the old table's memory and file go
   * now. {@code fresh} is closed.
   */
  public void replaceWith(ChunkIndex fresh) {
    synchronized (this) {
      synchronized (fresh) {
        fresh.check();
        Table old = table;
        table = fresh.table;
        size = fresh.size;
        failure = null;
        fresh.table = null;
        if (old != null) {
          old.close();
        }
      }
    }
  }

  /**
   * A loader of about {@code expected} more entries (a repository's index blobs, a verify's pack
   * trailers): {@link Loader#put} and {@link Loader#putInPack} as the index's, visible once {@link
   * Loader#finish} returns. Into a table over its memory budget, one by one in the order given
   * would cost a read of the file (and a write back) for most entries: the loader instead sorts
   * them into temporary files by the part of the table they go to, each part half the budget, and
   * inserts a part at a time, so that each page of the table is read and written about once. The
   * table is grown first, at once, to hold the entries expected.
   */
  public synchronized Loader loader(long expected) {
    check();
    long needed = size + Math.max(0, expected);
    if (needed * 5 > table.capacity * 4) {
      grow(Math.max(table.capacity, needed * 10 / 7 + 1));
    }
    return new Loader();
  }

  /**
   * Lookups of many ids whose answers may come in any order (verify's checks): {@link Lookups#add}
   * queues an id with a location and a tag of the caller's, and {@link Lookups#finish} hands each
   * back with what {@link #get} gives for it. In a table within its budget each is answered at
   * once; in a paged one they are sorted as a {@link #loader}'s entries are, so that each page is
   * read about once instead of once per lookup.
   */
  public synchronized Lookups lookups(Answer answer) {
    check();
    return new Lookups(answer);
  }

  /** What {@link Lookups} hands back: the id, the location and tag it was added with, its entry. */
  public interface Answer {
    void accept(ChunkId id, ChunkLocation location, int tag, ChunkLocation found);
  }

  /** The number of parts a sort into this table needs: 1 if the table is in memory. */
  private int parts() {
    long part = Math.max(SlotPages.BLOCK, memory / 2);
    return table.slots.resident() ? 1 : (int) Math.min(4096, tableBytes() / part + 1);
  }

  /**
   * See {@link #loader}. Not thread-safe. Its parts are temporary files deleted as soon as they are
   * open: a crash leaves nothing behind; {@link #close} frees what was not inserted.
   */
  public final class Loader implements Closeable {
    private long duplicates;
    private final Sorter sorter =
        new Sorter(
            (id, l, tag) -> {
              if (!ChunkIndex.this.put(id, l)) {
                duplicates++;
              }
            });

    private Loader() {}

    /** Entries put so far whose id the index held already (the first location stayed). */
    public long duplicates() {
      return duplicates;
    }

    /** Parts of the table it sorts into (1: it inserts at once). */
    int parts() {
      return sorter.parts;
    }

    /** As {@link ChunkIndex#put}, at {@link #finish}. */
    public void put(ChunkId id, ChunkLocation location) {
      if (id.isZero()) {
        throw new IllegalArgumentException("the zero chunk id is never indexed");
      }
      checkRange(location);
      sorter.add(id, location, 0);
    }

    /** As {@link ChunkIndex#putInPack}, at {@link #finish}. */
    public void putInPack(ChunkId id, ChunkLocation location) {
      ChunkId key = inPackKey(location.pack(), id);
      if (!key.isZero()) {
        put(key, location);
      }
    }

    /** Inserts what was put, a part of the table at a time, and frees the temporary files. */
    public void finish() {
      sorter.finish();
    }

    @Override
    public void close() {
      sorter.close();
    }
  }

  /** See {@link #lookups}. Not thread-safe; {@link #close} frees what was not answered. */
  public final class Lookups implements Closeable {
    private final Sorter sorter;

    private Lookups(Answer answer) {
      sorter = new Sorter((id, l, tag) -> answer.accept(id, l, tag, get(id)));
    }

    /**
     * Queues a lookup of {@code id}; {@code location} (its offset under 2^32, its raw length under
     * 2^24; {@link #NO_LOCATION} if none) and {@code tag} come back with the answer.
     */
    public void add(ChunkId id, ChunkLocation location, int tag) {
      checkRange(location);
      sorter.add(id, location, tag);
    }

    /** Answers every lookup queued, a part of the table at a time, and frees the files. */
    public void finish() {
      sorter.finish();
    }

    @Override
    public void close() {
      sorter.close();
    }
  }

  /** A location to pass to {@link Lookups#add} when the lookup has none. */
  public static final ChunkLocation NO_LOCATION = new ChunkLocation(new PackId(0, 0), 0, 0, 0, 0);

  /** What a {@link Sorter} hands back, a part at a time. */
  private interface Sink {
    void accept(ChunkId id, ChunkLocation location, int tag);
  }

  /**
   * Records of (id, location, tag) sorted by the part of the table (half the budget each) where the
   * id's probe starts, into nameless temporary files of {@link #RECORD} bytes each, then handed to
   * a sink a part at a time. In a table within its budget a record goes to the sink at once.
   */
  private final class Sorter implements Closeable {
    final int parts;
    private final long capacity;
    private final Sink sink;
    private final RandomAccessFile[] files;
    private final DataOutputStream[] outs;
    private final int buffer;

    Sorter(Sink sink) {
      synchronized (ChunkIndex.this) {
        check();
        this.parts = ChunkIndex.this.parts();
        this.capacity = table.capacity;
      }
      this.sink = sink;
      this.files = new RandomAccessFile[parts];
      this.outs = new DataOutputStream[parts];
      // 16 KiB a part, less (down to 4 KiB) past 512 parts: at most 16 MiB of heap
      this.buffer = (int) Math.max(4 << 10, Math.min(16 << 10, (8L << 20) / parts));
    }

    void add(ChunkId id, ChunkLocation location, int tag) {
      if (parts == 1) {
        sink.accept(id, location, tag);
        return;
      }
      int p = (int) (Math.multiplyHigh(id.w0() >>> 1, capacity << 1) * parts / capacity);
      try {
        DataOutputStream out = outs[p];
        if (out == null) {
          files[p] = SlotPages.nameless(dir, ".chunk-index-sort-");
          out =
              outs[p] =
                  new DataOutputStream(
                      new BufferedOutputStream(new FileOutputStream(files[p].getFD()), buffer));
        }
        EntrySpill.write(out, id, location, tag);
      } catch (IOException e) {
        throw failure(e);
      }
    }

    void finish() {
      try {
        for (int p = 0; p < parts; p++) {
          if (outs[p] == null) {
            continue;
          }
          outs[p].flush();
          outs[p] = null; // shares the file's descriptor: closed with it below
          RandomAccessFile f = files[p];
          long n = f.length() / RECORD;
          f.seek(0);
          DataInputStream in =
              new DataInputStream(
                  new BufferedInputStream(new FileInputStream(f.getFD()), 64 << 10));
          for (long i = 0; i < n; i++) {
            EntrySpill.read(in, sink::accept);
          }
          f.close();
          files[p] = null;
        }
      } catch (IOException e) {
        throw failure(e);
      }
    }

    private RepositoryException failure(IOException e) {
      return EntrySpill.failure(dir, e);
    }

    @Override
    public void close() {
      for (int p = 0; p < parts; p++) {
        if (files[p] != null) {
          try {
            files[p].close(); // nameless: its space is freed now
          } catch (IOException e) {
            // freed when the process exits
          }
          files[p] = null;
          outs[p] = null;
        }
      }
    }
  }

  private static final int RECORD = EntrySpill.RECORD;

  @Override
  public synchronized void close() {
    if (table != null) {
      table.close();
      table = null;
    }
  }

  /** The location a reserved id has until it is filled. */
  private static final ChunkLocation RESERVED =
      new ChunkLocation(new PackId(0, 0), 0, 0, MAX_RAW_LENGTH, 0xff);

  /**
   * Whether the slot at {@code p} of {@code b} (in use) has no location yet: pack id zero (never a
   * pack's) and raw length and flags all ones (no chunk's: its flags use the low bits), as {@link
   * #RESERVED}.
   */
  private static boolean reservedAt(ByteBuffer b, int p) {
    return (b.getLong(p + 32) | b.getLong(p + 40)) == 0 && b.getInt(p + 56) == -1;
  }

  /** The location in the slot at {@code p} of {@code b}. */
  private static ChunkLocation locationAt(ByteBuffer b, int p) {
    int rawAndFlags = b.getInt(p + 56);
    return new ChunkLocation(
        new PackId(b.getLong(p + 32), b.getLong(p + 40)),
        Integer.toUnsignedLong(b.getInt(p + 48)),
        b.getInt(p + 52),
        rawAndFlags >>> 8,
        rawAndFlags & 0xff);
  }

  /**
   * Feeds each entry in the first {@code n} bytes (whole slots) of {@code block}, bytes of a table
   * as {@link #writeTable} writes them, to {@code each}; empty and reserved slots are skipped.
   */
  static void eachEntry(
      byte[] block, int n, java.util.function.BiConsumer<ChunkId, ChunkLocation> each) {
    ByteBuffer b = ByteBuffer.wrap(block);
    for (int p = 0; p + SLOT <= n; p += SLOT) {
      long w0 = b.getLong(p);
      long w1 = b.getLong(p + 8);
      long w2 = b.getLong(p + 16);
      long w3 = b.getLong(p + 24);
      if ((w0 | w1 | w2 | w3) == 0 || reservedAt(b, p)) {
        continue;
      }
      each.accept(new ChunkId(w0, w1, w2, w3), locationAt(b, p));
    }
  }

  private static final class Table {
    final long capacity;
    final SlotPages slots;

    Table(Path dir, long capacity, long memory) {
      this.capacity = capacity;
      this.slots = new SlotPages(dir, capacity * SLOT, memory);
    }

    ChunkId id(long slot) {
      ByteBuffer b = slots.read(slot * SLOT);
      int p = slots.pos;
      return new ChunkId(b.getLong(p), b.getLong(p + 8), b.getLong(p + 16), b.getLong(p + 24));
    }

    ChunkLocation location(long slot) {
      ByteBuffer b = slots.read(slot * SLOT);
      return locationAt(b, slots.pos);
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
        ByteBuffer b = slots.read(s * SLOT);
        int p = slots.pos;
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
      while (!empty(s)) {
        s = next(s);
      }
      locate(s, l == null ? RESERVED : l);
      ByteBuffer b = slots.write(s * SLOT);
      int p = slots.pos;
      b.putLong(p, id.w0()).putLong(p + 8, id.w1()).putLong(p + 16, id.w2());
      b.putLong(p + 24, id.w3());
    }

    private boolean empty(long s) {
      ByteBuffer b = slots.read(s * SLOT);
      int p = slots.pos;
      return (b.getLong(p) | b.getLong(p + 8) | b.getLong(p + 16) | b.getLong(p + 24)) == 0;
    }

    /** Writes the location of slot {@code s}. */
    void locate(long s, ChunkLocation l) {
      ByteBuffer b = slots.write(s * SLOT);
      int p = slots.pos;
      b.putLong(p + 32, l.pack().hi()).putLong(p + 40, l.pack().lo());
      b.putInt(p + 48, (int) l.offset()).putInt(p + 52, l.storedLength());
      b.putInt(p + 56, (l.rawLength() << 8) | (l.flags() & 0xff));
    }

    /**
     * Whether slot {@code s} (in use) has no location yet: pack id zero (never a pack's) and raw
     * length and flags all ones (no chunk's: its flags use the low bits), as {@link #RESERVED}.
     */
    boolean reserved(long s) {
      ByteBuffer b = slots.read(s * SLOT);
      return reservedAt(b, slots.pos);
    }

    void close() {
      slots.close();
    }
  }
}
