package io.granule.engine.internal.repo.store;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.WorkerFailures;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.ChunkFlags;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackFormat;
import io.granule.engine.internal.repo.pack.PackWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The write side of the chunk store: decides which chunks are new, collects them into packs and
 * saves packs and index blobs in the crash-safe order: a pack is saved (durable) before any index
 * blob lists its chunks. Index blobs are written every {@code packsPerIndex} packs and on {@link
 * #flush}; a crash between leaves packs that no index lists, which the next backup adopts.
 *
 * <p><b>Lanes.</b> Each writer thread adds chunks through its own {@link Lane}: an open pack of its
 * own, into which it compresses and encodes (encrypts) chunks in place. So workers never wait for
 * each other's compression or encryption; only {@link #claim} and the index update take the
 * packer's lock, for a hash-table lookup.
 *
 * <p><b>Saving.</b> A full pack is saved on one of {@code saveThreads} background threads (or on
 * the adding thread when {@code saveThreads} is 0), at most {@code saveThreads} at a time: a lane
 * that fills a pack while that many are being saved waits (back-pressure), so memory stays at
 * {@code lanes + saveThreads} packs at most; fewer when saves wait for the disk, as a buffer goes
 * back to the pool once the store has written it (before its fsync). Pack buffers are reused.
 *
 * <p>A chunk enters the {@link ChunkIndex} as soon as it is added to an open pack, so later copies
 * deduplicate against it; such entries are durable only after {@link #flush}. If a backup fails
 * before that, the caller must rebuild the chunk index from the index blobs.
 *
 * <p>Thread-safe as described: {@link #claim} from any thread, a lane from one thread at a time,
 * {@link #flush} once no lane is in use. After a failed save every later add and {@link #flush}
 * rethrows that same failure. {@link #close} waits for saves still running.
 */
public final class ChunkPacker implements AutoCloseable {

  /**
   * The most chunks in one pack, whatever its size (a trailer of 896 KiB): tiny records of very
   * compressible chunks would otherwise put hundreds of thousands in a pack, and readers (verify,
   * prune) hold a pack's trailer entries on the heap, ~100 bytes each, a few packs at a time.
   */
  static final int MAX_PACK_ENTRIES = 16_384;

  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkIndex index;
  private final int packSize;
  private final int packsPerIndex;
  private final Consumer<PackId> indexed;
  private final Set<ChunkId> inFlight = new HashSet<>();
  private final List<IndexEntry> unindexed = new ArrayList<>();
  private final List<Lane> lanes = new ArrayList<>();
  private final ExecutorService savers;
  private final int saveThreads;
  private final Semaphore saving;
  private final BlockingQueue<ByteBuffer> buffers;
  private Lane shared;
  private int packsSinceIndex;
  private long packsWritten;
  private long indexesWritten;
  private volatile Throwable failure;

  /**
   * A packer saving packs of about {@code packSize} bytes on the adding thread, and an index blob
   * every {@code packsPerIndex} packs; {@code indexed} hears of each pack once an index blob lists
   * it.
   */
  public ChunkPacker(
      BlobStore store,
      BlobCodec codec,
      ChunkIndex index,
      int packSize,
      int packsPerIndex,
      Consumer<PackId> indexed) {
    this(store, codec, index, packSize, packsPerIndex, indexed, 0);
  }

  /** As above, saving full packs on {@code saveThreads} background threads (0: none). */
  public ChunkPacker(
      BlobStore store,
      BlobCodec codec,
      ChunkIndex index,
      int packSize,
      int packsPerIndex,
      Consumer<PackId> indexed,
      int saveThreads) {
    this.store = store;
    this.codec = codec;
    this.index = index;
    this.packSize = packSize;
    this.packsPerIndex = packsPerIndex;
    this.indexed = indexed;
    this.saveThreads = saveThreads;
    this.saving = new Semaphore(Math.max(1, saveThreads));
    this.buffers = new ArrayBlockingQueue<>(Math.max(1, saveThreads) + 4);
    if (saveThreads > 0) {
      ThreadPoolExecutor pool =
          new ThreadPoolExecutor(
              saveThreads,
              saveThreads,
              10,
              TimeUnit.SECONDS,
              new LinkedBlockingQueue<>(),
              r -> {
                Thread t = new Thread(r, "granule-pack-saver");
                t.setDaemon(true);
                return t;
              });
      pool.allowCoreThreadTimeOut(true);
      savers = pool;
    } else {
      savers = null;
    }
  }

  /**
   * Whether the caller must store chunk {@code id}: true exactly once per new chunk, for the first
   * caller; false if it is stored already or another caller is storing it.
   */
  public synchronized boolean claim(ChunkId id) {
    if (index.contains(id) || inFlight.contains(id)) {
      return false;
    }
    inFlight.add(id);
    return true;
  }

  /** A new lane: an open pack for one writer thread. */
  public synchronized Lane lane() {
    Lane l = new Lane();
    lanes.add(l);
    return l;
  }

  /**
   * Adds a claimed chunk, already compressed, through a lane shared by the callers of this method.
   *
   * @return the stored length (after the codec)
   */
  public int add(ChunkId id, ChunkCompressor.Stored stored, int rawLength) throws IOException {
    Lane l;
    synchronized (this) {
      if (shared == null) {
        shared = lane();
      }
      l = shared;
    }
    synchronized (l) {
      return l.addStored(id, stored.bytes(), stored.flags(), rawLength);
    }
  }

  /**
   * Saves every lane's open pack, waits for all saves, and writes an index blob for every pack not
   * yet indexed. Call it when no lane is in use.
   */
  public void flush() throws IOException {
    checkNotFailed();
    List<Lane> all;
    synchronized (this) {
      all = new ArrayList<>(lanes);
    }
    for (Lane l : all) {
      synchronized (l) {
        l.submit();
      }
    }
    awaitSaves();
    checkNotFailed();
    List<IndexEntry> rest;
    synchronized (this) {
      rest = new ArrayList<>(unindexed);
      unindexed.clear();
      packsSinceIndex = 0;
    }
    if (!rest.isEmpty()) {
      saveIndex(rest);
    }
  }

  /** Number of packs saved. */
  public synchronized long packsWritten() {
    return packsWritten;
  }

  /** Number of index blobs saved. */
  public synchronized long indexesWritten() {
    return indexesWritten;
  }

  /** Waits for the saves still running (a failed backup's) and stops the save threads. */
  @Override
  public void close() {
    if (savers != null) {
      savers.shutdown();
      boolean interrupted = false;
      while (true) {
        try {
          if (savers.awaitTermination(1, TimeUnit.MINUTES)) {
            break;
          }
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void checkNotFailed() throws IOException {
    Throwable f = failure;
    if (f != null) {
      WorkerFailures.rethrow(f, "saving packs");
    }
  }

  private synchronized void fail(Throwable t) {
    if (failure == null) {
      failure = t;
    }
  }

  private void awaitSaves() {
    int permits = Math.max(1, saveThreads);
    saving.acquireUninterruptibly(permits);
    saving.release(permits);
  }

  private void submit(PackId id, PackWriter pack) throws IOException {
    if (savers == null) {
      save(id, pack);
      return;
    }
    saving.acquireUninterruptibly();
    try {
      checkNotFailed();
      savers.execute(
          () -> {
            try {
              save(id, pack);
            } catch (Throwable t) {
              // recorded by save(); every later call rethrows it
            } finally {
              saving.release();
            }
          });
    } catch (IOException | RuntimeException | Error e) {
      saving.release();
      throw e;
    }
  }

  /** Saves a pack, then lists its chunks for the next index blob. */
  private void save(PackId id, PackWriter pack) throws IOException {
    int length = pack.finishInPlace();
    try {
      // The buffer goes back to the pool once written, while the save waits for its fsync.
      ByteBuffer buffer = pack.buffer();
      store.save(
          ChunkReader.packName(id),
          buffer.duplicate().clear().limit(length),
          () -> buffers.offer(buffer));
    } catch (IOException | RuntimeException | Error e) {
      fail(e);
      throw e;
    }
    List<IndexEntry> toIndex = null;
    synchronized (this) {
      for (PackEntry e : pack.entries()) {
        unindexed.add(
            new IndexEntry(
                e.id(),
                new ChunkLocation(id, e.offset(), e.storedLength(), e.rawLength(), e.flags())));
      }
      packsWritten++;
      if (++packsSinceIndex >= packsPerIndex || unindexed.size() >= IndexWriter.MAX_ENTRIES) {
        toIndex = new ArrayList<>(unindexed);
        unindexed.clear();
        packsSinceIndex = 0;
      }
    }
    if (toIndex != null) {
      saveIndex(toIndex);
    }
  }

  /**
   * Saves {@code entries} in index blobs of at most {@link IndexWriter#MAX_ENTRIES}, then tells
   * {@code indexed} of their packs.
   */
  private void saveIndex(List<IndexEntry> entries) throws IOException {
    int blobs;
    try {
      blobs = IndexWriter.save(store, codec, entries);
    } catch (IOException | RuntimeException | Error e) {
      fail(e);
      throw e;
    }
    synchronized (this) {
      entries.stream().map(e -> e.location().pack()).distinct().forEach(indexed);
      indexesWritten += blobs;
    }
  }

  private synchronized void added(ChunkId id, PackId pack, PackEntry e) {
    index.put(id, new ChunkLocation(pack, e.offset(), e.storedLength(), e.rawLength(), e.flags()));
    inFlight.remove(id);
  }

  /**
   * An open pack of one writer thread. Not thread-safe: one thread at a time (the packer's {@link
   * #flush} submits what is left in it).
   */
  public final class Lane {
    private PackWriter pack;
    private PackId packId;
    private BlobName packName;
    private ByteBuffer scratch = ByteBuffer.allocateDirect(0);

    private Lane() {}

    /**
     * Adds a chunk that this thread {@link #claim}ed: compresses the bytes remaining in {@code
     * data} (a direct buffer; its position is left alone) with {@code compressor}, kept only if
     * that saves enough, encodes the result into the open pack, and saves the pack when it is full.
     *
     * @return the stored length (after the codec)
     */
    public int add(ChunkId id, ByteBuffer data, ChunkCompressor compressor) throws IOException {
      checkNotFailed();
      open();
      int len = data.remaining();
      int bound = ChunkCompressor.bound(len);
      if (!codec.transforms()) {
        // stored bytes = compressed or plain bytes: write them straight into the pack
        ByteBuffer b = pack.reserve(Math.max(bound, len));
        ByteBuffer at = b.duplicate().clear().position(pack.size());
        int n = compressor.compressInto(data, at);
        if (n >= 0) {
          return commit(id, n, len, ChunkFlags.ZSTD);
        }
        b.put(pack.size(), data, data.position(), len);
        return commit(id, len, len, 0);
      }
      if (scratch.capacity() < bound) {
        scratch = ByteBuffer.allocateDirect(bound);
      }
      ByteBuffer z = scratch.clear();
      int n = compressor.compressInto(data, z);
      return n >= 0
          ? encode(id, z.limit(n), ChunkFlags.ZSTD, len)
          : encode(id, data.duplicate(), 0, len);
    }

    int addStored(ChunkId id, byte[] stored, int flags, int rawLength) throws IOException {
      checkNotFailed();
      open();
      return encode(id, ByteBuffer.wrap(stored), flags, rawLength);
    }

    /** Encodes the bytes remaining in {@code src} (consumed) into the pack. */
    private int encode(ChunkId id, ByteBuffer src, int flags, int rawLength) throws IOException {
      int room = codec.encodedLength(src.remaining());
      int stored;
      if (room >= 0) {
        ByteBuffer at = pack.reserve(room).duplicate().clear().position(pack.size());
        stored = codec.encode(packName, src, at);
      } else {
        byte[] in = new byte[src.remaining()];
        src.get(in);
        byte[] e = codec.encode(packName, in);
        pack.reserve(e.length).put(pack.size(), e);
        stored = e.length;
      }
      return commit(id, stored, rawLength, flags);
    }

    private int commit(ChunkId id, int stored, int rawLength, int flags) throws IOException {
      PackEntry e = pack.commit(id, stored, rawLength, flags);
      added(id, packId, e);
      // full: its records and trailer reach the pack size, or it has the most chunks a pack has
      if (pack.size() + (long) pack.count() * PackFormat.ENTRY_SIZE >= packSize
          || pack.count() >= MAX_PACK_ENTRIES) {
        submit();
      }
      return stored;
    }

    private void open() {
      if (pack == null) {
        packId = PackId.random();
        packName = ChunkReader.packName(packId);
        ByteBuffer b = buffers.poll();
        pack = b != null ? new PackWriter(b) : new PackWriter(packSize + (packSize >> 3));
      }
    }

    /** Hands the open pack, if any, to be saved. */
    void submit() throws IOException {
      if (pack == null) {
        return;
      }
      PackWriter p = pack;
      PackId id = packId;
      pack = null;
      packId = null;
      packName = null;
      ChunkPacker.this.submit(id, p);
    }
  }
}
