package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.MetadataBlobs;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.PagedFile;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryUnreachableException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.EntrySpill;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.DynamicIndex;
import io.granule.engine.internal.repo.snapshot.DynamicIndexReader;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.FixedIndexReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.ManifestReader;
import io.granule.engine.internal.repo.store.ChunkReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntFunction;

/**
 * Checks a repository and names every damaged file with the snapshots it affects.
 *
 * <ul>
 *   <li>Structure: every pack's trailer is intact; every index blob is intact and each of its
 *       entries points at a pack that exists and whose trailer agrees; every snapshot manifest,
 *       fixed index and dynamic index is intact and every chunk they reference is indexed in a
 *       healthy pack.
 *   <li>With {@code readData}: every chunk record is read, its CRC checked, decoded, decompressed
 *       and hashed; a bad chunk affects exactly the snapshots that use it.
 * </ul>
 *
 * <p>Keeps what it learns per chunk off the Java heap, in two {@link ChunkIndex} tables (the pack
 * trailers' entries, keyed by pack and chunk, and the index blobs' chunk locations: 80-160 bytes of
 * file-backed mapping each per chunk), and on the heap only per pack (its id) and per damaged
 * chunk, so that a repository of 10^8 chunks verifies in the same heap as a small one; with {@code
 * readData}, each checking thread reads one pack at a time into a direct buffer it reuses, and
 * decodes its chunks into another. Read-only: it never changes the repository.
 */
public final class Verifier {
  /**
   * Threads that read and decode packs with {@code readData}: one per core, up to 2 (the CPU's
   * work: decryption, decompression and hashing). Property {@code granule.verify.threads}.
   */
  static final int PACK_THREADS =
      Math.max(
          1,
          Integer.getInteger(
              "granule.verify.threads", Math.min(2, Runtime.getRuntime().availableProcessors())));

  /** Threads that load pack trailers without {@code readData}: small reads, latency-bound on S3. */
  static final int LIST_THREADS = 4;

  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkHasher hasher;
  private final Path cacheDir;
  private final ChunkReader reader;
  private final Map<String, Problems> damage = new TreeMap<>();
  private final Set<String> affected = new TreeSet<>();

  /** Packs whose trailer is intact: their entries are in the table {@link #trailerLoad} fills. */
  private final Set<PackId> intactTrailers = new HashSet<>();

  /**
   * Loads every entry of an intact trailer, by pack and chunk ({@link ChunkIndex#putInPack}), into
   * a table while the packs are checked (see {@link ChunkIndex#loader}).
   */
  private ChunkIndex.Loader trailerLoad;

  private final Set<PackId> presentPacks = new HashSet<>();

  /** The index blobs and snapshot manifests the last {@link #verify} listed (and so read). */
  private final Set<BlobName> listedIndexes = new HashSet<>();

  private final Set<BlobName> listedSnapshots = new HashSet<>();

  /**
   * The index blobs the last {@link #verify} listed and read (those replaced meanwhile included): a
   * repair in the same run compares its own listing with them (audit N: a blob hidden from the
   * listings before and after verify, but read by it, was never read by repair).
   */
  public Set<BlobName> listedIndexes() {
    return Set.copyOf(listedIndexes);
  }

  /** The snapshot manifests the last {@link #verify} listed and read. */
  public Set<BlobName> listedSnapshots() {
    return Set.copyOf(listedSnapshots);
  }

  /** Packs whose data was read, and their bytes (the report's). */
  private int dataPacks;

  private long dataBytes;

  /** At most {@link #PACK_THREADS} packs' data read at once: each holds a pack's bytes. */
  private final java.util.concurrent.Semaphore dataReaders =
      new java.util.concurrent.Semaphore(PACK_THREADS);

  /** Picks the packs of random subsets ({@link DataSubset}). */
  private final java.util.Random random;

  private final Set<StoredChunk> badChunks = new HashSet<>();
  private final List<String> damagedIndexes = new ArrayList<>();
  private final java.util.concurrent.ConcurrentLinkedDeque<Scratch> scratch =
      new java.util.concurrent.ConcurrentLinkedDeque<>();

  private record Problems(List<String> problems, Set<String> snapshots) {}

