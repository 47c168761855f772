package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.SnapshotId;
import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.internal.repo.WorkerFailures;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.chunk.Chunker;
import io.granule.engine.internal.repo.chunk.FastCdcChunker;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.snapshot.ChunkList;
import io.granule.engine.internal.repo.snapshot.DynamicIndex;
import io.granule.engine.internal.repo.snapshot.DynamicIndexWriter;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.FixedIndexWriter;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.ManifestWriter;
import io.granule.engine.internal.repo.store.ChunkPacker;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.IntConsumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Backs up disks into a new snapshot with fixed-size chunks.
 *
 * <p>Pipeline: the calling thread walks each disk's chunk positions (skipping ranges the image
 * reports unallocated, and those changed-block tracking says are unchanged) and queues the others;
 * each worker thread reads its chunk into a buffer of its own, checks for zeros, hashes, looks the
 * id up, compresses new chunks and adds them to its lane's pack ({@link ChunkPacker.Lane}). The
 * bounded queue is the back-pressure: memory is one chunk per worker, a few queued positions and
 * (workers + 3) packs, whatever the disk size (plus the fixed index, 32 bytes per chunk).
 *
 * <p>Streams are cut into content-defined chunks ({@link FastCdcChunker}, 512 KiB / 1 MiB / 4 MiB)
 * by the calling thread, copied into a pool of {@code (2 × threads + 2)} buffers, and then go
 * through the same workers; their chunk lists are dynamic indexes.
 *
 * <p>Write order (crash-safe): packs, then the index blobs listing them, then the fixed and dynamic
 * indexes, then the manifest. A failure or crash at any point leaves a valid repository; the next
 * backup reuses every chunk whose pack and index were saved. After a failed run the chunk index may
 * list chunks that were never saved: the caller must rebuild it before the next backup.
 *
 * <p>One instance runs one backup at a time.
 */
public final class Backup {
  private static final Logger LOG = LoggerFactory.getLogger(Backup.class);
  private static final long REPORT_INTERVAL_NANOS = 100_000_000L;
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final int PACKS_PER_INDEX = 16;
  private static final int ALIGN = 4096;

  /** Bytes of a disk whose allocation map is asked for at once (rounded to whole chunks). */
  private static final long ALLOCATION_WINDOW = 1L << 30;

  // Packs saved in the background at once: enough to keep a local disk's fsyncs and an object
  // store's uploads going while the workers fill the next packs. A local save holds its pack's
  // memory only while it writes, not while it waits for the fsync. Measured on the 2-core bench
  // machine with direct writes (4 GiB image, 832 MiB of packs, 3 interleaved runs each): 6 threads
  // 4.55-4.75 s, 4 threads 4.78-4.98 s, 8 threads 4.99-5.36 s (more fsyncs queue on the journal).
  private static final int SAVE_THREADS = 6;

  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkIndex index;
  private final ChunkHasher hasher;
  private final int chunkSize;
  private final int packSize;
  private final int compressionLevel;
  private final int threads;
  private final Clock clock;
  private final Consumer<PackId> indexed;
  private final Supplier<Chunker> streamChunker = FastCdcChunker::new;

  public Backup(
      BlobStore store,
      BlobCodec codec,
      ChunkIndex index,
      ChunkHasher hasher,
      int chunkSize,
      int packSize,
      int compressionLevel,
      int threads,
      Clock clock,
      Consumer<PackId> indexed) {
    this.store = store;
    this.codec = codec;
    this.index = index;
    this.hasher = hasher;
    this.chunkSize = chunkSize;
    this.packSize = packSize;
    this.compressionLevel = compressionLevel;
    this.threads = threads;
    this.clock = clock;
    this.indexed = indexed;
  }

  /**
   * A chunk for a worker: of a disk, to be read by the worker ({@code buffer} null), or of a
   * stream, already cut and copied into {@code buffer} by the reading thread.
   */
  private record Task(
      int entry,
      ChunkList list,
      int position,
      ByteBuffer buffer,
      int length,
      BackupRequest.NamedDisk disk,
      long offset) {}

  private static final Task STOP = new Task(-1, null, -1, null, 0, null, 0);

