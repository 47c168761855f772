package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.MetadataBlobs;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryUnreachableException;
import io.granule.engine.internal.repo.UnsupportedRepositoryVersionException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.blob.OverlayBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.PackEntry;
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
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Repairs damaged packs: keeps every chunk of theirs that can still be read, and takes the rest out
 * of the index, so that backups store those chunks anew instead of deduplicating against records
 * that cannot be read (audit15 G F1). Must run under the repository's exclusive lock (no backup
 * deduplicates against the index meanwhile, none adds packs); the caller passes a store that checks
 * the lock before every save and delete.
 *
 * <p>The caller names the <i>suspects</i>: packs found damaged by reading them ({@code verify
 * --read-data}), or missing. Each suspect is read again, whole: a record is <b>salvaged</b> if,
 * taken at the place an index blob gives it (or, failing that, the place the pack's trailer gives
 * it, where the trailer can still be read), it decodes (authenticated with the pack's name where
 * encrypted), decompresses and hashes to its id. A suspect whose file checks whole and whose every
 * indexed record passes was not damaged on this reading (a flaky read the first time) and is left
 * alone. A chunk an intact pack also holds is not salvaged (it is not lost); a chunk neither
 * salvaged nor held elsewhere is <b>lost</b>.
 *
 * <p><b>Order</b> (each step durable before the next, as a backup and prune write):
 *
 * <ol>
 *   <li>the salvaged chunks are written into new packs, then index blobs listing them;
 *   <li>each index blob that lists a damaged pack is replaced: a new blob listing its other entries
 *       is saved;
 *   <li>the replaced index blobs are deleted;
 *   <li>the damaged packs are deleted: no index blob lists them any more.
 * </ol>
 *
 * A crash after 1 leaves the salvaged chunks listed twice (the damaged pack's copy of each passed
 * its check too); after 2, entries of intact packs listed twice; after 3, damaged packs no index
 * lists. Each is a valid repository (only the damage itself, until the repair ends, is still
 * there), and a second repair finishes the job: a chunk already salvaged is held by an intact pack
 * now, so it is not written again.
 *
 * <p>Memory: the heap holds the entries of the damaged packs only (and one pack's bytes at a time);
 * the index blobs are read three times (the damaged packs' entries, which of their chunks intact
 * packs hold, the replacements).
 */
public final class Repairer {
  private static final Logger LOG = LoggerFactory.getLogger(Repairer.class);

  /** Progress: {@code phase} with {@code done} of {@code total} units. */
  @FunctionalInterface
  public interface Listener {
    void progress(String phase, long done, long total);
  }

  /**
   * What repair did to one pack.
   *
   * @param pack the pack's blob name ({@code data/NAME})
   * @param missing whether the file was gone (nothing could be salvaged)
   * @param indexed chunks index blobs listed in it
   * @param salvaged chunks read from it and written into new packs
   * @param elsewhere chunks of it that intact packs hold too, or that were salvaged from another
   *     damaged pack's copy (neither salvaged from it nor lost)
   * @param lost chunks listed in it that could not be read and no intact pack holds
   * @param problem the first damage found in it
   */
  public record PackRepair(
      String pack,
      boolean missing,
      int indexed,
      int salvaged,
      int elsewhere,
      int lost,
      String problem) {}

  /**
   * What repair did (with dry-run: would do).
   *
   * @param dryRun nothing was changed
   * @param packsChecked packs read to find the damage
   * @param damaged the damaged (or missing) packs and what became of their chunks
   * @param intactOnRereading suspects that read whole the second time: left alone
   * @param chunksSalvaged chunks written into new packs
   * @param chunksLost chunks no longer listed by any index blob (no intact copy was found)
   * @param chunksIndexed chunks of packs that no index blob listed, whose every record read,
   *     indexed (dry run: to index) with the salvaged ones: an interrupted backup's or repair's
   *     packs, or those of an index blob that was lost
   * @param snapshots snapshots that use a lost chunk: damaged until the chunk is stored again by a
   *     backup of the same data, or the snapshot is forgotten
   * @param packsWritten new packs
   * @param indexesWritten new index blobs (those of the new packs and the replacements)
   * @param indexesReplaced index blobs deleted because they listed a damaged pack (dry run: that
   *     list one)
   * @param packsDeleted damaged packs deleted
   * @param seconds wall time of this step (without the reading that found the suspects)
   * @param damagedCopies packs that were not read whole (a repair of named packs) where the copy of
   *     a chunk the damaged packs hold does not read either: damaged too, left as they are
   * @param unlistedIndexes fixed and dynamic indexes ({@code fixed/NAME}, {@code dynamic/NAME})
   *     that use a lost chunk and that no snapshot read here names: a crashed backup's (prune
   *     deletes them), or a snapshot's whose manifest did not read or that no listing showed
   */
  public record Report(
      boolean dryRun,
      int packsChecked,
      List<PackRepair> damaged,
      List<String> intactOnRereading,
      List<String> leftAlone,
      long chunksSalvaged,
      long chunksLost,
      long chunksIndexed,
      List<String> snapshots,
      long packsWritten,
      long indexesWritten,
      int indexesReplaced,
      int packsDeleted,
      double seconds,
      List<String> damagedCopies,
      List<String> unlistedIndexes) {}

  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkHasher hasher;
  private Map<ChunkId, ChunkLocation> adopted = Map.of();
  private final Path cacheDir;
  private final int packSize;
  private final int compressionLevel;
  private final long maxPackBytes;
  private final Path retiredFile;

  /**
   * The index entries the last {@link #run} wrote (a dry run's: would write) for the chunks of
   * packs no index blob listed ({@link Report#chunksIndexed}): a dry run's check of what they heal
   * reads them (audit Z-L1).
   */
  public Map<ChunkId, ChunkLocation> adopted() {
    return java.util.Collections.unmodifiableMap(adopted);
  }

  /**
   * {@code store} as it reads once index blobs listing {@code entries} are added, held in memory:
   * what a dry run checks the healing of its indexing with (audit Z-L1: the damage the real run
   * healed was reported, exit 5). Writes nothing.
   */
  public static BlobStore withIndexEntries(
      BlobStore store, BlobCodec codec, Map<ChunkId, ChunkLocation> entries) throws IOException {
    List<IndexEntry> list = new ArrayList<>(entries.size());
    entries.forEach((id, l) -> list.add(new IndexEntry(id, l)));
    Map<BlobName, OverlayBlobStore.Blob> added = new LinkedHashMap<>();
    IndexWriter.save(
        new ForwardingBlobStore(store) {
          @Override
          public void save(BlobName name, byte[] data) {
            added.put(name, OverlayBlobStore.Blob.of(data));
          }
        },
        codec,
        list);
    return new OverlayBlobStore(store, added);
  }

  /**
   * A repairer of the repository in {@code store}. {@code retiredFile} (null: none) is where a
   * repair notes, before it deletes the index blobs that list them, the damaged packs whose trailer
   * does not read: once those blobs are gone, nothing tells such a pack from one whose index blob a
   * flaky storage hid, which is left alone (audit N1, N3); the next repair deletes the packs noted
   * there, so that one killed between the two steps is finished by the next, as any other.
   */
  public Repairer(
      BlobStore store,
      BlobCodec codec,
      ChunkHasher hasher,
      Path cacheDir,
      int packSize,
      int compressionLevel,
      Path retiredFile) {
    this.retiredFile = retiredFile;
    this.store = store;
    this.codec = codec;
    this.hasher = hasher;
    this.cacheDir = cacheDir;
    this.packSize = packSize;
    this.compressionLevel = compressionLevel;
    this.maxPackBytes = UnlistedPacks.maxPackBytes(packSize, codec);
  }

  /** A suspect pack as repair sees it. */
  private static final class Suspect {
    final PackId id;
    final BlobName name;
    final List<IndexEntry> indexed = new ArrayList<>();
    List<PackEntry> trailer = List.of();
    boolean missing;
    boolean damaged;
    boolean trailerUnread; // neither the pack nor its trailer alone parsed
    boolean leftAlone; // damaged, but not all its records can be located: kept as it is
    boolean keepFile; // damaged, repaired, but its file kept: it may hold chunks placed nowhere
    String problem;
    final List<IndexEntry> readable = new ArrayList<>(); // a location of each chunk that decodes
    String fingerprint; // of the file read: its size and SHA-256 (a retired note names it so)

    Suspect(PackId id) {
      this.id = id;
      this.name = ChunkReader.packName(id);
    }

    /**
     * Adds to its problem {@code why} it is deleted unread (said, not "0 of its 0 chunks"), or in a
     * dry run would be.
     */
    void deletedUnread(String why, boolean dryRun) {
      problem =
          (problem == null ? "damaged" : problem)
              + "; "
              + why
              + (dryRun ? ": it would be deleted unread" : ": it is deleted unread");
    }
  }

  /**
   * What the verify that found the suspects saw in the same run: the index blobs listed before it
   * ran, and the files it named damaged (as {@code index/NAME}, {@code fixed/NAME}, …). Repair
   * compares its own reading with it: storage that answers differently from one reading to the next
   * (a listing that misses a blob, a blob or snapshot index that read whole and then not) stops it
   * before any change (audit L1, L2, L3), and while an index blob is damaged, not all chunks'
   * places are known. {@code indexes} and {@code snapshots} (the snapshot manifests listed before
   * verify) are null where blobs may go meanwhile (a dry run under a shared lock: a backup that
   * finds packs missing replaces index blobs, a forget deletes manifests); where they are not, a
   * blob listed before that is not found now stops the repair too (audit N1, N2). {@code packs}:
   * the packs known to be there in this run (listed before verify, or read by it), whatever the
   * lock: none is deleted under either, so one of them not found stops the repair (audit M1: a
   * damaged pack taken for missing had its entries dropped, and the next repair deleted it unread
   * with its intact chunks; a listing of repair's own that left it out made it look never listed).
   */
  public record Seen(
      Set<BlobName> indexes,
      Set<BlobName> snapshots,
      Set<BlobName> items,
      Set<BlobName> packs,
      Set<String> damaged) {
    /** Whether verify found an index blob damaged: not every chunk's place may be known. */
    boolean indexDamaged() {
      return damagedIn(BlobType.INDEX);
    }

    /**
     * Whether verify found a snapshot's fixed or dynamic index damaged, among them those that use
     * chunks no index blob lists.
     */
    boolean snapshotIndexDamaged() {
      return damagedIn(BlobType.FIXED_INDEX) || damagedIn(BlobType.DYNAMIC_INDEX);
    }

    private boolean damagedIn(BlobType type) {
      for (String d : damaged) {
        if (d.startsWith(type.directory() + "/")) {
          return true;
        }
      }
      return false;
    }
  }

  /**
   * Repairs the packs {@code suspects} (see the class comment); {@code packsChecked} is only
   * reported. {@code named}: the packs the user named (names without {@code data/}), whose data
   * alone was read; empty: every pack was read whole. Where not every pack was read, a copy of a
   * damaged pack's chunk in another pack counts as one only once its record reads: counted on
   * unread, it let the readable record in the damaged pack go with it, and the chunk was lost if
   * that copy was damaged too. A damaged pack none of whose records can be located (no index blob
   * lists it, its trailer does not read) is deleted unread only if named: an index blob hidden from
   * every listing of a run by a flaky storage made it look so, and its intact chunks were deleted
   * (audit N1, N3). {@code seen} is what the verify before it saw ({@link Seen}). The packs that no
   * index blob lists and whose every record checks hold chunks as much as the packs index blobs
   * list: a repair indexes them, with what it salvages if anything (audit X-M1: counted lost, the
   * snapshots using them were named and their forgetting advised, which the next backup or prune,
   * indexing those packs, would have made whole; Y-M1: with no pack damaged they were not indexed).
   *
   * @throws RepositoryUnreachableException if the store does not answer (nothing more is changed;
   *     the repository is valid, run repair again)
   * @throws RepositoryException if the store fails otherwise (the same)
   */
  public Report run(
      Set<PackId> suspects,
      Set<String> named,
      int packsChecked,
      Seen seen,
      boolean dryRun,
      Listener listener) {
    long started = System.nanoTime();
    boolean othersRead = named.isEmpty();
    try {
      Map<PackId, Suspect> byId = new LinkedHashMap<>();
      List<PackId> sorted = new ArrayList<>(suspects);
      sorted.sort(java.util.Comparator.comparing(PackId::toString));
      for (PackId p : sorted) {
        byId.put(p, new Suspect(p));
      }
      Set<PackId> present = new HashSet<>();
      for (BlobName n : store.list(BlobType.PACK)) {
        try {
          present.add(PackId.parse(n.name()));
        } catch (IllegalArgumentException e) {
          // not a pack name: verify names it, nothing here uses it
        }
      }
      // 1. What the index blobs place in the suspects.
      List<BlobName> indexNames = store.list(BlobType.INDEX);
      requireListed(seen.indexes(), indexNames, "repair's listing of index/");
      if (seen.indexes() != null) {
        // nor more: nothing adds index blobs under this lock, so one that the listings before
        // and in verify left out went unseen there, and the packs it lists looked unindexed
        for (BlobName n : indexNames) {
          if (!seen.indexes().contains(n)) {
            throw unreliable(n + " listed now, not before verify");
          }
        }
      }
      Map<BlobName, Set<PackId>> listingSuspects = new HashMap<>();
      int done = 0;
      // Each index blob is read once, and every pass below works from that one reading: a blob
      // that read differently from one pass to the next (a flaky store) had its entries for a
      // damaged pack missed by this pass and dropped by the rewrite, and the pack was deleted
      // with chunks no one had counted (audit K1).
      Map<BlobName, List<IndexEntry>> indexes = new LinkedHashMap<>();
      List<BlobName> unreadable = new ArrayList<>();
      for (BlobName n : indexNames) {
        List<IndexEntry> entries = readIndex(n);
        indexes.put(n, entries);
        if (entries == null && seen.indexes() != null && store.stat(n).isEmpty()) {
          // listed a moment ago, and nothing deletes index blobs under this lock (audit N1: a
          // blob that answered "not found" was neither read nor counted, and the pack only it
          // listed was deleted as "0 of its 0 chunks", exit 0)
          throw unreliable(n + " listed, then not found");
        }
        if (entries == null && store.stat(n).isPresent()) {
          if (!seen.damaged().contains(n.toString())) {
            // verify read it whole a moment ago (audit L1: a short read here left the blob, whole
            // again later, listing the pack this repair deleted)
            throw unreliable(n + " read whole, then not");
          }
          unreadable.add(n);
        }
        if (entries != null) {
          for (IndexEntry e : entries) {
            Suspect s = byId.get(e.location().pack());
            if (s != null) {
              s.indexed.add(e);
              listingSuspects.computeIfAbsent(n, k -> new HashSet<>()).add(s.id);
            }
          }
        }
        listener.progress("read index", ++done, indexNames.size());
      }
      // 2. Read each suspect again: which of its records decode.
      Set<ChunkId> candidates = new HashSet<>();
      ChunkReader checker = new ChunkReader(store, codec, null, hasher);
      done = 0;
      for (Suspect s : byId.values()) {
        check(s, present.contains(s.id) || seen.packs().contains(s.name), checker);
        if (s.damaged) {
          s.indexed.forEach(e -> candidates.add(e.id()));
          s.readable.forEach(e -> candidates.add(e.id()));
          s.trailer.forEach(t -> candidates.add(t.id()));
        }
        listener.progress("check packs", ++done, byId.size());
      }
      // Every pack the index blobs list missing, none named: the storage answers "not found" for
      // all of data/ (a mount or bucket gone, a prefix wrong). Dropping their entries left a
      // pack whose trailer does not read, which the storage showed again later, with no way to
      // locate its records (audit X, enoentnew).
      Set<PackId> listedPacks = new HashSet<>();
      for (List<IndexEntry> entries : indexes.values()) {
        if (entries != null) {
          entries.forEach(e -> listedPacks.add(e.location().pack()));
        }
      }
      long missingUnnamed =
          byId.values().stream()
              .filter(s -> s.missing && listedPacks.contains(s.id))
              .filter(s -> !named.contains(s.id.toString()))
              .count();
      if (!listedPacks.isEmpty() && missingUnnamed == listedPacks.size()) {
        throw new RepositoryException(
            "repair stopped: every one of the "
                + listedPacks.size()
                + " packs the index blobs list is missing: the storage may not be whole (a"
                + " directory not mounted, a bucket or prefix wrong); nothing was changed. Check"
                + " it; if the packs are really gone, name them with --pack to drop them from the"
                + " index");
      }
      // The packs no index blob lists, none of them a suspect, whose every record checks (as a
      // backup checks them before it adopts them): where their chunks are, read past any cache of
      // this host (audit Y-M2: a cached copy of an index blob the storage had damaged made its
      // packs look listed, and their chunks were counted lost).
      Map<ChunkId, ChunkLocation> adopt =
          unindexedChunks(
              indexes,
              present,
              byId.keySet(),
              checker,
              seen.snapshotIndexDamaged() || seen.indexDamaged());
      adopted = adopt;
      // A damaged pack whose trailer does not read, where an index blob does not read either:
      // what that blob places in it is not known, so its chunks could be neither salvaged nor
      // counted; deleting it lost them unseen (audit K1, K4). It is kept as it is, entries too.
      // The same where the verify before found an index blob damaged that reads now. (A pack
      // that no index blob lists and whose trailer does not read: see below.)
      List<String> leftAlone = new ArrayList<>();
      boolean snapshotIndexDamaged = seen.snapshotIndexDamaged();
      for (Suspect s : byId.values()) {
        if (!s.damaged || s.missing || !s.trailerUnread) {
          continue;
        }
        String why;
        if (!unreadable.isEmpty()) {
          why =
              "its trailer and index blob"
                  + (unreadable.size() == 1 ? " " : "s ")
                  + unreadable
                  + " do not read";
        } else if (seen.indexDamaged()) {
          why = "its trailer does not read, and verify found index blobs damaged";
        } else {
          continue;
        }
        s.leftAlone = true;
        leftAlone.add(s.name + ": " + why + ", so not all its records can be located");
      }
      // A damaged pack no index blob lists whose trailer does not read: none of its records can be
      // located, so it is deleted unread, or kept as it is. Deleted only where what it may hold is
      // known not to be needed: every chunk a listed fixed or dynamic index uses is placed by an
      // index entry in a pack not damaged, or read from a damaged one (audit S-H1: the check was
      // verify's, which saw only the indexes of manifests it read; a storage that hid the manifest
      // and the index blob got a named pack with intact chunks deleted), and, for a pack an
      // earlier repair noted, the file is the one it read (S-H2: a copy's note with the same name)
      // and what it held that was not lost is listed elsewhere (Q2).
      Map<String, Noted> retired = readRetired();
      Map<Suspect, Set<ChunkId>> unread = new LinkedHashMap<>(); // with the chunks known lost
      for (Suspect s : byId.values()) {
        if (!s.damaged || s.leftAlone || s.missing || !s.trailerUnread || !s.indexed.isEmpty()) {
          continue;
        }
        Noted noted = retired.get(s.id.toString());
        if (noted != null && s.fingerprint.equals(noted.fingerprint())) {
          int unlisted = unlisted(noted.held(), indexes, byId);
          if (unlisted == 0) {
            unread.put(s, noted.lost());
            continue;
          }
          s.leftAlone = true;
          leftAlone.add(
              s.name
                  + ": an earlier repair noted it, but "
                  + unlisted
                  + " of the chunks it held are listed by no index blob now (an index blob lost or"
                  + " not listed?): put it back and run repair again");
          continue;
        }
        if (named.contains(s.id.toString())) {
          if (!snapshotIndexDamaged && !seen.damagedIn(BlobType.SNAPSHOT)) {
            unread.put(s, Set.of());
            continue;
          }
          // audit Q1: named on the advice below while the storage hid its index blob, it was
          // deleted with its intact chunks, which the snapshots verify found damaged used
          s.leftAlone = true;
          leftAlone.add(
              s.name
                  + ": named, but verify found snapshots damaged, among them perhaps some that use"
                  + " chunks no index blob lists, which this pack may hold; if an index blob that"
                  + " listed it was lost, put it back and run repair again; otherwise back up the"
                  + " disks of the snapshots 'granule verify' names damaged again, or forget them"
                  + " and run prune (which deletes it where no snapshot needs what it may hold)");
          continue;
        }
        // An index blob that a flaky storage hid from every listing of the run (or that stat
        // never found) made the pack look unindexed; deleted unread, its intact chunks went
        // (audit N1 "hide 1-3", N3). Only the user, who named it, can tell it is not so.
        s.leftAlone = true;
        leftAlone.add(
            s.name
                + ": no index blob lists it and its trailer does not read, so none of its records"
                + " can be located"
                + (snapshotIndexDamaged
                    ? " (verify found snapshot indexes damaged, which may use chunks an index blob"
                        + " that is lost or not listed placed in it)"
                    : "")
                + "; if an index blob that listed it was lost, put it back and run repair again;"
                + " to delete it unread, run 'granule repair --pack "
                + s.id
                + "'");
      }
      // Every damaged pack whose trailer does not read, listed by index blobs or not: what it
      // holds beyond what the listed blobs place in it is not known. It is deleted (after its
      // salvage) only where no listed fixed or dynamic index uses a chunk placed nowhere, which
      // it may hold (audit T-H2: a pack two index blobs list, one of them lost or hidden, was
      // salvaged from the other alone and deleted with the chunks only the first placed). The
      // chunks whose place in a damaged pack an index blob or trailer gives are known (salvaged,
      // held elsewhere or lost there), as are those a note records lost.
      List<Suspect> blind = new ArrayList<>();
      for (Suspect s : byId.values()) {
        if (s.damaged && !s.missing && !s.leftAlone && s.trailerUnread) {
          blind.add(s);
        }
      }
      if (!blind.isEmpty()) {
        Unplaced unplaced = unplacedUse(indexes, byId, present, seen, adopt.keySet());
        for (Suspect s : blind) {
          Noted note = retired.get(s.id.toString());
          boolean noted = note != null && s.fingerprint.equals(note.fingerprint());
          // what this pack's own listed entries place in it (salvaged, or lost there), and what
          // its note records lost: only those it is known not to hold beyond (audit U-H1: a
          // chunk another damaged pack named, unreadable there, was counted, and this pack,
          // which held its only intact copy, was deleted)
          Set<ChunkId> known = new HashSet<>();
          s.indexed.forEach(e -> known.add(e.id()));
          if (unread.containsKey(s)) {
            known.addAll(unread.get(s));
          }
          Unplaced.Use needed = unplaced.firstNotIn(known);
          if (needed == null) {
            if (unread.containsKey(s)) {
              s.deletedUnread(
                  "no index blob lists it and its trailer does not read, so none of its records"
                      + " can be located: "
                      + (noted
                          ? "an earlier repair took it out of the index and did not delete it (it"
                              + " noted this file), and"
                          : "named, and")
                      + " every chunk the snapshots' indexes use is placed in a pack where it"
                      + " reads",
                  dryRun);
            }
            continue;
          }
          // One that index blobs list is repaired all the same, but its file kept: its entries
          // whose records do not read stayed, and the backup the advice asks for deduplicated
          // against them and saved a snapshot that did not restore (audit X-L2).
          if (s.indexed.isEmpty()) {
            s.leftAlone = true;
          } else {
            s.keepFile = true;
          }
          leftAlone.add(
              s.name
                  + ": its trailer does not read"
                  + (s.indexed.isEmpty() ? " and no index blob lists it" : "")
                  + ", and "
                  + needed.what()
                  + ", which this pack may hold; "
                  + (s.keepFile
                      ? (dryRun ? "its chunks that read would be" : "its chunks that read are")
                          + " salvaged and its index entries dropped (backups store the others"
                          + " anew), but the file is kept; "
                      : "")
                  + (needed.unnamed()
                      ? "no snapshot listed names that index: if you forgot its snapshot, run"
                          + " prune (which deletes such indexes) and repair again; if not, its"
                          + " manifest may be lost or hidden by the storage: check the storage"
                          + " and put back what was lost first (prune would delete what only"
                          + " that snapshot uses)"
                      : "if an index blob that listed it was lost, put it back and run repair"
                          + " again; otherwise back up the disks of the snapshots that use chunks"
                          + " no index blob lists ('granule verify' names them) again, or forget"
                          + " them and run prune (which deletes this pack where no snapshot needs"
                          + " what it may hold)"));
        }
      }
      List<Suspect> damaged =
          byId.values().stream().filter(s -> s.damaged && !s.leftAlone).toList();
      List<String> intact =
          byId.values().stream().filter(s -> !s.damaged).map(s -> s.name.toString()).toList();
      for (String p : intact) {
        LOG.warn("repair: pack {} read whole this time: left alone", p);
      }
      Set<PackId> damagedIds = new HashSet<>();
      damaged.forEach(s -> damagedIds.add(s.id));
      // 3. Which of their chunks intact packs hold too: those are not lost, nor written again.
      Set<ChunkId> elsewhere = new HashSet<>();
      Set<String> damagedCopies = new java.util.TreeSet<>();
      if (!candidates.isEmpty()) {
        for (BlobName n : indexNames) {
          List<IndexEntry> entries = indexes.get(n);
          if (entries != null) {
            for (IndexEntry e : entries) {
              PackId p = e.location().pack();
              if (!candidates.contains(e.id())
                  || elsewhere.contains(e.id())
                  || damagedIds.contains(p)) {
                continue;
              }
              Suspect suspect = byId.get(p);
              if (suspect != null) {
                // a suspect read whole this time, each indexed record decoding: it holds the
                // chunk (audit P3: a copy pack that read short once in verify was passed over,
                // and its chunk counted lost, its snapshots named, while it restored whole)
                if (!suspect.damaged) {
                  elsewhere.add(e.id());
                }
                continue;
              }
              if (!present.contains(p)) {
                if (seen.packs().contains(ChunkReader.packName(p))) {
                  // listed before verify, and no pack is deleted under repair's lock (P3)
                  throw unreliable(
                      ChunkReader.packName(p) + " listed before verify, not in repair's listing");
                }
                continue;
              }
              if (othersRead || copyReads(checker, e, damagedCopies)) {
                elsewhere.add(e.id());
              }
            }
          }
        }
      }
      for (ChunkId id : candidates) {
        if (adopt.containsKey(id)) {
          elsewhere.add(id);
        }
      }
      // Plan: a chunk is salvaged once, from the first damaged pack where it reads.
      Set<ChunkId> salvage = new LinkedHashSet<>();
      Map<ChunkId, Suspect> salvagedFrom = new HashMap<>();
      List<PackRepair> repairs = new ArrayList<>();
      for (Suspect s : damaged) {
        int salvagedHere = 0;
        for (IndexEntry e : s.readable) {
          if (!elsewhere.contains(e.id()) && salvage.add(e.id())) {
            salvagedFrom.put(e.id(), s);
            salvagedHere++;
          }
        }
        repairs.add(
            new PackRepair(
                s.name.toString(), s.missing, s.indexed.size(), salvagedHere, 0, 0, s.problem));
      }
      Set<ChunkId> lost = new HashSet<>();
      List<PackRepair> counted = new ArrayList<>();
      for (int i = 0; i < damaged.size(); i++) {
        Suspect s = damaged.get(i);
        Set<ChunkId> ids = new HashSet<>();
        int held = 0;
        int lostHere = 0;
        // every record the index places in it, and every one its trailer lists (an index blob
        // that does not read may list those: they are counted, not dropped unseen)
        List<ChunkId> records = new ArrayList<>();
        s.indexed.forEach(e -> records.add(e.id()));
        s.trailer.forEach(t -> records.add(t.id()));
        for (ChunkId id : records) {
          if (!ids.add(id)) {
            continue;
          }
          if (elsewhere.contains(id)) {
            held++;
          } else if (salvage.contains(id)) {
            if (salvagedFrom.get(id) != s) {
              held++; // salvaged from another damaged pack's copy (audit U-L1: counted nowhere)
            }
          } else {
            lostHere++;
            lost.add(id);
          }
        }
        PackRepair r = repairs.get(i);
        counted.add(
            new PackRepair(
                r.pack(), r.missing(), ids.size(), r.salvaged(), held, lostHere, r.problem()));
      }
      Set<BlobName> itemIndexes = new HashSet<>(); // those the manifests read name
      List<String> affected = lost.isEmpty() ? List.of() : snapshotsUsing(lost, seen, itemIndexes);
      List<String> unlistedIndexes = lost.isEmpty() ? List.of() : unlistedUsing(lost, itemIndexes);

      long packsWritten = 0;
      long indexesWritten = 0;
      int indexesReplaced = 0;
      if (dryRun) {
        for (Set<PackId> listed : listingSuspects.values()) {
          if (listed.stream().anyMatch(damagedIds::contains)) {
            indexesReplaced++;
          }
        }
      }
      int packsDeleted = 0;
      if (!dryRun && (!damaged.isEmpty() || !adopt.isEmpty())) {
        List<BlobName> again = store.list(BlobType.INDEX);
        requireListed(new HashSet<>(indexNames), again, "index/ listed again");
        // nor one more: nothing adds index blobs under this lock, so one shown now that repair's
        // listing did not show went unread, and a pack only it lists looked unindexed (audit N1)
        Set<BlobName> readHere = new HashSet<>(indexNames);
        for (BlobName n : again) {
          if (!readHere.contains(n)) {
            throw unreliable("index/ listed again shows " + n + ", which repair's listing missed");
          }
        }
        for (Suspect s : damaged) {
          if (s.missing && (seen.packs().contains(s.name) || store.stat(s.name).isPresent())) {
            throw unreliable(s.name + " not found, then there"); // its entries are not dropped
          }
        }
        // 0. The damaged packs whose trailer does not read, by the file read (size and hash),
        // with the chunks they hold that are not lost and those lost: after step 3 nothing
        // locates them, nor tells them from a pack whose index blob a flaky storage hid; a repair
        // that stops before deleting them leaves the next the note. Written first; one that
        // cannot be written is said, and the repair goes on (it matters only if this one is
        // stopped between steps 3 and 4: the next then needs --pack).
        Map<String, Noted> notes = new java.util.TreeMap<>(retired);
        for (Suspect s : damaged) {
          if (!s.missing && s.trailerUnread && !unread.containsKey(s)) {
            Set<ChunkId> held = new HashSet<>();
            Set<ChunkId> lostHere = new HashSet<>();
            s.indexed.forEach(e -> (lost.contains(e.id()) ? lostHere : held).add(e.id()));
            s.readable.forEach(e -> held.add(e.id()));
            held.removeAll(lost);
            notes.put(s.id.toString(), new Noted(s.fingerprint, held, lostHere));
          } else if (unread.containsKey(s) && !notes.containsKey(s.id.toString())) {
            notes.put(s.id.toString(), new Noted(s.fingerprint, Set.of(), Set.of())); // named
          }
        }
        if (!notes.equals(retired)) {
          try {
            writeRetired(notes);
          } catch (IOException e) {
            LOG.warn(
                "repair: {}; if this repair is stopped after it replaced index blobs, the next"
                    + " leaves the damaged packs whose trailer does not read alone: name them with"
                    + " --pack",
                e.getMessage());
          }
        }
        // 1. Salvaged chunks into new packs, then index blobs listing them.
        Map<ChunkId, ChunkLocation> salvagedAt = new HashMap<>();
        Recording writes = new Recording(store); // what this repair saved, by name
        long memory = ChunkIndex.defaultMemory() / 4;
        try (ChunkIndex fresh = new ChunkIndex(cacheDir, Math.max(1024, salvage.size()), memory);
            ChunkCompressor compressor = new ChunkCompressor(compressionLevel)) {
          ChunkPacker packer = new ChunkPacker(writes, codec, fresh, packSize, 16, p -> {});
          done = 0;
          for (Suspect s : damaged) {
            if (!s.missing) {
              byte[] bytes = load(s.name);
              // a chunk found not to read must still not read: an answer that differs from the
              // check's (a short read, audit K2) deleted the pack with chunks counted lost
              Set<ChunkId> read = new HashSet<>();
              s.readable.forEach(e -> read.add(e.id()));
              for (IndexEntry e : s.indexed) {
                if (!read.contains(e.id())
                    && decode(checker, s.name, bytes, e.id(), e.location()) != null) {
                  throw unreliable(s.name, e.id());
                }
              }
              for (IndexEntry e : s.readable) {
                if (!salvage.contains(e.id()) || fresh.contains(e.id())) {
                  continue;
                }
                byte[] plain = decode(checker, s.name, bytes, e.id(), e.location());
                if (plain == null) {
                  // it read a moment ago: the storage answers differently from one read to the
                  // next; nothing is deleted on such an answer
                  throw unreliable(s.name, e.id());
                }
                packer.add(e.id(), compressor.compress(plain, 0, plain.length), plain.length);
              }
            }
            listener.progress("salvage", ++done, damaged.size());
          }
          packer.flush();
          packsWritten = packer.packsWritten();
          indexesWritten += packer.indexesWritten();
          for (ChunkId id : salvage) {
            ChunkLocation l = fresh.get(id);
            if (l != null) {
              salvagedAt.put(id, l);
            }
          }
        }
        // Read back what was written, before anything is deleted: the storage repair exists to
        // distrust answered "done" for a pack rename that never happened, or a write it did not
        // keep, and the damaged pack went with the salvaged chunks' only copy (audit P1)
        readBack(salvagedAt, checker, writes);
        // 2. Replacements for the index blobs listing damaged packs.
        List<BlobName> replaced = new ArrayList<>();
        Set<IndexEntry> expected = new HashSet<>(); // what the blobs written must list
        salvagedAt.forEach((id, l) -> expected.add(new IndexEntry(id, l)));
        if (!adopt.isEmpty()) {
          // the packs no index blob lists, whose chunks were counted held (X-M1)
          List<IndexEntry> adopted = new ArrayList<>();
          adopt.forEach((id, l) -> adopted.add(new IndexEntry(id, l)));
          indexesWritten += IndexWriter.save(writes, codec, adopted);
          expected.addAll(adopted);
        }
        done = 0;
        for (BlobName n : indexNames) {
          List<IndexEntry> entries = indexes.get(n);
          if (entries != null) {
            List<IndexEntry> kept =
                entries.stream().filter(e -> !damagedIds.contains(e.location().pack())).toList();
            if (kept.size() != entries.size()) {
              if (!kept.isEmpty()) {
                indexesWritten += IndexWriter.save(writes, codec, kept);
                expected.addAll(kept);
              }
              replaced.add(n);
            }
          }
          listener.progress("write index", ++done, indexNames.size());
        }
        // and read back: a replacement not kept (audit P2) left the intact packs it lists, and
        // the salvaged chunks, in no index blob once the old ones are deleted
        Set<BlobName> written = readBackIndexes(writes, expected);
        // 3. The replaced index blobs.
        done = 0;
        for (BlobName n : replaced) {
          store.delete(n);
          indexesReplaced++;
          listener.progress("delete index", ++done, replaced.size());
        }
        // 4. The damaged packs: no index blob lists them now. Every blob read in step 1 must still
        // be there but those replaced: one that a listing missed and that lists a damaged pack
        // would list it deleted.
        Set<BlobName> kept = new HashSet<>(indexNames);
        replaced.forEach(kept::remove);
        Set<BlobName> lastSet = new HashSet<>(store.list(BlobType.INDEX));
        String differs = null;
        kept.addAll(written);
        for (BlobName n : kept) {
          if (!lastSet.contains(n)) {
            differs = "misses " + n + ", listed before";
            break;
          }
        }
        // and nothing else: one more is a blob no listing showed before (or a replaced one still
        // listed), which may list a damaged pack
        for (BlobName n : lastSet) {
          if (differs == null && !kept.contains(n)) {
            differs = "shows " + n + ", neither kept nor written";
          }
        }
        if (differs != null) {
          throw unreliableAfterReplacing("index/ listed before deleting packs " + differs, damaged);
        }
        done = 0;
        for (Suspect s : damaged) {
          if (!s.missing && !s.keepFile) {
            store.delete(s.name);
            if (store.stat(s.name).isPresent()) {
              // "deleted", and there (audit P4: a pack whose trailer does not read, no longer
              // listed by an index blob, was then left alone by every later repair)
              leftAlone.add(
                  s.name
                      + ": deleted, then still there (the storage is unreliable); no index blob"
                      + " lists it now: the next repair on this machine deletes it");
            } else {
              packsDeleted++;
            }
          }
          listener.progress("delete packs", ++done, damaged.size());
        }
        // the notes of packs still there stay, for the next repair
        Map<String, Noted> left = new java.util.TreeMap<>();
        for (Map.Entry<String, Noted> n : notes.entrySet()) {
          if (store.stat(new BlobName(BlobType.PACK, n.getKey())).isPresent()) {
            left.put(n.getKey(), n.getValue());
          }
        }
        if (!left.equals(notes)) {
          try {
            if (left.isEmpty()) {
              if (retiredFile != null) {
                Files.deleteIfExists(retiredFile);
              }
            } else {
              writeRetired(left);
            }
          } catch (IOException e) {
            LOG.warn("repair: {}", e.getMessage()); // the repair itself is done
          }
        }
      }
      return new Report(
          dryRun,
          packsChecked,
          List.copyOf(counted),
          intact,
          List.copyOf(leftAlone),
          salvage.size(),
          lost.size(),
          adopt.size(),
          affected,
          packsWritten,
          indexesWritten,
          indexesReplaced,
          packsDeleted,
          (System.nanoTime() - started) / 1e9,
          List.copyOf(damagedCopies),
          unlistedIndexes);
    } catch (IOException e) {
      // "not found" for a name: every one repair reads was listed or read a moment ago, or is
      // one it is writing, and nothing deletes blobs under its lock (audit S-L1: a bare path)
      String what =
          e instanceof NoSuchFileException
              ? e.getMessage()
                  + " not found, though listed, read or being written by this repair a moment"
                  + " ago: the storage answers unreliably (check its health)"
              : e.getMessage();
      throw new RepositoryException(
          "repair failed in the repository at '"
              + store.location()
              + "': "
              + what
              + " (the repository is still valid: run repair again)",
          e);
    }
  }

  /**
   * The entries of index blob {@code n}, or null if it is damaged (all of a blob or none of it, as
   * a backup reads it: it is not part of the index; prune replaces it) or gone.
   */
  private List<IndexEntry> readIndex(BlobName n) throws IOException {
    List<IndexEntry> entries;
    try {
      entries = MetadataBlobs.read(store, codec, n, IndexReader::read);
    } catch (NoSuchFileException e) {
      return null;
    } catch (UnsupportedRepositoryVersionException e) {
      // a newer granule's: replacing it would lose what that version added
      throw new UnsupportedRepositoryVersionException("repair: nothing changed: " + e.getMessage());
    } catch (RepositoryException | IllegalArgumentException e) {
      RepositoryUnreachableException.throwIfUnreachable(n, store.location(), e);
      LOG.warn("repair: damaged index blob {} left for prune: {}", n, e.getMessage());
      return null;
    }
    for (IndexEntry e : entries) {
      if (ChunkIndex.impossible(e.location(), codec) != null) {
        LOG.warn("repair: damaged index blob {} left for prune: chunk {}", n, e.id());
        return null;
      }
    }
    return entries;
  }

  /**
   * Pack {@code name} whole, as long as the store says it is: a read that returns fewer or more
   * bytes than its size (a flaky store's short read, audit K2) stops the repair before anything is
   * changed, rather than count the chunks it cut off as lost.
   */
  private byte[] load(BlobName name) throws IOException {
    long size =
        store
            .stat(name)
            .map(BlobInfo::size)
            .orElseThrow(() -> new NoSuchFileException(name.toString()));
    byte[] bytes = store.load(name);
    if (bytes.length != size) {
      throw new RepositoryException(
          "repair stopped: pack "
              + name
              + " read "
              + bytes.length
              + " bytes of its "
              + size
              + ": the storage is unreliable; nothing was deleted, the repository is valid (check"
              + " the storage's health, then run repair again)");
    }
    return bytes;
  }

  /**
   * Reads back the new packs holding {@code salvaged} (chunk → where it was written): each must be
   * there, whole (its checksums and trailer), with each salvaged record decoding to its chunk.
   * Stops the repair otherwise (nothing was deleted yet).
   */
  private void readBack(Map<ChunkId, ChunkLocation> salvaged, ChunkReader checker, Recording writes)
      throws IOException {
    Set<BlobName> unread = new HashSet<>();
    try {
      readBack(salvaged, checker, unread);
    } catch (RepositoryException e) {
      throw writes.undo(e, unread);
    }
  }

  /** As above; the pack that did not read back goes to {@code unread} before the stop. */
  private void readBack(
      Map<ChunkId, ChunkLocation> salvaged, ChunkReader checker, Set<BlobName> unread)
      throws IOException {
    Map<PackId, List<ChunkId>> byPack =
        new java.util.TreeMap<>(java.util.Comparator.comparing(PackId::toString));
    salvaged.forEach((id, l) -> byPack.computeIfAbsent(l.pack(), k -> new ArrayList<>()).add(id));
    for (Map.Entry<PackId, List<ChunkId>> p : byPack.entrySet()) {
      BlobName name = ChunkReader.packName(p.getKey());
      unread.clear();
      unread.add(name); // until it reads back whole
      byte[] bytes;
      try {
        bytes = load(name);
        PackReader.parse(name, bytes);
      } catch (NoSuchFileException e) {
        throw unreliable("new pack " + name + " written, then not found");
      } catch (RepositoryException | IllegalArgumentException e) {
        RepositoryUnreachableException.throwIfUnreachable(name, store.location(), e);
        throw unreliable(
            "new pack " + name + " written, then read back damaged: " + e.getMessage());
      }
      for (ChunkId id : p.getValue()) {
        if (decode(checker, name, bytes, id, salvaged.get(id)) == null) {
          throw unreliable(
              "new pack " + name + " written, then chunk " + id + " did not read back");
        }
      }
    }
    unread.clear();
  }

  /**
   * The index blobs {@code writes} saved, read back: each listed and reading whole, listing
   * together every entry of {@code expected}. Stops the repair otherwise, those blobs deleted again
   * (nothing else was deleted yet).
   */
  private Set<BlobName> readBackIndexes(Recording writes, Set<IndexEntry> expected)
      throws IOException {
    Set<BlobName> written = writes.saved(BlobType.INDEX);
    try {
      Set<BlobName> listed = new HashSet<>(store.list(BlobType.INDEX));
      Set<IndexEntry> missing = new HashSet<>(expected);
      for (BlobName n : written) {
        List<IndexEntry> entries = listed.contains(n) ? readIndex(n) : null;
        if (entries == null) {
          throw unreliable(
              "new index blob "
                  + n
                  + (listed.contains(n)
                      ? " written, then did not read back"
                      : " written, then not listed"));
        }
        entries.forEach(missing::remove);
      }
      if (!missing.isEmpty()) {
        throw unreliable(
            "the index blobs written do not list "
                + missing.size()
                + " of the entries written (chunk "
                + missing.iterator().next().id()
                + ")");
      }
    } catch (RepositoryException e) {
      throw writes.undo(e, Set.of());
    }
    return written;
  }

  /**
   * A store that notes the names saved through it: what a repair wrote, so that it can read those
   * back, and delete its own index blobs again where they do not (never one it did not write: a
   * listing may show a blob it hid before).
   */
  private static final class Recording
      extends io.granule.engine.internal.repo.blob.ForwardingBlobStore {
    private final List<BlobName> saved = java.util.Collections.synchronizedList(new ArrayList<>());

    Recording(BlobStore delegate) {
      super(delegate);
    }

    Set<BlobName> saved(BlobType type) {
      synchronized (saved) {
        Set<BlobName> out = new LinkedHashSet<>();
        for (BlobName n : saved) {
          if (n.type() == type) {
            out.add(n);
          }
        }
        return out;
      }
    }

    @Override
    public void save(BlobName name, java.nio.channels.FileChannel file, long length)
        throws IOException {
      saved.add(name);
      super.save(name, file, length);
    }

    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      saved.add(name);
      super.save(name, data);
    }

    @Override
    public void save(BlobName name, ByteBuffer data) throws IOException {
      saved.add(name);
      super.save(name, data);
    }

    @Override
    public void save(BlobName name, ByteBuffer data, Runnable released) throws IOException {
      saved.add(name);
      super.save(name, data, released);
    }

    @Override
    public void saveNew(BlobName name, byte[] data) throws IOException {
      saved.add(name);
      super.saveNew(name, data);
    }

    /**
     * Deletes the index blobs saved here, then the new packs of {@code unread} (those that did not
     * read back; none if an index blob could not be deleted), and returns {@code stop} saying so.
     * The other new packs stay, listed by no index blob.
     */
    RepositoryException undo(RepositoryException stop, Set<BlobName> unread) {
      String undone;
      try {
        for (BlobName n : saved(BlobType.INDEX)) {
          delegate.delete(n);
        }
        for (BlobName n : saved(BlobType.INDEX)) {
          if (delegate.stat(n).isPresent()) {
            // "deleted", and there (audit Q3): its packs stay, or it would list deleted packs
            return new RepositoryException(
                stop.getMessage()
                    + "; the index blobs it wrote could not be deleted again ("
                    + n
                    + " is still there): run 'granule prune', which replaces a damaged one, then"
                    + " repair again",
                stop);
          }
        }
        // then a pack that did not read back (written half, it was a damaged pack no index blob
        // lists, which later repairs left alone); the others stay, listed by none (a backup
        // adopts them, prune deletes them): a storage that answered "not found" for an index
        // blob of its own that was still there had the packs it lists deleted (audit R1)
        for (BlobName n : unread) {
          delegate.delete(n);
        }
        undone =
            "; the index blobs it wrote were deleted again"
                + (unread.isEmpty() ? "" : ", and the new pack that did not read back");
      } catch (IOException | RuntimeException e) {
        undone =
            "; deleting the packs and index blobs it wrote failed too ("
                + e.getMessage()
                + "): run 'granule prune', which replaces a damaged index blob, then repair again";
      }
      return new RepositoryException(stop.getMessage() + undone, stop);
    }
  }

  /**
   * How many of {@code noted} no index entry lists outside the damaged suspects of {@code byId}.
   */
  private static int unlisted(
      Set<ChunkId> noted, Map<BlobName, List<IndexEntry>> indexes, Map<PackId, Suspect> byId) {
    Set<ChunkId> missing = new HashSet<>(noted);
    for (List<IndexEntry> entries : indexes.values()) {
      if (entries == null) {
        continue;
      }
      for (IndexEntry e : entries) {
        Suspect other = byId.get(e.location().pack());
        if (other == null || !other.damaged) {
          missing.remove(e.id());
        }
      }
    }
    return missing.size();
  }

  /**
   * A pack an earlier repair noted: the file it read ({@link #fingerprint}), the chunks it held
   * that were not lost, and those lost (placed in it by the index, and not readable there).
   */
  private record Noted(String fingerprint, Set<ChunkId> held, Set<ChunkId> lost) {}

  /**
   * What an earlier repair noted in {@link #retiredFile}, by pack name (without {@code data/}).
   * Lines {@code pack NAME FINGERPRINT}, then {@code chunk ID} (held, not lost) and {@code lost
   * ID}. A pack noted without a fingerprint (an older note) matches no file.
   */
  private Map<String, Noted> readRetired() {
    Map<String, Noted> out = new java.util.TreeMap<>();
    if (retiredFile == null) {
      return out;
    }
    try {
      Noted current = null;
      for (String line : Files.readAllLines(retiredFile, StandardCharsets.UTF_8)) {
        String[] f = line.strip().split(" ");
        try {
          if (f[0].equals("pack") && (f.length == 2 || f.length == 3)) {
            current = new Noted(f.length == 3 ? f[2] : "", new HashSet<>(), new HashSet<>());
            out.put(PackId.parse(f[1]).toString(), current);
          } else if (f.length == 2 && f[0].equals("chunk") && current != null) {
            current.held().add(ChunkId.parse(f[1]));
          } else if (f.length == 2 && f[0].equals("lost") && current != null) {
            current.lost().add(ChunkId.parse(f[1]));
          }
        } catch (IllegalArgumentException e) {
          // not a name or id: ignored
        }
      }
    } catch (NoSuchFileException e) {
      // none: the last repair finished
    } catch (IOException e) {
      LOG.warn("repair: {} unreadable, ignored: {}", retiredFile, e.toString());
    }
    return out;
  }

  /** Notes {@code packs} in {@link #retiredFile}: written aside, synced, renamed. */
  private void writeRetired(Map<String, Noted> packs) throws IOException {
    if (retiredFile == null) {
      return;
    }
    StringBuilder text = new StringBuilder();
    packs.forEach(
        (p, n) -> {
          text.append("pack ").append(p).append(' ').append(n.fingerprint()).append('\n');
          n.held().forEach(c -> text.append("chunk ").append(c).append('\n'));
          n.lost().forEach(c -> text.append("lost ").append(c).append('\n'));
        });
    try {
      Files.createDirectories(retiredFile.getParent());
      Path tmp = retiredFile.resolveSibling(retiredFile.getFileName() + ".tmp");
      Files.deleteIfExists(tmp);
      try (FileChannel ch =
          FileChannel.open(
              tmp,
              Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
              PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
        ByteBuffer b = ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
          ch.write(b);
        }
        ch.force(false);
      }
      Files.move(
          tmp, retiredFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new IOException(
          "unable to write the note of the packs this repair deletes, "
              + retiredFile
              + ": "
              + e.getMessage(),
          e);
    }
  }

  /**
   * Stops the repair if a blob of {@code before} is not in {@code now} ({@code before} null: no
   * check): blobs under a lock are never deleted meanwhile, so the storage lists unreliably.
   */
  private static void requireListed(Set<BlobName> before, List<BlobName> now, String which) {
    if (before == null) {
      return;
    }
    Set<BlobName> listed = new HashSet<>(now);
    for (BlobName n : before) {
      if (!listed.contains(n)) {
        throw unreliable(which + " misses " + n + ", listed before");
      }
    }
  }

  /** The stop of a repair on storage that answers differently: {@code what} says where. */
  private static RepositoryException unreliable(String what) {
    return new RepositoryException(
        "repair stopped: "
            + what
            + ": the storage is unreliable; nothing was deleted, the repository is valid (check"
            + " the storage's health, then run repair again)");
  }

  /**
   * The stop of a repair, on storage that answers differently, after the index blobs listing the
   * damaged packs were replaced (step 3) and before those packs are deleted: {@code what} says
   * where.
   */
  private static RepositoryException unreliableAfterReplacing(String what, List<Suspect> damaged) {
    List<String> unread = new ArrayList<>();
    for (Suspect s : damaged) {
      if (!s.missing && s.trailerUnread) {
        unread.add(s.id.toString());
      }
    }
    return new RepositoryException(
        "repair stopped: "
            + what
            + ": the storage is unreliable; the salvaged chunks are stored and the index blobs that"
            + " listed the damaged packs were replaced, but no pack was deleted; the repository is"
            + " valid (check the storage's health, then run repair again"
            + (unread.isEmpty()
                ? ""
                : " on this machine, which deletes the packs whose trailer does not read as noted"
                    + " here; elsewhere, where no index blob lists them now, name them: 'granule"
                    + " repair --pack "
                    + String.join(" --pack ", unread)
                    + "'")
            + ")");
  }

  /** The stop on a chunk of pack {@code name} that read one way, then the other. */
  private static RepositoryException unreliable(BlobName name, ChunkId id) {
    return new RepositoryException(
        "repair stopped: pack "
            + name
            + " read differently twice (chunk "
            + id
            + "): the storage is unreliable; nothing was deleted, the repository is valid (check"
            + " the storage's health, then run repair again)");
  }

  /**
   * Reads suspect {@code s} whole and decides whether it is damaged, and which of its chunks read:
   * each chunk the index places in it, at the index's location, else at its trailer's; and the
   * chunks only its trailer lists. {@code listed}: a listing of packs had it (or verify read it):
   * nothing deletes packs meanwhile (repair's lock, either kind), so a listed pack that is not
   * found stops the repair.
   */
  private void check(Suspect s, boolean listed, ChunkReader checker) throws IOException {
    byte[] bytes;
    try {
      if (!listed && store.stat(s.name).isEmpty()) {
        throw new NoSuchFileException(s.name.toString());
      }
      bytes = load(s.name);
    } catch (NoSuchFileException e) {
      if (listed) {
        // listed a moment ago, and no pack is deleted under repair's lock (a prune waits for a
        // shared one too): taken for missing, its entries were dropped and the next repair
        // deleted it unread with its intact chunks (audit M1)
        throw unreliable(s.name + " listed, then not found");
      }
      s.missing = true;
      s.damaged = true;
      s.problem = "missing";
      return;
    }
    s.fingerprint = fingerprint(bytes);
    if (bytes.length > maxPackBytes) {
      s.damaged = true;
      s.problem = bytes.length + " bytes, more than a pack of this repository can have";
    }
    Map<ChunkId, PackEntry> inTrailer = new HashMap<>();
    try {
      s.trailer = PackReader.parse(s.name, bytes);
    } catch (UnsupportedRepositoryVersionException e) {
      throw new UnsupportedRepositoryVersionException("repair: nothing changed: " + e.getMessage());
    } catch (RepositoryException | IllegalArgumentException e) {
      s.damaged = true;
      if (s.problem == null) {
        s.problem = problem(e.getMessage());
      }
      try {
        // the trailer alone, if it still reads: a second place to look for each chunk
        s.trailer =
            UnlistedPacks.trailer(
                store, codec, s.name, PackReader.stat(store, s.name), maxPackBytes);
      } catch (NoSuchFileException gone) {
        throw gone;
      } catch (RepositoryException | IllegalArgumentException trailerToo) {
        s.trailer = List.of();
        s.trailerUnread = true;
      }
    }
    for (PackEntry t : s.trailer) {
      inTrailer.putIfAbsent(t.id(), t);
    }
    Set<ChunkId> seen = new HashSet<>();
    for (IndexEntry e : s.indexed) {
      if (!seen.add(e.id())) {
        continue;
      }
      ChunkLocation at = e.location();
      byte[] plain = decode(checker, s.name, bytes, e.id(), at);
      if (plain == null) {
        PackEntry t = inTrailer.get(e.id());
        ChunkLocation other =
            t == null
                ? null
                : new ChunkLocation(s.id, t.offset(), t.storedLength(), t.rawLength(), t.flags());
        if (other != null && !other.equals(at)) {
          plain = decode(checker, s.name, bytes, e.id(), other);
          at = plain == null ? null : other;
        } else {
          at = null;
        }
        if (s.problem == null) {
          s.problem = "chunk " + e.id() + " does not read";
        }
        s.damaged = true;
      }
      if (plain != null) {
        s.readable.add(new IndexEntry(e.id(), at));
      }
    }
    if (s.damaged) {
      // chunks only the trailer lists: not in the index (a crashed writer's), kept if they read
      for (PackEntry t : s.trailer) {
        if (seen.add(t.id())) {
          ChunkLocation at =
              new ChunkLocation(s.id, t.offset(), t.storedLength(), t.rawLength(), t.flags());
          if (decode(checker, s.name, bytes, t.id(), at) != null) {
            s.readable.add(new IndexEntry(t.id(), at));
          }
        }
      }
    }
  }

  /**
   * The plaintext of chunk {@code id} stored at {@code at} in {@code pack}'s {@code bytes}, checked
   * (decoded, authenticated where encrypted, decompressed, hashed to its id); null if it does not
   * read.
   */
  private static byte[] decode(
      ChunkReader checker, BlobName pack, byte[] bytes, ChunkId id, ChunkLocation at) {
    if (at.offset() < 0
        || at.storedLength() < 0
        || at.rawLength() < 0
        || at.rawLength() > ChunkIndex.MAX_RAW_LENGTH
        || at.offset() + at.storedLength() > bytes.length) {
      return null;
    }
    byte[] stored =
        Arrays.copyOfRange(bytes, (int) at.offset(), (int) (at.offset() + at.storedLength()));
    try {
      return checker.decode(id, pack, stored, at.flags(), at.rawLength());
    } catch (RepositoryException | IllegalArgumentException | IllegalStateException e) {
      return null;
    }
  }

  /**
   * Whether the record of {@code e} (in a pack not read whole) reads: decrypted, decompressed and
   * hashed to its id. If not, its pack's name goes to {@code damaged}; a store that does not answer
   * stops the repair (nothing changed yet).
   */
  private boolean copyReads(ChunkReader checker, IndexEntry e, Set<String> damaged) {
    try {
      checker.read(e.id(), e.location());
      return true;
    } catch (RepositoryException | IllegalArgumentException | IllegalStateException x) {
      RepositoryUnreachableException.throwIfUnreachable(
          ChunkReader.packName(e.location().pack()), store.location(), x);
      if (io.granule.engine.internal.repo.blob.ShortReadException.in(x)) {
        // the read ended before the size the storage gives the pack: not damage (audit P3)
        throw unreliable(ChunkReader.packName(e.location().pack()) + " read short");
      }
      boolean readsNow;
      try {
        checker.read(e.id(), e.location());
        readsNow = true;
      } catch (RepositoryException | IllegalArgumentException | IllegalStateException again) {
        RepositoryUnreachableException.throwIfUnreachable(
            ChunkReader.packName(e.location().pack()), store.location(), again);
        readsNow = false;
      }
      if (readsNow) {
        // it did not read, and then did: not damage to name (audit P3: an intact copy pack named
        // "damaged too" on one short read)
        throw unreliable(ChunkReader.packName(e.location().pack()), e.id());
      }
      String pack = ChunkReader.packName(e.location().pack()).toString();
      if (damaged.add(pack)) {
        LOG.warn("repair: pack {} is damaged too: chunk {} does not read there", pack, e.id());
      }
      return false;
    }
  }

  /** {@code message} without the advice to run verify that damage messages end with. */
  private static String problem(String message) {
    String advice = " (run 'granule verify' to list the damage)";
    return message != null && message.endsWith(advice)
        ? message.substring(0, message.length() - advice.length())
        : message;
  }

  /** The snapshots (manifest names, sorted) that use a chunk of {@code lost}. */
  /**
   * Stops the repair if {@code n}, which did not read just now, read whole in the verify before it
   * (audit L2: a short read of a snapshot's index left that snapshot unnamed, exit 0, while it used
   * a lost chunk); returns if verify named it damaged too (it is reported as other damage).
   */
  private static void requireDamagedBefore(Seen seen, BlobName n) {
    if (!seen.damaged().contains(n.toString())) {
      throw unreliable(n + " read whole, then not");
    }
  }

  /**
   * The snapshots (manifest names, sorted) that use a chunk of {@code lost}; adds the fixed and
   * dynamic indexes every manifest read names to {@code named}.
   */
  private List<String> snapshotsUsing(Set<ChunkId> lost, Seen seen, Set<BlobName> named)
      throws IOException {
    List<String> out = new ArrayList<>();
    List<BlobName> listed = store.list(BlobType.SNAPSHOT);
    // every manifest listed before verify, still listed (audit N2: a snapshot a listing missed was
    // not named, exit 0 "repaired", while it used a lost chunk)
    requireListed(seen.snapshots(), listed, "repair's listing of snapshots/");
    for (BlobName n : listed) {
      Manifest m;
      try {
        m = MetadataBlobs.read(store, codec, n, ManifestReader::read);
      } catch (NoSuchFileException e) {
        if (seen.snapshots() != null) {
          throw unreliable(n + " listed, then not found"); // no forget runs under this lock
        }
        continue;
      } catch (RepositoryException | IllegalArgumentException e) {
        RepositoryUnreachableException.throwIfUnreachable(n, store.location(), e);
        requireDamagedBefore(seen, n);
        LOG.warn("repair: snapshot {} is damaged, not checked for lost chunks", n);
        continue;
      }
      boolean uses = false;
      m.disks().forEach(d -> named.add(new BlobName(BlobType.FIXED_INDEX, d.fixedIndex())));
      m.streams().forEach(t -> named.add(new BlobName(BlobType.DYNAMIC_INDEX, t.dynamicIndex())));
      for (Manifest.DiskEntry d : m.disks()) {
        if (!uses) {
          BlobName fx = new BlobName(BlobType.FIXED_INDEX, d.fixedIndex());
          try (var f = FixedIndexReader.load(store, codec, fx)) {
            uses = usesAny(lost, f.count(), f::get);
          } catch (NoSuchFileException | RepositoryException | IllegalArgumentException e) {
            requireDamagedBefore(seen, fx);
            LOG.warn("repair: {} of snapshot {} unreadable: {}", fx, n.name(), e.getMessage());
          }
        }
      }
      for (Manifest.StreamEntry s : m.streams()) {
        if (!uses) {
          BlobName dn = new BlobName(BlobType.DYNAMIC_INDEX, s.dynamicIndex());
          try (var d = DynamicIndexReader.load(store, codec, dn)) {
            uses = usesAny(lost, d.count(), d::get);
          } catch (NoSuchFileException | RepositoryException | IllegalArgumentException e) {
            requireDamagedBefore(seen, dn);
            LOG.warn("repair: {} of snapshot {} unreadable: {}", dn, n.name(), e.getMessage());
          }
        }
      }
      if (uses) {
        out.add(n.name());
      }
    }
    out.sort(null);
    return out;
  }

  /**
   * The fixed and dynamic indexes not in {@code named} that use a chunk of {@code lost} (sorted): a
   * manifest that every listing of the run left out went unnamed, exit 0 "repaired", while its
   * snapshot used a lost chunk (audit N2, hidden from all listings). One that does not read is left
   * out: verify names it.
   */
  private List<String> unlistedUsing(Set<ChunkId> lost, Set<BlobName> named) throws IOException {
    List<String> out = new ArrayList<>();
    for (BlobType type : List.of(BlobType.FIXED_INDEX, BlobType.DYNAMIC_INDEX)) {
      for (BlobName n : store.list(type)) {
        if (named.contains(n)) {
          continue;
        }
        boolean uses;
        try {
          if (type == BlobType.FIXED_INDEX) {
            try (var f = FixedIndexReader.load(store, codec, n)) {
              uses = usesAny(lost, f.count(), f::get);
            }
          } else {
            try (var d = DynamicIndexReader.load(store, codec, n)) {
              uses = usesAny(lost, d.count(), d::get);
            }
          }
        } catch (NoSuchFileException | RepositoryException | IllegalArgumentException e) {
          RepositoryUnreachableException.throwIfUnreachable(n, store.location(), e);
          LOG.warn(
              "repair: {}, which no snapshot read names, is unreadable: {}", n, e.getMessage());
          continue;
        }
        if (uses) {
          out.add(n.toString());
        }
      }
    }
    out.sort(null);
    return List.copyOf(out);
  }

  /**
   * What {@link #unplacedUse} found: the chunks snapshot indexes use that no index entry places in
   * a pack where they read, each with the first index using it (at most {@link #UNPLACED}; past
   * that, or where an index does not read, {@code blocked} says what, for every pack).
   */
  private record Unplaced(Map<ChunkId, BlobName> chunks, Use blocked, Set<String> named) {
    /** One use of a chunk placed nowhere: {@code what}, said; whether no manifest names it. */
    record Use(String what, boolean unnamed) {}

    /** The first use of a chunk not in {@code known}; null if none. */
    Use firstNotIn(Set<ChunkId> known) {
      if (blocked != null) {
        return blocked;
      }
      for (Map.Entry<ChunkId, BlobName> c : chunks.entrySet()) {
        if (!known.contains(c.getKey())) {
          BlobName n = c.getValue();
          return new Use(
              n
                  + " uses chunk "
                  + c.getKey()
                  + ", which no index blob places in a pack it reads in",
              !named.contains(n.name()));
        }
      }
      return null;
    }
  }

  /**
   * Where the packs of {@code present} that no entry of {@code indexes} places a chunk in, and that
   * are not {@code suspects}, hold their chunks: each pack's trailer read alone (its size at most a
   * pack's), then every record it lists decoded (authenticated with the pack's name where
   * encrypted), decompressed and hashed to its id, as a backup checks such a pack before it adopts
   * it ({@link UnlistedPacks}); a pack that fails is left out (verify names it). With {@code
   * partly} (verify found index blobs, or snapshot indexes, damaged: an index blob lost or
   * damaged), the packs index blobs list are read the same way for the records their trailer lists
   * that no entry places in an intact pack, those that check taken (audit Z-M2: a pack two index
   * blobs list, one of them lost, kept the records only that one placed unindexed for good). One
   * place per chunk.
   */
  private Map<ChunkId, ChunkLocation> unindexedChunks(
      Map<BlobName, List<IndexEntry>> indexes,
      Set<PackId> present,
      Set<PackId> suspects,
      ChunkReader checker,
      boolean partly)
      throws IOException {
    Set<PackId> listed = new HashSet<>();
    Set<ChunkId> placedIntact = new HashSet<>();
    for (List<IndexEntry> entries : indexes.values()) {
      if (entries != null) {
        for (IndexEntry e : entries) {
          PackId p = e.location().pack();
          listed.add(p);
          if (present.contains(p) && !suspects.contains(p)) {
            placedIntact.add(e.id());
          }
        }
      }
    }
    Map<ChunkId, ChunkLocation> out = new LinkedHashMap<>();
    if (partly) {
      List<PackId> packs = new ArrayList<>();
      for (PackId p : present) {
        if (listed.contains(p) && !suspects.contains(p)) {
          packs.add(p);
        }
      }
      packs.sort(java.util.Comparator.comparing(PackId::toString));
      for (PackId p : packs) {
        BlobName name = ChunkReader.packName(p);
        try {
          List<PackEntry> wanted = new ArrayList<>();
          for (PackEntry e :
              UnlistedPacks.trailer(
                  store, codec, name, PackReader.stat(store, name), maxPackBytes)) {
            if (!e.id().isZero() && !placedIntact.contains(e.id()) && !out.containsKey(e.id())) {
              wanted.add(e);
            }
          }
          if (wanted.isEmpty()) {
            continue;
          }
          int[] bad = new int[1];
          for (PackEntry e :
              UnlistedPacks.checkRecords(store, name, wanted, checker, (e, ex) -> bad[0]++)) {
            out.putIfAbsent(
                e.id(),
                new ChunkLocation(p, e.offset(), e.storedLength(), e.rawLength(), e.flags()));
          }
          if (bad[0] > 0) {
            LOG.warn(
                "repair: {} of the records of pack {} that no intact index entry places do not"
                    + " read now: not indexed (verify read the pack whole: run repair again; a"
                    + " record that reads differently each time means unreliable storage)",
                bad[0],
                name);
          }
        } catch (IOException | RuntimeException e) {
          RepositoryUnreachableException.throwIfUnreachable(name, store.location(), e);
          if (e instanceof NoSuchFileException) {
            throw unreliable(name + " listed, then not found");
          }
          // verify read its trailer whole (it is no suspect): a read that failed now (audit AA-L3)
          LOG.warn(
              "repair: the trailer of pack {} does not read now, so the records of it that no"
                  + " intact index entry places are not indexed this run (verify read it whole:"
                  + " run repair again): {}",
              name,
              e.toString());
        }
      }
    }
    List<PackId> unknown = new ArrayList<>();
    for (PackId p : present) {
      if (!listed.contains(p) && !suspects.contains(p)) {
        unknown.add(p);
      }
    }
    unknown.sort(java.util.Comparator.comparing(PackId::toString));
    for (PackId p : unknown) {
      BlobName name = ChunkReader.packName(p);
      List<PackEntry> entries;
      try {
        entries =
            UnlistedPacks.checkRecords(
                store,
                name,
                UnlistedPacks.trailer(
                    store, codec, name, PackReader.stat(store, name), maxPackBytes),
                checker,
                null);
      } catch (IOException | RuntimeException e) {
        RepositoryUnreachableException.throwIfUnreachable(name, store.location(), e);
        if (e instanceof NoSuchFileException) {
          throw unreliable(
              name + " listed, then not found"); // nothing deletes packs under the lock
        }
        LOG.warn(
            "repair: pack {}, which no index blob lists, does not read: its chunks are not"
                + " indexed (if verify did not name it, run repair again): {}",
            name,
            e.toString());
        continue;
      }
      for (PackEntry e : entries) {
        out.putIfAbsent(
            e.id(), new ChunkLocation(p, e.offset(), e.storedLength(), e.rawLength(), e.flags()));
      }
    }
    return out;
  }

  /** The most chunks placed nowhere {@link #unplacedUse} names one by one. */
  private static final int UNPLACED = 1 << 20;

  /**
   * The chunks that the fixed and dynamic indexes use, listed or named by a manifest listed (a
   * manifest the storage hides names its indexes to none, audit S-H1; an index left out of every
   * listing is still named by its manifest, audit U-H2), and that no index entry of {@code indexes}
   * places in a present pack not damaged, nor read in a damaged suspect. An index that does not
   * read, or that a manifest names and that is not there, blocks every pack: what it uses is not
   * known. The packs not damaged are taken as they are, not read. The fixed and dynamic indexes
   * listed before verify ({@code seen.items()}, null: no check) must be listed again, and no more:
   * nothing adds or deletes them under repair's lock (audit T-H1).
   */
  private Unplaced unplacedUse(
      Map<BlobName, List<IndexEntry>> indexes,
      Map<PackId, Suspect> byId,
      Set<PackId> present,
      Seen seen,
      Set<ChunkId> unindexed)
      throws IOException {
    Set<BlobName> before = seen.items();
    List<BlobName> listed = new ArrayList<>(store.list(BlobType.FIXED_INDEX));
    listed.addAll(store.list(BlobType.DYNAMIC_INDEX));
    if (before != null) {
      requireListed(before, listed, "repair's listing of fixed/ and dynamic/");
      for (BlobName n : listed) {
        if (!before.contains(n)) {
          throw unreliable(n + " listed now, not before verify");
        }
      }
    }
    Set<String> named = new HashSet<>(); // the indexes the manifests listed name
    Set<BlobName> items = new LinkedHashSet<>(listed);
    for (BlobName m : store.list(BlobType.SNAPSHOT)) {
      try {
        Manifest manifest = MetadataBlobs.read(store, codec, m, ManifestReader::read);
        for (Manifest.DiskEntry d : manifest.disks()) {
          named.add(d.fixedIndex());
          items.add(new BlobName(BlobType.FIXED_INDEX, d.fixedIndex()));
        }
        for (Manifest.StreamEntry st : manifest.streams()) {
          named.add(st.dynamicIndex());
          items.add(new BlobName(BlobType.DYNAMIC_INDEX, st.dynamicIndex()));
        }
      } catch (NoSuchFileException | RepositoryException | IllegalArgumentException e) {
        RepositoryUnreachableException.throwIfUnreachable(m, store.location(), e);
        // its indexes count as named by none: said so where one blocks
      }
    }
    long expected = 0;
    for (List<IndexEntry> entries : indexes.values()) {
      expected += entries == null ? 0 : entries.size();
    }
    Map<ChunkId, BlobName> out = new LinkedHashMap<>();
    // off the heap, as the repository's own index: 10^8 entries would not fit there twice
    try (ChunkIndex placed =
        new ChunkIndex(cacheDir, Math.max(1024, expected), ChunkIndex.defaultMemory() / 4)) {
      for (List<IndexEntry> entries : indexes.values()) {
        if (entries == null) {
          continue;
        }
        for (IndexEntry e : entries) {
          Suspect s = byId.get(e.location().pack());
          if (s == null ? present.contains(e.location().pack()) : !s.damaged) {
            placed.put(e.id(), PLACED);
          }
        }
      }
      for (Suspect s : byId.values()) {
        s.readable.forEach(e -> placed.put(e.id(), PLACED));
      }
      unindexed.forEach(id -> placed.put(id, PLACED)); // indexed with the salvaged chunks
      for (BlobName n : items) {
        try {
          if (n.type() == BlobType.FIXED_INDEX) {
            try (var f = FixedIndexReader.load(store, codec, n)) {
              if (!unplaced(placed, f.count(), f::get, n, out)) {
                return new Unplaced(out, tooMany(), named);
              }
            }
          } else {
            try (var d = DynamicIndexReader.load(store, codec, n)) {
              if (!unplaced(placed, d.count(), d::get, n, out)) {
                return new Unplaced(out, tooMany(), named);
              }
            }
          }
        } catch (NoSuchFileException | RepositoryException | IllegalArgumentException e) {
          RepositoryUnreachableException.throwIfUnreachable(n, store.location(), e);
          boolean wasListed = listed.contains(n);
          if (before != null
              && wasListed
              && named.contains(n.name())
              && !seen.damaged().contains(n.toString())) {
            // verify read it whole through its manifest a moment ago (audit L2)
            throw unreliable(n + " read whole, then not");
          }
          return new Unplaced(
              out,
              new Unplaced.Use(
                  n + (wasListed ? " does not read (" + e.getMessage() + ")" : " is not listed"),
                  !named.contains(n.name())),
              named);
        }
      }
    }
    return new Unplaced(out, null, named);
  }

  private static Unplaced.Use tooMany() {
    return new Unplaced.Use(
        "more than " + UNPLACED + " chunks the snapshots' indexes use are placed nowhere", false);
  }

  /**
   * Adds to {@code out} the ids of {@code ids} not in {@code placed}, with {@code index}; false
   * once {@code out} would pass {@link #UNPLACED}.
   */
  private static boolean unplaced(
      ChunkIndex placed,
      int count,
      IntFunction<ChunkId> ids,
      BlobName index,
      Map<ChunkId, BlobName> out) {
    for (int i = 0; i < count; i++) {
      ChunkId id = ids.apply(i);
      if (id != null && !id.isZero() && !placed.contains(id) && !out.containsKey(id)) {
        if (out.size() >= UNPLACED) {
          return false;
        }
        out.put(id, index);
      }
    }
    return true;
  }

  /** The mark of a chunk {@link #unplacedUse} found placed. */
  private static final ChunkLocation PLACED = new ChunkLocation(new PackId(0, 0), 0, 0, 0, 0);

  /** A pack file's size and SHA-256: which file a retired note means (audit S-H2). */
  private static String fingerprint(byte[] bytes) {
    try {
      return bytes.length
          + ":"
          + java.util.HexFormat.of()
              .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JVM", e);
    }
  }

  private static boolean usesAny(Set<ChunkId> lost, int count, IntFunction<ChunkId> ids) {
    for (int i = 0; i < count; i++) {
      ChunkId id = ids.apply(i);
      if (id != null && lost.contains(id)) {
        return true;
      }
    }
    return false;
  }
}