  /** A chunk record in one pack: the same chunk may be bad in one pack and good in another. */
  private record StoredChunk(PackId pack, ChunkId id) {}

  public Verifier(BlobStore store, BlobCodec codec, ChunkHasher hasher, Path cacheDir) {
    this(store, codec, hasher, cacheDir, new java.security.SecureRandom(), 0);
  }

  /**
   * A verifier that also names as damaged every pack larger than {@code maxPackBytes} (the most a
   * pack of the repository's pack size can be: {@code UnlistedPacks.maxPackBytes}) and every entry
   * with impossible lengths, before reading its trailer.
   */
  public Verifier(
      BlobStore store, BlobCodec codec, ChunkHasher hasher, Path cacheDir, long maxPackBytes) {
    this(store, codec, hasher, cacheDir, new java.security.SecureRandom(), maxPackBytes);
  }

  /** The largest pack file this repository can have, or 0 if not known (no bound). */
  private final long maxPackBytes;

  /** A verifier whose random data subsets {@code random} picks (tests give it a seed). */
  Verifier(
      BlobStore store,
      BlobCodec codec,
      ChunkHasher hasher,
      Path cacheDir,
      java.util.Random random,
      long maxPackBytes) {
    this.random = random;
    this.maxPackBytes = maxPackBytes;
    this.store = store;
    this.codec = codec;
    this.hasher = hasher;
    this.cacheDir = cacheDir;
    this.reader = new ChunkReader(store, codec, null, hasher); // per-thread state inside
  }

  /** Runs the check, reading every pack's data if {@code readData}. */
  public VerifyReport verify(boolean readData, VerifyListener listener) {
    return verify(readData ? DataSubset.ALL : DataSubset.NONE, listener);
  }

