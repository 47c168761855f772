package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.MetadataBlobs;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryUnreachableException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackFormat;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.DynamicIndexReader;
import io.granule.engine.internal.repo.snapshot.FixedIndexReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.ManifestReader;
import io.granule.engine.internal.repo.store.ChunkPacker;
import io.granule.engine.internal.repo.store.ChunkReader;
import io.granule.engine.internal.repo.store.UnlistedPacks;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Deletes what no snapshot references. Must run under the repository's exclusive lock (no backup
 * adds packs meanwhile); the caller passes a store that checks the lock before every save and
 * delete.
 *
 * <p><b>Mark</b>: every manifest, then every fixed and dynamic index it names, gives the live chunk
 * ids (kept off the heap in a {@link ChunkIndex}), and so does every item index no manifest names
 * that was written within the safety margin. A damaged or missing manifest or item index of a
 * snapshot stops prune before it changes anything.
 *
 * <p><b>Sweep plan</b>: every index blob is read; each live chunk is assigned to the first existing
 * pack that holds it (other copies are garbage). Packs no index lists (left by a crashed backup, or
 * listed only by a damaged index blob) have their trailer read, and are used for live chunks found
 * nowhere else, each record only once it is checked as {@code verify --read-data} checks it
 * (decoded, authenticated where encrypted, hashed to its id: the trailer itself is not
 * authenticated, and a forged one could otherwise have the real packs deleted as duplicates). A
 * live chunk found nowhere stops prune. Then each pack is: <i>deleted</i> if it holds no live
 * chunk; <i>repacked</i> if its live chunks are less than {@code repackBelow} of its size; else
 * <i>kept</i>. An index blob is <i>rewritten</i> if it lists a pack that is not kept (or that is
 * missing), or is damaged. <b>Safety margin</b>: packs and item indexes written less than {@link
 * Options#keepRecent} ago are kept whatever they hold, and an index blob written then is not
 * rewritten for listing a pack the listing did not show: a backup whose lock went stale while its
 * uploads were still on the way may yet commit a snapshot that uses them.
 *
 * <p><b>Execution order</b> (each step durable before the next, so a crash anywhere leaves a valid
 * repository and a second prune finishes the job):
 *
 * <ol>
 *   <li>live chunks of repacked packs are read, checked (hash), and written into new packs, then
 *       new index blobs listing them (the backup write order);
 *   <li>new index blobs listing every entry of kept packs that a rewritten index blob listed (and
 *       the checked live records of kept packs no index listed);
 *   <li>(the snapshots are listed again: one the mark did not see stops prune, see {@code
 *       #noSnapshotSince})
 *   <li>the rewritten index blobs are deleted: every kept pack is now listed by a new blob, every
 *       live chunk of a repacked pack by the blobs of step 1;
 *   <li>the deleted and repacked packs are deleted: no index blob lists them any more;
 *   <li>fixed and dynamic indexes no manifest names are deleted.
 * </ol>
 *
 * A pack to repack found damaged in step 1 is kept as it is instead (its entries go to the new
 * index blobs of step 2 like any kept pack's) and reported: {@code granule repair} salvages what it
 * holds ({@link Repairer}). Prune reads no other pack's data, so damage elsewhere goes unseen here.
 *
 * <p>A crash after step 1 or 2 leaves duplicates (harmless, the next prune removes them); after 3,
 * packs no index lists (garbage; the next backup may index them again, the next prune deletes
 * them).
 */
public final class Pruner {
  private static final Logger LOG = LoggerFactory.getLogger(Pruner.class);
  private static final ChunkLocation MARK = new ChunkLocation(new PackId(0, 0), 0, 0, 0, 0);
  private static final int ENTRIES_PER_INDEX = IndexWriter.MAX_ENTRIES;
  private static final BlobInfo UNKNOWN = new BlobInfo(BlobName.CONFIG, 0); // time not known

  /**
   * What prune does: {@code dryRun} changes nothing; packs less live than {@code repackBelow} are
   * rewritten; packs, index blobs and item indexes written less than {@code keepRecent} ago are
   * neither deleted nor rewritten ({@link Duration#ZERO}: no margin).
   */
  public record Options(boolean dryRun, double repackBelow, Duration keepRecent) {
    public Options {
      if (!(repackBelow >= 0 && repackBelow <= 1)) {
        throw new IllegalArgumentException(
            "--repack-below must be between 0 and 1, not " + repackBelow);
      }
      if (keepRecent == null || keepRecent.isNegative()) {
        throw new IllegalArgumentException(
            "--keep-recent must be a duration of 0 or more (such as 1h, 30m or 0), not "
                + keepRecent);
      }
    }
  }

  /** Progress: {@code phase} with {@code done} of {@code total} units. */
  @FunctionalInterface
  public interface Listener {
    void progress(String phase, long done, long total);
  }

  /** Temporary files younger than this are left alone (a writer that ignores locks, say). */
  static final Duration LEFTOVER_AGE = Duration.ofMinutes(1);

  /**
   * What prune did (or, with dry-run, would do).
   *
   * @param snapshots manifests marked
   * @param liveChunks distinct chunk ids snapshots use, and the item indexes the margin spares
   * @param packs packs in the repository before
   * @param packBytes their total size
   * @param packsDeleted packs with no live chunk (deleted)
   * @param packsRepacked packs below the threshold (live chunks rewritten, pack deleted)
   * @param packsKept packs left alone, the spared ones among them
   * @param packsSpared packs written within {@code keepRecent} that would otherwise have been
   *     deleted or repacked
   * @param bytesSpared their total size
   * @param orphanPacks packs no index blob listed
   * @param bytesDeleted total size of deleted and repacked packs
   * @param bytesRepacked size of the new packs repacking wrote (dry run: the stored bytes of the
   *     live chunks it would move)
   * @param packsWritten new packs written by repacking
   * @param indexesDeleted index blobs deleted (rewritten or damaged)
   * @param indexesWritten new index blobs
   * @param fixedIndexesDeleted fixed indexes no manifest names
   * @param dynamicIndexesDeleted dynamic indexes no manifest names
   * @param itemIndexesSpared fixed and dynamic indexes no manifest names, written within {@code
   *     keepRecent} (the indexes of a backup not yet committed, say): kept
   * @param leftoverBytesDeleted size of the temporary files killed writers left, deleted
   * @param seconds wall time
   * @param damagedPacks packs to repack that were found damaged: left as they were (counted as
   *     kept), for {@code granule repair} (a dry run reads no pack, so it finds none)
   */
  public record Report(
      boolean dryRun,
      int snapshots,
      long liveChunks,
      int packs,
      long packBytes,
      int packsDeleted,
      int packsRepacked,
      int packsKept,
      int packsSpared,
      long bytesSpared,
      int orphanPacks,
      long bytesDeleted,
      long bytesRepacked,
      long packsWritten,
      int indexesDeleted,
      long indexesWritten,
      int fixedIndexesDeleted,
      int dynamicIndexesDeleted,
      int itemIndexesSpared,
      long leftoverBytesDeleted,
      double seconds,
      List<String> damagedPacks) {

    /** Net bytes freed: deleted packs minus what repacking wrote, plus leftover files deleted. */
    public long bytesFreed() {
      return bytesDeleted - bytesRepacked + leftoverBytesDeleted;
    }
  }

  private enum Action {
    KEEP,
    REPACK,
    DELETE
  }

  /**
   * Takes from listed pack {@code st}'s trailer the records of live chunks nothing has placed yet,
   * each once its check passes, into {@code assigned} and {@code st.unplaced}; how many. A trailer
   * or record that does not read supplies nothing (its listed entries are as they were).
   */
  private long unplacedRecords(
      PackState st, ChunkIndex live, ChunkIndex assigned, ChunkReader checker, long maxPackBytes)
      throws IOException {
    List<PackEntry> wanted = new ArrayList<>();
    List<PackEntry> good;
    try {
      Set<ChunkId> seen = new HashSet<>();
      for (PackEntry e :
          UnlistedPacks.trailer(
              store, codec, st.name, PackReader.stat(store, st.name), maxPackBytes)) {
        if (live.contains(e.id()) && !assigned.contains(e.id()) && seen.add(e.id())) {
          wanted.add(e);
        }
      }
      if (wanted.isEmpty()) {
        return 0;
      }
      good = UnlistedPacks.checkRecords(store, st.name, wanted, checker, (e, ex) -> {});
    } catch (IOException | RepositoryException e) {
      RepositoryUnreachableException.throwIfUnreachable(st.name, store.location(), e);
      LOG.debug("prune: the trailer of pack {} does not read: {}", st.name, e.getMessage());
      return 0;
    }
    List<PackEntry> used = use(st, good, assigned);
    st.unplaced = used;
    return used.size();
  }

  /**
   * Assigns to pack {@code st} the live chunks of the checked records {@code good} not assigned
   * yet, counting them as its live part; those records.
   */
  private static List<PackEntry> use(PackState st, List<PackEntry> good, ChunkIndex assigned) {
    List<PackEntry> used = new ArrayList<>(good.size());
    for (PackEntry e : good) {
      if (assigned.put(
          e.id(),
          new ChunkLocation(st.id, e.offset(), e.storedLength(), e.rawLength(), e.flags()))) {
        st.liveBytes += e.storedLength();
        st.liveChunks++;
        used.add(e);
      }
    }
    return used;
  }

  private static final class PackState {
    final PackId id;
    final BlobName name;
    long size;
    boolean recent; // written within the margin: kept whatever its chunks
    boolean indexed;
    long liveBytes;
    long liveChunks;
    List<PackEntry> trailer; // no index lists it: the checked live records it supplies
    // listed, and its records only a damaged index blob placed: the checked live ones it supplies
    List<PackEntry> unplaced = List.of();
    Action action;

    PackState(PackId id, BlobName name) {
      this.id = id;
      this.name = name;
    }

    /**
     * The part of the pack file that live chunks need: their records and trailer entries, and the
     * pack's header and footer; 1 for a pack without garbage.
     */
    double liveFraction() {
      long needed =
          PackFormat.HEADER_SIZE
              + PackFormat.FOOTER_SIZE
              + liveBytes
              + liveChunks * PackFormat.ENTRY_SIZE;
      return size <= 0 ? 0 : Math.min(1.0, (double) needed / size);
    }
  }

  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkHasher hasher;
  private final Path cacheDir;
  private final int packSize;
  private final int compressionLevel;
  private final Instant now;

  /**
   * @param now the time the margin of {@link Options#keepRecent} counts back from: the earlier of
   *     this host's clock and the store's (a store whose clock is behind dates its blobs earlier;
   *     counting from this host's clock would take a blob written minutes ago for an old one)
   */
  public Pruner(
      BlobStore store,
      BlobCodec codec,
      ChunkHasher hasher,
      Path cacheDir,
      int packSize,
      int compressionLevel,
      Instant now) {
    this.now = now;
    this.store = store;
    this.codec = codec;
    this.hasher = hasher;
    this.cacheDir = cacheDir;
    this.packSize = packSize;
    this.compressionLevel = compressionLevel;
  }

  /**
   * Runs prune.
   *
   * @throws RepositoryCorruptedException if a manifest or item index is damaged, or snapshots use
   *     chunks that no pack holds (nothing is changed), or a pack's trailer does not hold the live
   *     chunks the index places in it (nothing is deleted). A pack to repack that is damaged (a
   *     checksum, its decryption or a hash fails) is no reason to stop: it is kept as it is, with
   *     its index entries, and named in {@link Report#damagedPacks}
   * @throws RepositoryException if the store fails (the repository stays valid)
   */
  public Report run(Options options, Listener listener) {
    long started = System.nanoTime();
    long leftovers = 0;
    // Blobs written after this are spared: a backup whose lock went stale (its process killed
    // while its upload was still on the way, or the lock removed by hand) may still commit a
    // snapshot that uses them.
    Instant cutoff = options.keepRecent().isZero() ? null : now.minus(options.keepRecent());
    if (!options.dryRun()) {
      // Under the exclusive lock no writer is mid-save: a temporary file is a killed one's.
      try {
        Duration age = options.keepRecent();
        leftovers = store.deleteLeftovers(age.compareTo(LEFTOVER_AGE) > 0 ? age : LEFTOVER_AGE);
      } catch (IOException e) {
        throw failed(e);
      }
    }
    long memory = ChunkIndex.defaultMemory() / 3; // at most three tables at once share the budget
    long expected; // distinct chunks at most: what the index blobs list
    try {
      expected = IndexReader.estimatedEntries(store.listInfo(BlobType.INDEX));
    } catch (IOException e) {
      throw failed(e);
    }
    try (ChunkIndex live = new ChunkIndex(cacheDir, expected, memory);
        ChunkIndex assigned = new ChunkIndex(cacheDir, expected, memory);
        ChunkIndex.Loader marks = live.loader(expected)) {
      // Mark (through a loader: a table over its budget is written nearly in order).
      Set<String> fixedRefs = new HashSet<>();
      Set<String> dynamicRefs = new HashSet<>();
      List<BlobName> snapshots = store.list(BlobType.SNAPSHOT);
      int done = 0;
      for (BlobName n : snapshots) {
        Manifest m;
        try {
          m = MetadataBlobs.read(store, codec, n, ManifestReader::read);
        } catch (NoSuchFileException e) {
          // Under the exclusive lock nothing forgets a snapshot: a listed manifest the store says
          // is not there is the store's error (a lagging or misrouted one). Going on would delete
          // that snapshot's data as garbage.
          throw listedButMissing(n, e);
        } catch (RepositoryException | IllegalArgumentException e) {
          throw new RepositoryCorruptedException(
              "snapshot "
                  + n
                  + " is damaged: prune stopped without changing anything (run 'granule verify';"
                  + " a snapshot beyond repair can be removed with 'granule forget ID'): "
                  + e.getMessage(),
              e);
        }
        for (Manifest.DiskEntry d : m.disks()) {
          BlobName fx = new BlobName(BlobType.FIXED_INDEX, d.fixedIndex());
          fixedRefs.add(fx.name());
          var f =
              load(
                  fx,
                  "fixed index of snapshot " + m.id(),
                  blob -> FixedIndexReader.load(store, codec, blob));
          try (f) {
            mark(marks, f.count(), f::get);
          }
        }
        for (Manifest.StreamEntry s : m.streams()) {
          BlobName dn = new BlobName(BlobType.DYNAMIC_INDEX, s.dynamicIndex());
          dynamicRefs.add(dn.name());
          var dyn =
              load(
                  dn,
                  "dynamic index of snapshot " + m.id(),
                  blob -> DynamicIndexReader.load(store, codec, blob));
          try (dyn) {
            mark(marks, dyn.count(), dyn::get);
          }
        }
        listener.progress("mark", ++done, snapshots.size());
      }
      // Item indexes no manifest names but written within the margin are roots too: the indexes
      // of a backup whose snapshot may yet land. Their chunks stay, whatever pack holds them (a
      // long backup's first packs are older than the margin; a backup deduplicates against
      // chunks that only snapshots forgotten since then used).
      // (listed once, here: the same listing decides what is garbage below)
      List<BlobInfo> fixedItems = store.listInfo(BlobType.FIXED_INDEX);
      List<BlobInfo> dynamicItems = store.listInfo(BlobType.DYNAMIC_INDEX);
      int roots = 0;
      if (cutoff != null) {
        roots += markRecent(marks, fixedItems, fixedRefs, cutoff);
        roots += markRecent(marks, dynamicItems, dynamicRefs, cutoff);
      }
      marks.finish();

      // Which packs exist, and which index blobs list them.
      Map<PackId, PackState> packs = new LinkedHashMap<>();
      long packBytes = 0;
      for (BlobInfo p : store.listInfo(BlobType.PACK)) {
        PackId id;
        try {
          id = PackId.parse(p.name().name());
        } catch (IllegalArgumentException e) {
          continue;
        }
        PackState st = new PackState(id, p.name());
        st.size = p.size();
        st.recent = cutoff != null && p.writtenAfter(cutoff);
        packBytes += st.size;
        packs.put(id, st);
      }
      Map<BlobName, Set<PackId>> indexPacks = new LinkedHashMap<>();
      List<BlobName> damagedIndexes = new ArrayList<>();
      Set<BlobName> recentIndexes = new HashSet<>();
      Map<BlobName, BlobInfo> indexTimes = new HashMap<>();
      List<BlobName> indexNames = new ArrayList<>();
      for (BlobInfo i : store.listInfo(BlobType.INDEX)) {
        indexNames.add(i.name());
        indexTimes.put(i.name(), i);
      }
      done = 0;
      for (BlobName n : indexNames) {
        List<IndexEntry> entries;
        try {
          entries = MetadataBlobs.read(store, codec, n, IndexReader::read);
        } catch (NoSuchFileException e) {
          throw listedButMissing(n, e); // as for manifests: nothing else deletes index blobs now
        } catch (io.granule.engine.internal.repo.UnsupportedRepositoryVersionException e) {
          // a newer granule's: replaced, what that version added to it would be lost
          throw new io.granule.engine.internal.repo.UnsupportedRepositoryVersionException(
              "prune: nothing deleted: " + e.getMessage());
        } catch (RepositoryException | IllegalArgumentException e) {
          LOG.warn("prune: damaged index blob {} is replaced: {}", n, e.getMessage());
          damagedIndexes.add(n);
          continue;
        }
        String why = null;
        for (IndexEntry e : entries) {
          why = ChunkIndex.impossible(e.location(), codec);
          if (why != null) {
            why = "chunk " + e.id() + ": " + why;
            break;
          }
        }
        if (why != null) {
          // all of a blob or none of it, as a backup reads it (Repository.eachIndexEntry)
          LOG.warn("prune: damaged index blob {} is replaced: {}", n, why);
          damagedIndexes.add(n);
          continue;
        }
        Set<PackId> listed = new HashSet<>();
        for (IndexEntry e : entries) {
          listed.add(e.location().pack());
          PackState st = packs.get(e.location().pack());
          if (st == null) {
            continue; // a missing pack: the entry goes when its index blob is rewritten
          }
          st.indexed = true;
          if (live.contains(e.id()) && assigned.put(e.id(), e.location())) {
            st.liveBytes += e.location().storedLength();
            st.liveChunks++;
          }
        }
        indexPacks.put(n, listed);
        if (cutoff != null && indexTimes.getOrDefault(n, UNKNOWN).writtenAfter(cutoff)) {
          recentIndexes.add(n);
        }
        listener.progress("read index", ++done, indexNames.size());
      }
      int orphans = 0;
      // A pack no index lists supplies a live chunk found in no index blob only through a record
      // that passed its check (decoded, authenticated, hashed to its id): its trailer is not
      // authenticated, and the storage can forge one that copies the real ids. Trusting it, prune
      // deleted the real packs as duplicates and indexed the forgeries (audit10 M3).
      long maxPackBytes = UnlistedPacks.maxPackBytes(packSize, codec);
      ChunkReader orphanChecker = new ChunkReader(store, codec, assigned, hasher);
      for (PackState st : packs.values()) {
        if (st.indexed) {
          continue;
        }
        orphans++;
        st.trailer = List.of();
        List<PackEntry> wanted = new ArrayList<>();
        List<PackEntry> good;
        int[] bad = new int[1];
        String[] firstBad = new String[1];
        try {
          List<PackEntry> trailer =
              UnlistedPacks.trailer(
                  store, codec, st.name, PackReader.stat(store, st.name), maxPackBytes);
          Set<ChunkId> seen = new HashSet<>();
          for (PackEntry e : trailer) {
            // only the records it would supply are read: live chunks no index blob placed
            if (live.contains(e.id()) && !assigned.contains(e.id()) && seen.add(e.id())) {
              wanted.add(e);
            }
          }
          good =
              UnlistedPacks.checkRecords(
                  store,
                  st.name,
                  wanted,
                  orphanChecker,
                  (e, ex) -> {
                    if (bad[0]++ == 0) {
                      firstBad[0] = ex.getMessage();
                    }
                  });
        } catch (IOException | RepositoryException e) {
          // no answer says nothing about the pack: stop before deleting anything
          RepositoryUnreachableException.throwIfUnreachable(st.name, store.location(), e);
          LOG.warn(
              "prune: unindexed pack {} is unreadable: it supplies no chunk, and is deleted unless"
                  + " too recent (--keep-recent) or prune stops first: {}",
              st.name,
              e.getMessage());
          continue;
        }
        if (bad[0] > 0) {
          LOG.warn(
              "prune: unindexed pack {}: {} of the {} live chunks its trailer claims fail their"
                  + " check (a forged or damaged pack): not used, and the pack is deleted unless"
                  + " it holds live chunks that pass; first: {}",
              st.name,
              bad[0],
              wanted.size(),
              firstBad[0]);
        }
        st.trailer = use(st, good, assigned); // a kept one is indexed with these alone
      }
      if (assigned.size() < live.size()
          && (!damagedIndexes.isEmpty()
              || roots == 0
              || missingForSnapshots(snapshots, assigned) > 0)) {
        // A pack two index blobs list, one of them damaged or lost, holds records only that one
        // placed: read from its trailer and checked as an unlisted pack's (audit Z-M2; repair
        // does the same). Only where prune would stop otherwise, or an index blob is damaged: it
        // costs a trailer read per pack.
        long found = 0;
        for (PackState st : packs.values()) {
          if (st.indexed && assigned.size() < live.size()) {
            found += unplacedRecords(st, live, assigned, orphanChecker, maxPackBytes);
          }
        }
        if (found > 0) {
          LOG.warn(
              "prune: {} live chunks only damaged index blobs placed were found, checked, in the"
                  + " packs other index blobs list: indexed anew",
              found);
        }
      }
      long missing = live.size() - assigned.size();
      if (missing > 0 && roots > 0) {
        // Chunks only the spared indexes use may be gone (a backup that failed mid-way): they
        // stop nothing. Only chunks snapshots use count.
        missing = missingForSnapshots(snapshots, assigned);
        if (missing == 0) {
          LOG.warn(
              "prune: {} chunks that only recent indexes no snapshot names use are in no pack",
              live.size() - assigned.size());
        }
      }
      if (missing > 0) {
        throw new RepositoryCorruptedException(
            missing
                + " chunks that snapshots use are in no pack of the repository at '"
                + store.location()
                + "': prune stopped without changing anything (run 'granule verify' to see which"
                + " snapshots are damaged)");
      }

      // Plan.
      List<PackState> repack = new ArrayList<>();
      List<PackState> remove = new ArrayList<>();
      int kept = 0;
      int spared = 0;
      long bytesSpared = 0;
      long bytesDeleted = 0;
      long liveInRepacked = 0;
      for (PackState st : packs.values()) {
        if (st.recent && (st.liveChunks == 0 || st.liveFraction() < options.repackBelow())) {
          st.action = Action.KEEP;
          kept++;
          spared++;
          bytesSpared += st.size;
        } else if (st.liveChunks == 0) {
          st.action = Action.DELETE;
          remove.add(st);
          bytesDeleted += st.size;
        } else if (st.liveFraction() < options.repackBelow()) {
          st.action = Action.REPACK;
          repack.add(st);
          remove.add(st);
          bytesDeleted += st.size;
          liveInRepacked += st.liveBytes;
        } else {
          st.action = Action.KEEP;
          kept++;
        }
      }
      List<BlobName> rewrite = new ArrayList<>(damagedIndexes);
      for (var e : indexPacks.entrySet()) {
        boolean recent = recentIndexes.contains(e.getKey());
        for (PackId p : e.getValue()) {
          PackState st = packs.get(p);
          // A pack missing from the listing is gone, unless the index blob is recent: a writer's
          // pack and index blob saved after the packs were listed (its entries are not dropped).
          if (st == null ? !recent : st.action != Action.KEEP) {
            rewrite.add(e.getKey());
            break;
          }
        }
      }
      int[] itemsSpared = new int[1];
      List<BlobName> fixedGarbage = unreferenced(fixedItems, fixedRefs, cutoff, itemsSpared);
      List<BlobName> dynamicGarbage = unreferenced(dynamicItems, dynamicRefs, cutoff, itemsSpared);

      if (options.dryRun()) {
        return new Report(
            true,
            snapshots.size(),
            live.size(),
            packs.size(),
            packBytes,
            remove.size() - repack.size(),
            repack.size(),
            kept,
            spared,
            bytesSpared,
            orphans,
            bytesDeleted,
            liveInRepacked,
            0,
            rewrite.size(),
            0,
            fixedGarbage.size(),
            dynamicGarbage.size(),
            itemsSpared[0],
            0,
            (System.nanoTime() - started) / 1e9,
            List.of());
      }

      // 1. Repack: live chunks into new packs and index blobs.
      List<String> damagedPacks = new ArrayList<>();
      AtomicLong newPackBytes = new AtomicLong();
      long packsWritten = 0;
      long indexesWritten = 0;
      if (!repack.isEmpty()) {
        try (ChunkIndex fresh = new ChunkIndex(cacheDir, 1024, memory);
            ChunkCompressor compressor = new ChunkCompressor(compressionLevel)) {
          ChunkPacker packer =
              new ChunkPacker(countingPacks(newPackBytes), codec, fresh, packSize, 16, p -> {});
          ChunkReader checker = new ChunkReader(store, codec, assigned, hasher);
          done = 0;
          for (PackState st : repack) {
            byte[] bytes = store.load(st.name);
            long moved = 0;
            try {
              // every byte's checksum first: damage (bit flips, a truncated file, a broken header
              // or trailer) is found before any of the pack is moved
              List<PackEntry> entries = PackReader.parse(st.name, bytes);
              for (PackEntry e : entries) {
                ChunkLocation loc = assigned.get(e.id());
                if (loc == null || !loc.pack().equals(st.id) || loc.offset() != e.offset()) {
                  continue;
                }
                moved++;
                byte[] plain =
                    checker.decode(e.id(), st.name, record(bytes, e), e.flags(), e.rawLength());
                if (fresh.contains(e.id())) {
                  continue;
                }
                packer.add(e.id(), compressor.compress(plain, 0, plain.length), plain.length);
              }
            } catch (io.granule.engine.internal.repo.UnsupportedRepositoryVersionException e) {
              throw e;
            } catch (RepositoryException | IllegalArgumentException e) {
              // A damaged pack: repacking would drop its unreadable chunks from the index, and
              // deleting it its readable ones too. Left as it is, with its index entries, for
              // 'granule repair', which salvages what it still holds (audit15 G F1). Chunks of
              // it moved before a record failed its authentication (its checksum was right) are
              // listed twice, both copies read: harmless.
              LOG.warn(
                  "prune: pack {} is damaged, left alone (run 'granule repair'): {}",
                  st.name,
                  e.getMessage());
              st.action = Action.KEEP;
              remove.remove(st);
              kept++;
              bytesDeleted -= st.size;
              damagedPacks.add(st.name.toString());
              listener.progress("repack", ++done, repack.size());
              continue;
            }
            if (moved != st.liveChunks) {
              // The index and the pack's trailer disagree: deleting the pack could lose data.
              throw new RepositoryCorruptedException(
                  "pack "
                      + st.name
                      + " holds "
                      + moved
                      + " of the "
                      + st.liveChunks
                      + " live chunks the index places in it: prune stopped before deleting"
                      + " anything (run 'granule verify')");
            }
            listener.progress("repack", ++done, repack.size());
          }
          packer.flush();
          packsWritten = packer.packsWritten();
          indexesWritten += packer.indexesWritten();
        }
      }

      // 2. New index blobs for the kept packs that rewritten blobs list.
      // (each (pack, chunk) pair once, the pairs already written kept off the heap)
      List<IndexEntry> pending = new ArrayList<>();
      try (ChunkIndex written = new ChunkIndex(cacheDir, 1024, memory)) {
        Set<IndexEntry> writtenElsewhere = new HashSet<>(); // pairs written cannot hold: none
        done = 0;
        for (BlobName n : rewrite) {
          if (!damagedIndexes.contains(n)) {
            for (IndexEntry e : MetadataBlobs.read(store, codec, n, IndexReader::read)) {
              ChunkLocation l = e.location();
              PackState st = packs.get(l.pack());
              if (st != null
                  && st.action == Action.KEEP
                  && (written.putInPack(e.id(), l)
                      || written.getInPack(l.pack(), e.id()) == null && writtenElsewhere.add(e))) {
                pending.add(e);
                if (pending.size() >= ENTRIES_PER_INDEX) {
                  indexesWritten += saveIndex(pending);
                }
              }
            }
          }
          listener.progress("write index", ++done, rewrite.size());
        }
      }
      for (PackState st : packs.values()) {
        if (st.action != Action.KEEP) {
          continue; // a repacked one's records moved with its other live chunks
        }
        // an unlisted pack's checked records; a listed one's that only a damaged or lost index
        // blob placed
        for (PackEntry e : st.indexed ? st.unplaced : st.trailer) {
          pending.add(
              new IndexEntry(
                  e.id(),
                  new ChunkLocation(
                      st.id, e.offset(), e.storedLength(), e.rawLength(), e.flags())));
        }
        if (pending.size() >= ENTRIES_PER_INDEX) {
          indexesWritten += saveIndex(pending);
        }
      }
      indexesWritten += saveIndex(pending);

      // Before the first delete: a snapshot saved since the mark would lose what it uses.
      noSnapshotSince(snapshots);

      // 3. Old index blobs.
      done = 0;
      for (BlobName n : rewrite) {
        store.delete(n);
        listener.progress("delete index", ++done, rewrite.size());
      }
      // 4. Packs no index lists any more.
      done = 0;
      for (PackState st : remove) {
        store.delete(st.name);
        listener.progress("delete packs", ++done, remove.size());
      }
      // 5. Item indexes no manifest names.
      done = 0;
      int items = fixedGarbage.size() + dynamicGarbage.size();
      for (BlobName n : fixedGarbage) {
        store.delete(n);
        listener.progress("delete item indexes", ++done, items);
      }
      for (BlobName n : dynamicGarbage) {
        store.delete(n);
        listener.progress("delete item indexes", ++done, items);
      }
      // After the deletes: a snapshot saved since the check before them may use what was deleted
      // (its backup checks its packs after its save too, and removes it if they are gone).
      noSnapshotSinceDeletes(snapshots);
      return new Report(
          false,
          snapshots.size(),
          live.size(),
          packs.size(),
          packBytes,
          remove.size() - (repack.size() - damagedPacks.size()),
          repack.size() - damagedPacks.size(),
          kept,
          spared,
          bytesSpared,
          orphans,
          bytesDeleted,
          newPackBytes.get(),
          packsWritten,
          rewrite.size(),
          indexesWritten,
          fixedGarbage.size(),
          dynamicGarbage.size(),
          itemsSpared[0],
          leftovers,
          (System.nanoTime() - started) / 1e9,
          List.copyOf(damagedPacks));
    } catch (IOException e) {
      throw failed(e);
    }
  }

  /** The stored bytes of the record {@code e} places in {@code pack}. */
  private static byte[] record(byte[] pack, PackEntry e) {
    return Arrays.copyOfRange(pack, (int) e.offset(), (int) (e.offset() + e.storedLength()));
  }

  private RepositoryException failed(IOException e) {
    return new RepositoryException(
        "prune failed in the repository at '"
            + store.location()
            + "': "
            + e.getMessage()
            + " (the repository is still valid: run prune again)",
        e);
  }

  /**
   * The store, adding the size of every pack saved to {@code bytes}. Every call is forwarded as it
   * came: the packer's buffer saves keep their direct-write path instead of the interface's default
   * copy into an array.
   */
  private BlobStore countingPacks(AtomicLong bytes) {
    return new ForwardingBlobStore(store) {
      @Override
      public void save(BlobName name, byte[] data) throws IOException {
        delegate.save(name, data);
        count(name, data.length);
      }

      @Override
      public void save(BlobName name, ByteBuffer data) throws IOException {
        int length = data.remaining();
        delegate.save(name, data);
        count(name, length);
      }

      @Override
      public void save(BlobName name, ByteBuffer data, Runnable released) throws IOException {
        int length = data.remaining();
        delegate.save(name, data, released);
        count(name, length);
      }

      private void count(BlobName name, int length) {
        if (name.type() == BlobType.PACK) {
          bytes.addAndGet(length);
        }
      }
    };
  }

  private RepositoryUnreachableException listedButMissing(BlobName n, NoSuchFileException e) {
    return new RepositoryUnreachableException(
        "the repository at '"
            + store.location()
            + "' listed "
            + n
            + " but answered that it does not exist when it was read: prune stopped without"
            + " changing anything (nothing else removes it while prune holds its exclusive lock; a"
            + " store that lags or misroutes requests answers so: run prune again)",
        e);
  }

  /** Saves {@code entries} in index blobs of at most {@link IndexWriter#MAX_ENTRIES}; clears it. */
  private int saveIndex(List<IndexEntry> entries) throws IOException {
    int blobs = IndexWriter.save(store, codec, entries);
    entries.clear();
    return blobs;
  }

  /**
   * Marks the chunks of the item indexes {@code items} (fixed or dynamic) that no manifest names
   * ({@code referenced}) and that were written after {@code cutoff}; returns how many it marked.
   * One that cannot be read is left out (it is spared all the same; only a snapshot's index stops
   * prune).
   */
  private int markRecent(
      ChunkIndex.Loader marks, List<BlobInfo> items, Set<String> referenced, Instant cutoff)
      throws IOException {
    int n = 0;
    for (BlobInfo i : items) {
      if (referenced.contains(i.name().name()) || !i.writtenAfter(cutoff)) {
        continue;
      }
      try {
        if (i.name().type() == BlobType.FIXED_INDEX) {
          try (var f = FixedIndexReader.load(store, codec, i.name())) {
            mark(marks, f.count(), f::get);
          }
        } else {
          try (var d = DynamicIndexReader.load(store, codec, i.name())) {
            mark(marks, d.count(), d::get);
          }
        }
        n++;
      } catch (NoSuchFileException e) {
        LOG.debug("prune: recent {} went meanwhile", i.name());
      } catch (io.granule.engine.internal.repo.PagedFile.NoRoomException local) {
        throw local; // no room here to read it: not damage
      } catch (RepositoryException | IllegalArgumentException e) {
        LOG.warn("prune: recent {} no snapshot names is unreadable: {}", i.name(), e.getMessage());
      }
    }
    return n;
  }

  /** How many chunk references of the snapshots {@code manifests} no pack holds. */
  private long missingForSnapshots(List<BlobName> manifests, ChunkIndex assigned)
      throws IOException {
    long missing = 0;
    for (BlobName n : manifests) {
      Manifest m = MetadataBlobs.read(store, codec, n, ManifestReader::read);
      for (Manifest.DiskEntry d : m.disks()) {
        BlobName fx = new BlobName(BlobType.FIXED_INDEX, d.fixedIndex());
        try (var f = FixedIndexReader.load(store, codec, fx)) {
          missing += absent(assigned, f.count(), f::get);
        }
      }
      for (Manifest.StreamEntry s : m.streams()) {
        BlobName dn = new BlobName(BlobType.DYNAMIC_INDEX, s.dynamicIndex());
        try (var dyn = DynamicIndexReader.load(store, codec, dn)) {
          missing += absent(assigned, dyn.count(), dyn::get);
        }
      }
    }
    return missing;
  }

  private static long absent(ChunkIndex assigned, int count, IntFunction<ChunkId> list) {
    long n = 0;
    for (int i = 0; i < count; i++) {
      ChunkId id = list.apply(i);
      if (id != null && !id.isZero() && !assigned.contains(id)) {
        n++;
      }
    }
    return n;
  }

  /**
   * The blobs of {@code items} whose names are not {@code referenced}, but for those written after
   * {@code cutoff} (if not null), which are counted in {@code spared[0]}.
   */
  private static List<BlobName> unreferenced(
      List<BlobInfo> items, Set<String> referenced, Instant cutoff, int[] spared) {
    List<BlobName> out = new ArrayList<>();
    for (BlobInfo i : items) {
      if (!referenced.contains(i.name().name())) {
        if (cutoff != null && i.writtenAfter(cutoff)) {
          spared[0]++; // the index of a backup that has not saved its snapshot yet, say
        } else {
          out.add(i.name());
        }
      }
    }
    return out;
  }

  /**
   * Fails if a snapshot not among {@code marked} is in the repository now: under the exclusive lock
   * none can be saved, so a backup ignores the lock (its lock removed by {@code unlock
   * --remove-all}, or taken for stale while its process was still saving). Deleting what the mark
   * found unused could delete chunks that snapshot uses.
   */
  private void noSnapshotSince(List<BlobName> marked) throws IOException {
    Set<BlobName> known = new HashSet<>(marked);
    for (BlobName n : store.list(BlobType.SNAPSHOT)) {
      if (!known.contains(n)) {
        throw new io.granule.engine.internal.repo.RepositoryLockedException(
            "snapshot "
                + n.name()
                + " was saved in the repository at '"
                + store.location()
                + "' while prune held its exclusive lock (a backup whose lock was removed, or"
                + " taken for stale, is still writing): prune stopped before deleting anything"
                + " (what it wrote is harmless). Prune again when that backup has ended");
      }
    }
  }

  /**
   * Snapshots saved while prune deleted (a backup whose lock it did not see saved one after the
   * check before the deletes): said, loudly, since they may use chunks of deleted packs.
   */
  private void noSnapshotSinceDeletes(List<BlobName> marked) throws IOException {
    Set<BlobName> known = new HashSet<>(marked);
    List<String> added = new ArrayList<>();
    for (BlobName n : store.list(BlobType.SNAPSHOT)) {
      if (!known.contains(n)) {
        added.add(n.name());
      }
    }
    if (!added.isEmpty()) {
      throw new io.granule.engine.internal.repo.RepositoryLockedException(
          "prune finished, but snapshot(s) "
              + String.join(", ", added)
              + " were saved in the repository at '"
              + store.location()
              + "' while it deleted (a backup whose lock was removed, or taken for stale, was"
              + " still writing): they may use chunks of packs prune deleted; run 'granule verify'"
              + " and forget any it reports damaged");
    }
  }

  private static void mark(ChunkIndex.Loader live, int count, IntFunction<ChunkId> list) {
    for (int i = 0; i < count; i++) {
      ChunkId id = list.apply(i);
      if (id != null && !id.isZero()) {
        live.put(id, MARK);
      }
    }
  }

  /** Loads and parses an item index blob. */
  private interface ItemLoader<T> {
    T apply(BlobName name) throws IOException;
  }

  private <T> T load(BlobName name, String what, ItemLoader<T> load) throws IOException {
    try {
      return load.apply(name);
    } catch (NoSuchFileException e) {
      throw new RepositoryCorruptedException(
          what
              + " "
              + name
              + " is missing: prune stopped without changing anything (run 'granule verify')",
          e);
    } catch (io.granule.engine.internal.repo.PagedFile.NoRoomException local) {
      throw local; // no room here to read it: not damage
    } catch (RepositoryException | IllegalArgumentException e) {
      throw new RepositoryCorruptedException(
          what
              + " "
              + name
              + " is damaged: prune stopped without changing anything (run 'granule verify'): "
              + e.getMessage(),
          e);
    }
  }
}