  /**
   * Runs the backup and writes the snapshot.
   *
   * @throws SourceUnreadableException if a disk cannot be read
   * @throws RepositoryException if the repository cannot be written
   */
  public BackupResult run(BackupRequest request, BackupListener listener) {
    long started = System.nanoTime();
    ChunkCompressor.requireNative();
    try (ChunkPacker packer =
        new ChunkPacker(store, codec, index, packSize, PACKS_PER_INDEX, indexed, SAVE_THREADS)) {
      return run(request, listener, packer, started);
    }
  }

  private BackupResult run(
      BackupRequest request, BackupListener listener, ChunkPacker packer, long started) {
    String time = clock.instant().toString();
    List<BackupRequest.NamedDisk> disks = request.disks();
    List<BackupRequest.NamedStream> streams = new ArrayList<>(request.streams());
    long total = disks.stream().mapToLong(d -> d.image().size()).sum();
    Counters c = new Counters(disks.size() + streams.size());
    boolean anyStream = !streams.isEmpty() || request.afterDisks() != null;
    int bufferSize = anyStream ? Math.max(chunkSize, streamChunker.get().maxSize()) : chunkSize;
    // Stream chunks are cut by the reading thread and handed over in a pool of buffers (the
    // back-pressure); disk chunks are read by the workers into buffers of their own.
    int buffers = 2 * threads + 2;
    BlockingQueue<ByteBuffer> free = new ArrayBlockingQueue<>(buffers);
    for (int i = 0; anyStream && i < buffers; i++) {
      free.add(newBuffer(bufferSize));
    }
    BlockingQueue<Task> work = new ArrayBlockingQueue<>(buffers + threads);
    AtomicReference<Throwable> failure = new AtomicReference<>();
    DiskReads reads = new DiskReads();
    ByteBuffer zeros = ByteBuffer.allocateDirect(bufferSize);
    List<Thread> workers = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      Thread w =
          new Thread(
              () -> work(work, free, packer, c, zeros, failure, reads),
              "granule-backup-worker-" + t);
      w.setDaemon(true);
      w.start();
      workers.add(w);
    }
    List<FixedIndex> fixedIndexes = new ArrayList<>();
    List<DynamicIndex> dynamicIndexes = new ArrayList<>();
    List<String> names = new java.util.concurrent.CopyOnWriteArrayList<>();
    List<Long> sizes = new java.util.concurrent.CopyOnWriteArrayList<>();
    Map<String, Object> applications = Map.of();
    disks.forEach(
        d -> {
          names.add(d.name());
          sizes.add(d.image().size());
        });
    streams.forEach(
        s -> {
          names.add(s.name());
          sizes.add(-1L);
        });
    Reporter reporter = new Reporter(listener, total, c, names, sizes, started);
    try {
      try {
        for (int d = 0; d < disks.size(); d++) {
          FixedIndex fixed = new FixedIndex(chunkSize, disks.get(d).image().size());
          fixedIndexes.add(fixed);
          if (!readDisk(d, disks.get(d), fixed, work, c, failure, reads, reporter)) {
            break;
          }
        }
        // Every disk byte is read before the holds end: the workers read, so wait for them.
        reads.awaitNone();
        rethrow(reads.resolve(failure.get()));
        if (request.afterDisks() != null) {
          BackupRequest.Extras extras = request.afterDisks().run();
          applications = extras.applications();
          for (BackupRequest.NamedStream s : extras.streams()) {
            if (names.contains(s.name())) {
              throw new IllegalArgumentException("two items of one backup are named " + s.name());
            }
            c.grow();
            names.add(s.name());
            sizes.add(-1L);
            streams.add(s);
          }
        }
        for (int s = 0; s < streams.size(); s++) {
          DynamicIndex dynamic = new DynamicIndex();
          dynamicIndexes.add(dynamic);
          readStream(disks.size() + s, streams.get(s), dynamic, free, work, failure, reporter);
        }
      } finally {
        for (int t = 0; t < threads; t++) {
          putUninterruptibly(work, STOP);
        }
        for (Thread w : workers) {
          joinUninterruptibly(w);
        }
      }
      rethrow(reads.resolve(failure.get()));
      packer.flush();
      List<Manifest.DiskEntry> entries = new ArrayList<>();
      for (int d = 0; d < disks.size(); d++) {
        BlobName name = new BlobName(BlobType.FIXED_INDEX, randomHex());
        FixedIndexWriter.save(store, codec, name, fixedIndexes.get(d));
        DiskImage image = disks.get(d).image();
        entries.add(
            new Manifest.DiskEntry(
                disks.get(d).name(),
                image.size(),
                chunkSize,
                image.format(),
                name.name(),
                c.entryStored.get(d),
                c.entryNew.get(d),
                disks.get(d).tracking(),
                disks.get(d).changes() == null ? null : disks.get(d).changes().parentSnapshot(),
                c.entryUnchanged.get(d),
                disks.get(d).untracked()));
      }
      List<Manifest.StreamEntry> streamEntries = new ArrayList<>();
      for (int s = 0; s < streams.size(); s++) {
        BlobName name = new BlobName(BlobType.DYNAMIC_INDEX, randomHex());
        DynamicIndex dynamic = dynamicIndexes.get(s);
        DynamicIndexWriter.save(store, codec, name, dynamic);
        int e = disks.size() + s;
        streamEntries.add(
            new Manifest.StreamEntry(
                streams.get(s).name(),
                dynamic.size(),
                name.name(),
                c.entryStored.get(e),
                c.entryNew.get(e)));
      }
      // after the indexes are saved (a prune starting from now on keeps what they name)
      java.util.Set<PackId> packsUsed = packsUsed(fixedIndexes, dynamicIndexes);
      List<String> missing = missingPacks(packsUsed);
      if (!missing.isEmpty()) {
        throw new RepositoryLockedException(
            missing.size()
                + " pack(s) holding chunks of this backup were deleted while it ran ("
                + some(missing)
                + "): a prune ran without seeing this backup's lock; no snapshot was saved (the"
                + " repository is still valid): run the backup again");
      }
      SnapshotId id = SnapshotId.random();
      Manifest m =
          new Manifest(
              ManifestWriter.VERSION,
              id.hex(),
              time,
              request.host(),
              request.tags(),
              request.parent(),
              entries,
              streamEntries,
              applications);
      BlobName name = new BlobName(BlobType.SNAPSHOT, id.hex());
      if (Thread.currentThread().isInterrupted()) { // a cancelled job: the last moment to stop
        throw new RepositoryException(
            "the backup was interrupted before its snapshot was saved: no snapshot was saved (the"
                + " repository is still valid)");
      }
      byte[] manifest = ManifestWriter.write(m);
      try {
        // within the bounds every reader applies, or it would be saved only to be skipped as
        // damaged
        io.granule.engine.internal.repo.snapshot.ManifestReader.read(name, manifest);
      } catch (io.granule.engine.internal.repo.RepositoryCorruptedException e) {
        throw new IllegalArgumentException(
            "this snapshot would be unreadable, not saved: " + e.getMessage(), e);
      }
      store.save(name, codec.encode(name, manifest));
      try {
        requirePacksStillExist(packsUsed, name);
      } catch (IOException e) {
        // saved, and checked just before: a store that cannot list now does not undo the backup
        LOG.warn(
            "snapshot {} saved; its packs could not be checked again after the save: {}",
            id.hex(),
            e.toString());
      }
      String lastName =
          streams.isEmpty()
              ? disks.get(disks.size() - 1).name()
              : streams.get(streams.size() - 1).name();
      // Committed: a listener failing on the final report must not make it look failed.
      BackupProgress last;
      try {
        last = reporter.report(lastName, true);
      } catch (RuntimeException e) {
        LOG.warn("progress listener failed after the snapshot was saved: {}", e.toString());
        last = reporter.snapshot(lastName);
      }
      return new BackupResult(m, last, packer.packsWritten());
    } catch (IOException e) {
      throw new RepositoryException(
          "backup failed writing to the repository at "
              + store.location()
              + ": "
              + e.getMessage()
              + " (the repository is still valid: fix the cause and run the backup again)",
          e);
    } finally {
      fixedIndexes.forEach(FixedIndex::close); // a large one's temporary file
      dynamicIndexes.forEach(DynamicIndex::close);
      for (BackupRequest.NamedDisk d : disks) {
        if (d.changes() != null) {
          d.changes().parent().close(); // loaded for this backup alone
        }
      }
    }
  }

  /** Queues the disk's chunks; false if the backup failed meanwhile (nothing more is queued). */
  private boolean readDisk(
      int d,
      BackupRequest.NamedDisk disk,
      FixedIndex fixed,
      BlockingQueue<Task> work,
      Counters c,
      AtomicReference<Throwable> failure,
      DiskReads reads,
      Reporter reporter)
      throws IOException {
    DiskImage image = disk.image();
    long size = image.size();
    // The allocation map is asked for window by window: bounded memory for any disk size.
    long window = Math.max(1, ALLOCATION_WINDOW / chunkSize) * chunkSize;
    List<Extent> allocated = List.of();
    long windowEnd = 0;
    BackupRequest.Changes changes = disk.changes();
    if (changes != null
        && (changes.parent().count() != fixed.count()
            || changes.parent().chunkSize() != fixed.chunkSize()
            || changes.parent().diskSize() != fixed.diskSize())) {
      throw new IllegalArgumentException(
          "disk '" + disk.name() + "': the parent's index does not match the disk's size");
    }
    List<Extent> changed = changes == null ? List.of() : changes.changed();
    int ch = 0;
    int e = 0;
    for (int p = 0; p < fixed.count(); p++) {
      if (failure.get() != null) {
        return false;
      }
      long start = (long) p * chunkSize;
      int len = fixed.length(p);
      long end = start + len;
      if (changes != null) {
        while (ch < changed.size() && changed.get(ch).end() <= start) {
          ch++;
        }
        ChunkId kept;
        if ((ch >= changed.size() || changed.get(ch).offset() >= end)
            && ((kept = changes.parent().get(p)).isZero() || index.contains(kept))) {
          // unchanged since the parent: keep its chunk id, read nothing (unless the index lost
          // it, its pack gone or its index blob damaged: then it is read and stored again)
          fixed.set(p, kept);
          c.unchanged.addAndGet(len);
          c.entryUnchanged.addAndGet(d, len);
          c.read.addAndGet(len);
          c.entryRead.addAndGet(d, len);
          reporter.maybeReport(disk.name());
          continue;
        }
      }
      if (start >= windowEnd) {
        long n = Math.min(window, size - start);
        try {
          allocated = image.allocation(start, n);
        } catch (IOException ex) {
          throw unreadable(disk, start, ex);
        }
        windowEnd = start + n;
        e = 0;
      }
      while (e < allocated.size() && allocated.get(e).end() <= start) {
        e++;
      }
      if (e >= allocated.size() || allocated.get(e).offset() >= end) {
        c.zero.addAndGet(len);
        c.read.addAndGet(len);
        c.entryRead.addAndGet(d, len);
      } else {
        reads.queued();
        putUninterruptibly(work, new Task(d, fixed, p, null, len, disk, start));
      }
      reporter.maybeReport(disk.name());
    }
    return true;
  }

  private void readStream(
      int entry,
      BackupRequest.NamedStream stream,
      DynamicIndex dynamic,
      BlockingQueue<ByteBuffer> free,
      BlockingQueue<Task> work,
      AtomicReference<Throwable> failure,
      Reporter reporter)
      throws IOException {
    Chunker chunker = streamChunker.get();
    // A chunk never exceeds maxSize, so after compaction at least maxSize bytes are free.
    byte[] window = new byte[2 * chunker.maxSize()];
    int[] state = {0, 0}; // [0] = start of the pending chunk in window, [1] = bytes in window
    long[] offset = {0};
    IntConsumer emit =
        len -> {
          ByteBuffer buf = takeUninterruptibly(free);
          buf.clear().put(window, state[0], len);
          state[0] += len;
          offset[0] += len;
          putUninterruptibly(
              work, new Task(entry, dynamic, dynamic.append(len), buf, len, null, 0));
        };
    while (true) {
      rethrow(failure.get());
      int n;
      try {
        n = stream.stream().read(window, state[1], window.length - state[1]);
      } catch (IOException e) {
        throw new SourceUnreadableException(
            "unable to read stream '"
                + stream.name()
                + "' at offset "
                + (offset[0] + state[1] - state[0])
                + ": "
                + e.getMessage()
                + " (no snapshot was written)",
            e);
      }
      if (n < 0) {
        chunker.finish(emit);
        return;
      }
      int from = state[1];
      state[1] += n;
      chunker.update(window, from, n, emit);
      if (state[0] > 0) {
        System.arraycopy(window, state[0], window, 0, state[1] - state[0]);
        state[1] -= state[0];
        state[0] = 0;
      }
      reporter.maybeReport(stream.name());
    }
  }

  private static SourceUnreadableException unreadable(
      BackupRequest.NamedDisk disk, long offset, Exception e) {
    return new SourceUnreadableException(
        "unable to read disk '"
            + disk.name()
            + "' ("
            + disk.image()
            + ") at offset "
            + offset
            + ": "
            + e.getMessage()
            + " (no snapshot was written; the repository is unchanged apart from reusable chunks)",
        e);
  }

  private void work(
      BlockingQueue<Task> work,
      BlockingQueue<ByteBuffer> free,
      ChunkPacker packer,
      Counters c,
      ByteBuffer zeros,
      AtomicReference<Throwable> failure,
      DiskReads reads) {
    ChunkHasher h;
    ChunkPacker.Lane lane;
    ByteBuffer own;
    ChunkCompressor made;
    try {
      h = hasher.copy();
      lane = packer.lane();
      // Each worker reads its own disk chunks: two workers keep both cores busy, where one
      // reading thread handing chunks over could not keep up while it shared the cores with them.
      own = newBuffer(chunkSize);
      made = new ChunkCompressor(compressionLevel);
    } catch (Throwable ex) {
      // a worker that cannot start still takes its tasks, or the reader waits on a full queue
      failure.compareAndSet(null, ex);
      drain(work, free, reads);
      return;
    }
    try (ChunkCompressor compressor = made) {
      while (true) {
        Task t = takeUninterruptibly(work);
        if (t == STOP) {
          return;
        }
        try {
          ByteBuffer data = t.buffer();
          if (data == null) {
            data = own;
            try {
              // After a failure, only reads below the lowest unreadable offset still run: the
              // report names the first unreadable chunk, whichever worker got there first.
              if (failure.get() == null || reads.below(t.entry(), t.offset())) {
                t.disk().image().read(t.offset(), own.clear().limit(t.length()));
              }
            } catch (IOException | RuntimeException ex) {
              SourceUnreadableException e = unreadable(t.disk(), t.offset(), ex);
              reads.unreadable(t.entry(), t.offset(), e);
              throw e;
            } finally {
              reads.done();
            }
          }
          if (failure.get() == null) {
            process(t, data, h, compressor, packer, lane, c, zeros);
          }
        } catch (Throwable ex) {
          failure.compareAndSet(null, ex);
        } finally {
          if (t.buffer() != null) {
            free.add(t.buffer());
          }
        }
      }
    }
  }

  /** Takes tasks until {@link #STOP}, doing none: their reads are counted done, buffers freed. */
  private static void drain(
      BlockingQueue<Task> work, BlockingQueue<ByteBuffer> free, DiskReads reads) {
    while (true) {
      Task t = takeUninterruptibly(work);
      if (t == STOP) {
        return;
      }
      if (t.buffer() == null) {
        reads.done();
      } else {
        free.add(t.buffer());
      }
    }
  }

  /** Direct (read, hashed, compressed and encrypted in place) and page-aligned (for O_DIRECT). */
  private static ByteBuffer newBuffer(int size) {
    return ByteBuffer.allocateDirect(size + ALIGN).alignedSlice(ALIGN);
  }

  private static void process(
      Task t,
      ByteBuffer buffer,
      ChunkHasher h,
      ChunkCompressor compressor,
      ChunkPacker packer,
      ChunkPacker.Lane lane,
      Counters c,
      ByteBuffer zeros)
      throws IOException {
    int len = t.length();
    ByteBuffer data = buffer.duplicate().clear().limit(len);
    if (data.mismatch(zeros.duplicate().clear().limit(len)) < 0) {
      c.zero.addAndGet(len);
    } else {
      ChunkId id = h.hash(data.duplicate());
      t.list().set(t.position(), id);
      if (packer.claim(id)) {
        int stored = lane.add(id, data, compressor);
        c.stored.addAndGet(stored);
        c.entryStored.addAndGet(t.entry(), stored);
        c.entryNew.addAndGet(t.entry(), len);
      } else {
        c.dedup.addAndGet(len);
      }
    }
    c.read.addAndGet(len);
    c.entryRead.addAndGet(t.entry(), len);
  }

  /**
   * The packs holding this backup's chunks. They are checked before the snapshot is saved and again
   * after ({@link #missingPacks}): a prune that did not see this backup's lock (a store whose
   * listings leave blobs out) deleted the packs it reused, or those it wrote longer ago than
   * prune's margin, and the backup saved a snapshot that did not restore.
   */
  private java.util.Set<PackId> packsUsed(List<FixedIndex> fixed, List<DynamicIndex> dynamic) {
    java.util.Set<PackId> packs = new java.util.HashSet<>();
    for (FixedIndex f : fixed) {
      for (int p = 0; p < f.count(); p++) {
        addPack(packs, f.get(p));
      }
    }
    for (DynamicIndex d : dynamic) {
      for (int p = 0; p < d.count(); p++) {
        addPack(packs, d.get(p));
      }
    }
    return packs;
  }

  /**
   * Those of {@code packs} that are gone, sorted: one listing of the packs; a pack it leaves out is
   * asked for by name, since a listing can be partial.
   */
  private List<String> missingPacks(java.util.Set<PackId> packs) throws IOException {
    if (packs.isEmpty()) {
      return List.of();
    }
    java.util.Set<String> listed = new java.util.HashSet<>();
    for (BlobName n : store.list(BlobType.PACK)) {
      listed.add(n.name());
    }
    List<String> missing = new ArrayList<>();
    for (PackId p : packs) {
      String name = p.toString();
      if (!listed.contains(name) && store.stat(new BlobName(BlobType.PACK, name)).isEmpty()) {
        missing.add(name);
      }
    }
    java.util.Collections.sort(missing);
    return missing;
  }

  private static String some(List<String> names) {
    return String.join(", ", names.subList(0, Math.min(3, names.size())))
        + (names.size() > 3 ? ", …" : "");
  }

  /**
   * After the snapshot {@code name} was saved: a prune that missed this backup's lock and deleted
   * its packs in the seconds between the check before the save and the save made it a snapshot that
   * does not restore. It is deleted again (exit code 9).
   */
  private void requirePacksStillExist(java.util.Set<PackId> packs, BlobName name)
      throws IOException {
    List<String> missing = missingPacks(packs);
    if (missing.isEmpty()) {
      return;
    }
    String removed;
    try {
      store.delete(name);
      removed =
          "the snapshot was removed again (the repository is still valid): run the backup again";
    } catch (IOException | RuntimeException e) {
      removed =
          "snapshot "
              + name.name()
              + " is left and does not restore ("
              + e.getMessage()
              + "): 'granule forget' it, then run the backup again";
    }
    throw new RepositoryLockedException(
        missing.size()
            + " pack(s) holding chunks of this backup were deleted as it saved its snapshot ("
            + some(missing)
            + "): a prune ran without seeing this backup's lock; "
            + removed);
  }

  private void addPack(java.util.Set<PackId> packs, ChunkId id) {
    if (id == null || id.isZero()) {
      return;
    }
    ChunkLocation at = index.get(id);
    if (at != null && at != ChunkIndex.NO_LOCATION) {
      packs.add(at.pack());
    }
  }

  private static void rethrow(Throwable t) throws IOException {
    WorkerFailures.rethrow(t, "backup");
  }

  private static String randomHex() {
    byte[] b = new byte[32];
    RANDOM.nextBytes(b);
    return Hex.encode(b);
  }

  private static <T> T takeUninterruptibly(BlockingQueue<T> q) {
    boolean interrupted = false;
    try {
      while (true) {
        try {
          return q.take();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static <T> void putUninterruptibly(BlockingQueue<T> q, T item) {
    boolean interrupted = false;
    try {
      while (true) {
        try {
          q.put(item);
          return;
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static void joinUninterruptibly(Thread t) {
    boolean interrupted = false;
    while (t.isAlive()) {
      try {
        t.join();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * The disk reads the workers have queued and not finished, and the unreadable chunk at the lowest
   * offset: several workers read at once, and which of them fails first must not change what the
   * report names.
   */
  private static final class DiskReads {
    private long pending;
    private SourceUnreadableException first;
    private int firstEntry;
    private long firstOffset;

    synchronized void queued() {
      pending++;
    }

    synchronized void done() {
      if (--pending == 0) {
        notifyAll();
      }
    }

    /** Waits until no read is queued or running. */
    synchronized void awaitNone() {
      boolean interrupted = false;
      while (pending > 0) {
        try {
          wait();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }

    synchronized void unreadable(int entry, long offset, SourceUnreadableException e) {
      if (first == null || below(entry, offset)) {
        first = e;
        firstEntry = entry;
        firstOffset = offset;
      }
    }

    /** Whether a read at {@code offset} of item {@code entry} comes before the first unreadable. */
    synchronized boolean below(int entry, long offset) {
      return first != null && (entry < firstEntry || entry == firstEntry && offset < firstOffset);
    }

    /** The failure to report: the first unreadable chunk in place of any other unreadable one. */
    synchronized Throwable resolve(Throwable failure) {
      return failure instanceof SourceUnreadableException && first != null ? first : failure;
    }
  }

  private static final class Counters {
    final AtomicLong read = new AtomicLong();
    final AtomicLong stored = new AtomicLong();
    final AtomicLong dedup = new AtomicLong();
    final AtomicLong zero = new AtomicLong();
    // Per entry (disk or stream); streams added after the disks are read grow them, before any
    // task of theirs exists.
    final EntryCounter entryRead = new EntryCounter();
    final EntryCounter entryStored = new EntryCounter();
    final EntryCounter entryNew = new EntryCounter();
    final EntryCounter entryUnchanged = new EntryCounter();
    final AtomicLong unchanged = new AtomicLong();

    Counters(int entries) {
      for (int i = 0; i < entries; i++) {
        grow();
      }
    }

    void grow() {
      entryRead.grow();
      entryStored.grow();
      entryNew.grow();
      entryUnchanged.grow();
    }
  }

  private static final class EntryCounter {
    private final List<AtomicLong> values = new java.util.concurrent.CopyOnWriteArrayList<>();

    void grow() {
      values.add(new AtomicLong());
    }

    long get(int i) {
      return values.get(i).get();
    }

    void addAndGet(int i, long n) {
      values.get(i).addAndGet(n);
    }
  }

  private static final class Reporter {
    private final BackupListener listener;
    private final long total;
    private final Counters c;
    private final List<String> names;
    private final List<Long> sizes;
    private final long started;
    private long last;

    Reporter(
        BackupListener listener,
        long total,
        Counters c,
        List<String> names,
        List<Long> sizes,
        long started) {
      this.listener = listener;
      this.total = total;
      this.c = c;
      this.names = names;
      this.sizes = sizes;
      this.started = started;
      this.last = started;
    }

    void maybeReport(String disk) {
      long now = System.nanoTime();
      if (now - last >= REPORT_INTERVAL_NANOS) {
        last = now;
        report(disk, false);
      }
    }

    /** The final counts without telling the listener. */
    BackupProgress snapshot(String disk) {
      return progress(disk, true);
    }

    BackupProgress report(String disk, boolean done) {
      BackupProgress p = progress(disk, done);
      listener.progress(p);
      return p;
    }

    private BackupProgress progress(String disk, boolean done) {
      List<BackupProgress.EntryProgress> entries = new ArrayList<>(names.size());
      for (int i = 0; i < names.size(); i++) {
        entries.add(
            new BackupProgress.EntryProgress(
                names.get(i), sizes.get(i), c.entryRead.get(i), c.entryStored.get(i)));
      }
      BackupProgress p =
          new BackupProgress(
              disk,
              total,
              c.read.get(),
              c.stored.get(),
              c.dedup.get(),
              c.zero.get(),
              c.unchanged.get(),
              Duration.ofNanos(System.nanoTime() - started),
              done,
              entries);
      return p;
    }
  }
}