  /** Runs the check, reading the data of the packs {@code subset} picks. */
  public VerifyReport verify(DataSubset subset, VerifyListener listener) {
    try {
      // Listed in the reverse of the backup's write order: everything the snapshots listed need
      // was written before them, so backups running meanwhile (under their shared locks) add
      // blobs this check may not see, never take away ones it needs.
      List<BlobName> snapshots = store.list(BlobType.SNAPSHOT);
      listedSnapshots.addAll(snapshots);
      List<BlobInfo> indexInfo = store.listInfo(BlobType.INDEX);
      List<BlobInfo> packInfo = store.listInfo(BlobType.PACK);
      List<BlobName> packs = packInfo.stream().map(BlobInfo::name).toList();
      Set<BlobName> dataOf = subset.select(packInfo, random);
      int done;
      List<BlobName> indexes = new ArrayList<>(indexInfo.stream().map(BlobInfo::name).toList());
      listedIndexes.addAll(indexes);
      // Both tables sized for the chunks the index blobs list: no doubling on the way.
      long expected = IndexReader.estimatedEntries(indexInfo);
      long entries = 0;
      long memory = ChunkIndex.defaultMemory() / 2; // two tables: together one index's budget
      try (ChunkIndex trailerTable = new ChunkIndex(cacheDir, expected, memory);
          ChunkIndex index = new ChunkIndex(cacheDir, expected, memory)) {
        try (ChunkIndex.Loader trailers = trailerTable.loader(expected);
            ChunkIndex.Loader indexLoad = index.loader(expected)) {
          trailerLoad = trailers;
          checkPacks(packs, dataOf, listener);
          trailers.finish();
          done = 0;
          // Entries are decided in the order of the trailer table (sorted lookups) but go to the
          // index in the order the blobs list them, as when a repository loads its index: the
          // first location listed for a chunk is the one a restore reads.
          BitSet rejected = new BitSet();
          int[][] firstOfBlob = {new int[indexes.size()]};
          Arrays.fill(firstOfBlob[0], Integer.MAX_VALUE); // sorted while blobs are read: answers
          // come as the blobs are read when the table is in memory
          try (EntrySpill listed = new EntrySpill(cacheDir);
              ChunkIndex.Lookups trailerChecks =
                  trailerTable.lookups(
                      (key, l, number, found) -> {
                        int blob = blobOf(firstOfBlob[0], number);
                        if (!agreesWithTrailer(key, l, found, indexes.get(blob))) {
                          rejected.set(number);
                        }
                      })) {
            List<BlobName> gone = new ArrayList<>();
            for (int round = 1, i = 0; i < indexes.size(); ) {
              for (; i < indexes.size(); i++) {
                firstOfBlob[0][i] = listed.size();
                long n = checkIndex(indexes.get(i), listed, trailerChecks);
                if (n < 0) {
                  gone.add(indexes.get(i));
                } else {
                  entries += n;
                }
                listener.checked(indexes.get(i).toString(), ++done, indexes.size());
              }
              if (!gone.isEmpty() && round++ < 3) {
                // replaced while verify ran (a backup that found packs missing writes the
                // replacement first): check the blobs listed since
                Set<BlobName> seen = new HashSet<>(indexes);
                for (BlobName n : store.list(BlobType.INDEX)) {
                  if (!seen.contains(n)) {
                    indexes.add(n);
                    listedIndexes.add(n);
                  }
                }
                if (indexes.size() > firstOfBlob[0].length) {
                  int from = firstOfBlob[0].length;
                  firstOfBlob[0] = Arrays.copyOf(firstOfBlob[0], indexes.size());
                  Arrays.fill(firstOfBlob[0], from, indexes.size(), Integer.MAX_VALUE);
                }
                gone.clear();
              }
            }
            for (BlobName g : gone) {
              problem(g.toString(), "listed, then gone while verify ran");
              damagedIndexes.add(g.toString());
            }
            trailerChecks.finish();
            listed.replay(
                (number, id, l) -> {
                  if (!rejected.get(number)) {
                    indexLoad.put(id, l);
                  }
                });
          }
          indexLoad.finish();
        }
        done = 0;
        List<BlobName> notFound = new ArrayList<>();
        for (BlobName s : snapshots) {
          if (!checkSnapshot(s, index)) {
            notFound.add(s);
          }
          listener.checked(s.toString(), ++done, snapshots.size());
        }
        int forgotten = notFound.size();
        if (!notFound.isEmpty()) {
          // forgotten meanwhile, or a manifest the storage lists and cannot find (audit Q4): a
          // forget deletes it, so one still listed is there and unreadable
          Set<BlobName> still = new HashSet<>(store.list(BlobType.SNAPSHOT));
          for (BlobName s : notFound) {
            if (still.contains(s)) {
              damaged(
                  s.toString(),
                  "listed, then not found, and listed again: the storage lists a manifest it"
                      + " cannot read (check the storage's health, then verify again)",
                  s.name());
              forgotten--;
            }
          }
        }
        List<Damage> out = new ArrayList<>();
        damage.forEach(
            (file, p) ->
                out.add(new Damage(file, List.copyOf(p.problems()), Set.copyOf(p.snapshots()))));
        return new VerifyReport(
            out,
            Set.copyOf(affected),
            snapshots.size() - forgotten,
            packs.size(),
            entries,
            subset.all() || (subset != DataSubset.NONE && dataOf.size() == packs.size()),
            subset.toString(),
            dataPacks,
            dataBytes);
      }
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to verify the repository at " + store.location() + ": " + e.getMessage(), e);
    }
  }

  /**
   * Stops the verify if {@code e}, met reading {@code name}, says the repository did not answer or
   * refused access: that is no damage of {@code name}, and calling it so would send its user to
   * forget intact snapshots.
   */
  private void stopIfUnreachable(BlobName name, Exception e) {
    RepositoryUnreachableException.throwIfUnreachable(name, store.location(), e);
  }

  private Problems at(String file) {
    return damage.computeIfAbsent(file, f -> new Problems(new ArrayList<>(), new TreeSet<>()));
  }

  private void problem(String file, String what) {
    List<String> problems = at(file).problems();
    if (!problems.contains(what)) {
      problems.add(what);
    }
  }

  /**
   * Checks {@code packs}, reading the data of those in {@code dataOf}, each pack on one thread, a
   * few packs ahead of the one whose result is recorded next, recording the results in list order
   * on this thread: on {@link #PACK_THREADS} threads if every pack's data is read, else on {@link
   * #LIST_THREADS} of which at most {@link #PACK_THREADS} read data at once (the memory of a pack
   * each).
   */
  private void checkPacks(List<BlobName> packs, Set<BlobName> dataOf, VerifyListener listener) {
    int threads = dataOf.size() == packs.size() && !packs.isEmpty() ? PACK_THREADS : LIST_THREADS;
    ExecutorService pool =
        Executors.newFixedThreadPool(
            threads,
            r -> {
              Thread t = new Thread(r, "granule-verify");
              t.setDaemon(true);
              return t;
            });
    try {
      ArrayDeque<Future<PackCheck>> ahead = new ArrayDeque<>();
      int next = 0;
      int done = 0;
      while (next < packs.size() || !ahead.isEmpty()) {
        while (next < packs.size() && ahead.size() < 2 * threads) {
          BlobName p = packs.get(next++);
          boolean readData = dataOf.contains(p);
          ahead.add(pool.submit(() -> checkPack(p, readData)));
        }
        PackCheck c = await(ahead.poll());
        record(c);
        listener.checked(c.name().toString(), ++done, packs.size());
      }
    } finally {
      pool.shutdownNow();
      awaitTermination(pool);
      for (Scratch s; (s = scratch.poll()) != null; ) {
        s.close();
      }
    }
  }

  /** Waits for the pool's threads to stop using their scratch (they are interrupted). */
  private static void awaitTermination(ExecutorService pool) {
    try {
      pool.awaitTermination(1, java.util.concurrent.TimeUnit.MINUTES);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static PackCheck await(Future<PackCheck> f) {
    try {
      return f.get();
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      if (e.getCause() instanceof Error r) {
        throw r;
      }
      throw new RepositoryException("verify failed: " + e.getCause(), e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new RepositoryException("verify interrupted", e);
    }
  }

  /**
   * What checking one pack found: its trailer's entries (null if unusable), problems, bad chunks.
   */
  private record PackCheck(
      BlobName name,
      PackId id,
      List<PackEntry> entries,
      List<String> problems,
      List<ChunkId> bad,
      long dataBytes) {
    PackCheck(
        BlobName name,
        PackId id,
        List<PackEntry> entries,
        List<String> problems,
        List<ChunkId> bad) {
      this(name, id, entries, problems, bad, -1);
    }
  }

  /** Records what checking a pack found (on the verifying thread). */
  private void record(PackCheck c) {
    for (String p : c.problems()) {
      problem(c.name().toString(), p);
    }
    if (c.id() == null) {
      return;
    }
    presentPacks.add(c.id());
    if (c.dataBytes() >= 0) {
      dataPacks++;
      dataBytes += c.dataBytes();
    }
    if (c.entries() != null) {
      intactTrailers.add(c.id());
      for (PackEntry e : c.entries()) {
        ChunkLocation l =
            new ChunkLocation(c.id(), e.offset(), e.storedLength(), e.rawLength(), e.flags());
        try {
          trailerLoad.putInPack(e.id(), l);
        } catch (IllegalArgumentException outOfRange) {
          problem(c.name().toString(), "chunk " + e.id() + ": impossible location " + l);
        }
      }
    }
    for (ChunkId bad : c.bad()) {
      badChunks.add(new StoredChunk(c.id(), bad));
    }
  }

  /** Checks one pack; touches nothing shared (several run at once). */
  private PackCheck checkPack(BlobName name, boolean readData) {
    List<String> problems = new ArrayList<>();
    List<ChunkId> bad = new ArrayList<>();
    PackId id;
    try {
      id = PackId.parse(name.name());
    } catch (IllegalArgumentException e) {
      problems.add("not a pack name: " + e.getMessage());
      return new PackCheck(name, null, null, problems, bad);
    }
    List<PackEntry> entries;
    BlobInfo info;
    try {
      info = PackReader.stat(store, name);
      entries =
          maxPackBytes > 0
              ? io.granule.engine.internal.repo.store.UnlistedPacks.trailer(
                  store, codec, name, info, maxPackBytes)
              : PackReader.loadTrailer(store, name, info);
    } catch (IOException | RepositoryException e) {
      stopIfUnreachable(name, e);
      problems.add(e.getMessage());
      return new PackCheck(name, id, null, problems, bad);
    } catch (RuntimeException e) { // a trailer no check foresaw: this pack's damage, not verify's
      problems.add("unreadable trailer: " + e);
      return new PackCheck(name, id, null, problems, bad);
    }
    if (!readData) {
      return new PackCheck(name, id, entries, problems, bad);
    }
    try {
      dataReaders.acquire();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new RepositoryException("verify interrupted", e);
    }
    try {
      Scratch s = scratch.pollFirst();
      if (s == null) {
        s = new Scratch();
      }
      try {
        checkData(name, info.size(), entries, s, problems, bad);
      } finally {
        scratch.push(s);
      }
    } finally {
      dataReaders.release();
    }
    return new PackCheck(name, id, entries, problems, bad, info.size());
  }

  /**
   * Reads pack {@code name} of {@code size} bytes whole into {@code s}'s buffer, checks its
   * checksums and decodes each of its {@code entries} (known good from its trailer) into {@code
   * s}'s plaintext buffer: the memory a thread needs is one pack and one chunk, reused.
   */
  private void checkData(
      BlobName name,
      long size,
      List<PackEntry> entries,
      Scratch s,
      List<String> problems,
      List<ChunkId> bad) {
    ByteBuffer pack;
    try {
      if (size > MAX_PACK_BYTES) {
        throw new IOException(size + " bytes, more than a pack can have (" + MAX_PACK_BYTES + ")");
      }
      try {
        pack = s.pack = ChunkReader.room(s.pack, (int) size);
      } catch (OutOfMemoryError e) {
        throw new RepositoryException(
            "unable to verify pack "
                + name
                + ": its "
                + size
                + " bytes do not fit in memory; allow more with"
                + " GRANULE_JAVA_OPTS=-XX:MaxDirectMemorySize=…",
            e);
      }
      store.load(name, 0, pack);
      pack.flip();
    } catch (IOException e) {
      stopIfUnreachable(name, e);
      problems.add("unreadable: " + e.getMessage());
      entries.forEach(e2 -> bad.add(e2.id()));
      return;
    }
    boolean whole = true; // parse checks every record's checksum: no need to again
    try {
      PackReader.parse(name, pack);
    } catch (RepositoryException e) {
      problems.add(e.getMessage());
      whole = false;
    }
    for (PackEntry e : entries) {
      try {
        int off = (int) e.offset();
        if (!whole) {
          PackReader.checkRecord(name, e, pack, off);
        }
        if (e.rawLength() < 0 || e.rawLength() > ChunkIndex.MAX_RAW_LENGTH) {
          throw new RepositoryCorruptedException(
              "pack "
                  + name
                  + " chunk "
                  + e.id()
                  + ": impossible plaintext length "
                  + e.rawLength());
        }
        ByteBuffer record = pack.duplicate().limit(off + e.storedLength()).position(off);
        ByteBuffer plain = s.plain = ChunkReader.room(s.plain, e.rawLength());
        s.decoder.decode(e.id(), name, record, e.flags(), e.rawLength(), plain);
      } catch (RepositoryException ex) {
        bad.add(e.id());
        problems.add(ex.getMessage()); // repeats are dropped when recorded
      }
    }
  }

  /**
   * The largest pack verify reads whole: a repository's packs are at most 1 GiB and a chunk beyond
   * it (see RepositoryConfig); a larger file in data/ is damage.
   */
  private static final long MAX_PACK_BYTES = (1L << 30) + (16 << 20);

  /**
   * What a pack-checking thread reuses from pack to pack (taken from {@link #scratch} for one
   * pack): the pack's bytes and a chunk's plaintext in direct buffers that grow to the largest
   * seen, and a decoder with its own zstd context and hasher.
   */
  private final class Scratch implements AutoCloseable {
    final ChunkReader.Decoder decoder = reader.decoder();
    ByteBuffer pack = ByteBuffer.allocateDirect(0);
    ByteBuffer plain = ByteBuffer.allocateDirect(0);

    @Override
    public void close() {
      decoder.close();
    }
  }

  /** The number of the index blob whose entries start at or before entry {@code number}. */
  private static int blobOf(int[] firstOfBlob, int number) {
    int i = Arrays.binarySearch(firstOfBlob, number);
    if (i < 0) {
      return -i - 2;
    }
    while (i + 1 < firstOfBlob.length && firstOfBlob[i + 1] == number) {
      i++; // blobs without entries start where the next one does
    }
    return i;
  }

  /**
   * Checks index blob {@code name}: each entry's location is possible and its pack exists; the
   * entries go to {@code listed} in order, and those of a pack with an intact trailer are queued
   * for {@link #agreesWithTrailer} under their number there. Returns the number of entries, or -1
   * if the blob is gone (replaced since it was listed).
   */
  private long checkIndex(BlobName name, EntrySpill listed, ChunkIndex.Lookups trailerChecks) {
    List<IndexEntry> entries;
    try {
      entries = MetadataBlobs.read(store, codec, name, IndexReader::read);
    } catch (NoSuchFileException e) {
      return -1; // listed, then gone: the caller lists the blobs again
    } catch (IOException | RepositoryException | IllegalArgumentException e) {
      stopIfUnreachable(name, e);
      problem(name.toString(), e.getMessage());
      damagedIndexes.add(name.toString());
      return 0;
    }
    for (IndexEntry e : entries) {
      ChunkLocation l = e.location();
      String why = ChunkIndex.impossible(l, codec);
      if (why != null) {
        problem(name.toString(), "chunk " + e.id() + ": " + why);
        continue;
      }
      int number = listed.add(e.id(), l);
      if (!presentPacks.contains(l.pack())) {
        if (!existsSinceListed(l.pack())) {
          problem(ChunkReader.packName(l.pack()).toString(), "missing, listed by " + name);
        }
        continue;
      }
      if (!intactTrailers.contains(l.pack())) {
        continue;
      }
      // (a zero key, which no trailer entry has, finds nothing: the entry disagrees)
      trailerChecks.add(ChunkIndex.inPackKey(l.pack(), e.id()), l, number);
    }
    return entries.size();
  }

  /**
   * Whether an index entry, keyed by pack and chunk ({@link ChunkIndex#inPackKey}) at {@code l},
   * agrees with the trailer's entry {@code found} for that key; if not, the blob that lists it is
   * named.
   */
  private boolean agreesWithTrailer(
      ChunkId key, ChunkLocation l, ChunkLocation found, BlobName name) {
    ChunkLocation p = found != null && found.pack().equals(l.pack()) ? found : null;
    if (l.equals(p)) {
      return true;
    }
    problem(
        name.toString(),
        "chunk "
            + ChunkIndex.inPackKey(l.pack(), key) // the fold undone: the chunk's id
            + " disagrees with the trailer of pack "
            + ChunkReader.packName(l.pack())
            + ": actual="
            + l
            + " expected="
            + (p == null ? "no such chunk in it" : p));
    return false;
  }

  /**
   * Whether pack {@code id}, not in the listing verify started from, is in the store now (asked
   * once per pack): written since by a backup running beside verify, whose index blob verify read
   * when it listed the blobs again; or left out by a listing that lags. Such a pack is not checked.
   */
  private boolean existsSinceListed(PackId id) {
    return packsSinceListed.computeIfAbsent(
        id,
        p -> {
          try {
            return store.stat(ChunkReader.packName(p)).isPresent();
          } catch (IOException e) {
            stopIfUnreachable(ChunkReader.packName(p), e);
            return false; // reported as missing: verify cannot tell
          }
        });
  }

  private final Map<PackId, Boolean> packsSinceListed = new java.util.HashMap<>();

  /**
   * Checks snapshot {@code name}: its manifest, its fixed and dynamic indexes and that every chunk
   * they use is indexed in a healthy pack. False if its manifest is gone (forgotten since it was
   * listed: not damage).
   */
  private boolean checkSnapshot(BlobName name, ChunkIndex index) {
    String snap = name.name();
    Manifest m;
    try {
      m = MetadataBlobs.read(store, codec, name, ManifestReader::read);
    } catch (NoSuchFileException e) {
      return false; // forgotten while verify ran (forget runs under a shared lock)
    } catch (IOException | RepositoryException | IllegalArgumentException e) {
      stopIfUnreachable(name, e);
      damaged(name.toString(), e.getMessage(), snap);
      return true;
    }
    for (Manifest.DiskEntry d : m.disks()) {
      BlobName fx = new BlobName(BlobType.FIXED_INDEX, d.fixedIndex());
      FixedIndex fixed;
      try {
        fixed = FixedIndexReader.load(store, codec, fx);
      } catch (NoSuchFileException e) {
        damaged(fx.toString(), "missing, listed by " + name + " for disk '" + d.name() + "'", snap);
        continue;
      } catch (PagedFile.NoRoomException local) {
        throw local; // no room here to check it: not damage
      } catch (IOException | RepositoryException | IllegalArgumentException e) {
        stopIfUnreachable(fx, e);
        damaged(fx.toString(), e.getMessage(), snap);
        continue;
      }
      if (fixed.diskSize() != d.size() || fixed.chunkSize() != d.chunkSize()) {
        damaged(
            fx.toString(),
            "disagrees with "
                + name
                + ": actual=size "
                + fixed.diskSize()
                + " chunk "
                + fixed.chunkSize()
                + " expected=size "
                + d.size()
                + " chunk "
                + d.chunkSize(),
            snap);
      }
      try (fixed) {
        checkChunks(snap, fx, "disk '" + d.name() + "'", fixed.count(), fixed::get, index);
      }
    }
    for (Manifest.StreamEntry st : m.streams()) {
      BlobName dn = new BlobName(BlobType.DYNAMIC_INDEX, st.dynamicIndex());
      DynamicIndex dynamic;
      try {
        dynamic = DynamicIndexReader.load(store, codec, dn);
      } catch (NoSuchFileException e) {
        damaged(
            dn.toString(), "missing, listed by " + name + " for stream '" + st.name() + "'", snap);
        continue;
      } catch (PagedFile.NoRoomException local) {
        throw local; // no room here to check it: not damage
      } catch (IOException | RepositoryException | IllegalArgumentException e) {
        stopIfUnreachable(dn, e);
        damaged(dn.toString(), e.getMessage(), snap);
        continue;
      }
      if (dynamic.size() != st.size()) {
        damaged(
            dn.toString(),
            "disagrees with "
                + name
                + ": actual=size "
                + dynamic.size()
                + " expected=size "
                + st.size(),
            snap);
      }
      try (dynamic) {
        checkChunks(snap, dn, "stream '" + st.name() + "'", dynamic.count(), dynamic::get, index);
      }
    }
    return true;
  }

  private void damaged(String file, String what, String snap) {
    problem(file, what);
    at(file).snapshots().add(snap);
    affected.add(snap);
  }

  /** Ids an item (a disk or stream) may have before verify sorts its lookups. */
  private static final int SORTED_LOOKUPS = 1 << 16;

  private void checkChunks(
      String snap,
      BlobName list,
      String what,
      int count,
      IntFunction<ChunkId> idAt,
      ChunkIndex index) {
    long[] unindexedCount = {0};
    ChunkId[] someUnindexed = {null};
    ChunkIndex.Answer tally =
        (id, ignored, tag, l) -> {
          if (l == null) {
            if (unindexedCount[0]++ == 0) {
              someUnindexed[0] = id;
            }
            affected.add(snap);
          } else if (!intactTrailers.contains(l.pack())
              || badChunks.contains(new StoredChunk(l.pack(), id))) {
            at(ChunkReader.packName(l.pack()).toString()).snapshots().add(snap);
            affected.add(snap);
          }
        };
    if (index.resident() || count < SORTED_LOOKUPS) {
      for (int p = 0; p < count; p++) {
        ChunkId id = idAt.apply(p);
        if (!id.isZero()) {
          tally.accept(id, null, 0, index.get(id));
        }
      }
    } else { // a table paged through its file: lookups sorted by where they land
      try (ChunkIndex.Lookups lookups = index.lookups(tally)) {
        for (int p = 0; p < count; p++) {
          ChunkId id = idAt.apply(p);
          if (!id.isZero()) {
            lookups.add(id, ChunkIndex.NO_LOCATION, 0);
          }
        }
        lookups.finish();
      }
    }
    long unindexed = unindexedCount[0];
    ChunkId firstUnindexed = someUnindexed[0];
    if (unindexed > 0) {
      String problem =
          what
              + " references "
              + unindexed
              + " chunks that no intact index lists, one is "
              + firstUnindexed;
      if (damagedIndexes.isEmpty()) {
        damaged(list.toString(), problem, snap);
      } else {
        for (String i : damagedIndexes) {
          at(i).snapshots().add(snap);
        }
      }
    }
  }
}
