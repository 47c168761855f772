package io.granule.engine.internal.repo.store;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackWriter;
import java.io.IOException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

/**
 * The write side of the chunk store: decides which chunks are new, collects them into packs and
 * writes packs and index blobs in the crash-safe order: a pack is saved (durable) before any index
 * blob lists its chunks. Index blobs are written every {@code packsPerIndex} packs and on {@link
 * #flush}; a crash between leaves packs that no index lists, which are only garbage for a later
 * prune.
 *
 * <p>A chunk enters the {@link ChunkIndex} as soon as it is added to the open pack, so later copies
 * deduplicate against it; such entries are durable only after {@link #flush}. If a backup fails
 * before that, the caller must rebuild the chunk index from the index blobs.
 *
 * <p>Thread-safe: {@link #claim} and {@link #add} are called by several workers. After a failed
 * save every later {@link #add} and {@link #flush} rethrows that same failure.
 */
public final class ChunkPacker {
  private static final SecureRandom RANDOM = new SecureRandom();

  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkIndex index;
  private final int packSize;
  private final int packsPerIndex;
  private final Consumer<PackId> indexed;
  private final Set<ChunkId> inFlight = new HashSet<>();
  private final List<IndexEntry> unindexed = new ArrayList<>();
  private PackId packId;
  private PackWriter pack;
  private int packsSinceIndex;
  private long packsWritten;
  private long indexesWritten;
  private IOException failure;

  /**
   * A packer saving packs of about {@code packSize} bytes and an index blob every {@code
   * packsPerIndex} packs; {@code indexed} hears of each pack once an index blob lists it.
   */
  public ChunkPacker(
      BlobStore store,
      BlobCodec codec,
      ChunkIndex index,
      int packSize,
      int packsPerIndex,
      Consumer<PackId> indexed) {
    this.store = store;
    this.codec = codec;
    this.index = index;
    this.packSize = packSize;
    this.packsPerIndex = packsPerIndex;
    this.indexed = indexed;
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

  /**
   * Adds a claimed chunk to the open pack, saving the pack when it reaches the target size.
   *
   * @return the stored length (after the codec)
   */
  public synchronized int add(ChunkId id, ChunkCompressor.Stored stored, int rawLength)
      throws IOException {
    checkNotFailed();
    if (pack == null) {
      packId = PackId.random();
      pack = new PackWriter(packSize + (packSize >> 3));
    }
    byte[] bytes = codec.encode(ChunkReader.packName(packId), stored.bytes());
    PackEntry e = pack.add(id, bytes, rawLength, stored.flags());
    index.put(
        id, new ChunkLocation(packId, e.offset(), e.storedLength(), e.rawLength(), e.flags()));
    inFlight.remove(id);
    if (pack.size() >= packSize) {
      savePack();
    }
    return bytes.length;
  }

  /** Saves the open pack and writes an index blob for every pack not yet indexed. */
  public synchronized void flush() throws IOException {
    checkNotFailed();
    if (pack != null) {
      savePack();
    }
    if (!unindexed.isEmpty()) {
      saveIndex();
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

  private void checkNotFailed() throws IOException {
    if (failure != null) {
      throw failure;
    }
  }

  private void savePack() throws IOException {
    byte[] file = pack.finish();
    try {
      store.save(ChunkReader.packName(packId), file);
    } catch (IOException e) {
      // Every later call reports this same failure: the packer cannot continue without the pack.
      failure = e;
      throw e;
    }
    for (PackEntry e : pack.entries()) {
      unindexed.add(
          new IndexEntry(
              e.id(),
              new ChunkLocation(packId, e.offset(), e.storedLength(), e.rawLength(), e.flags())));
    }
    pack = null;
    packId = null;
    packsWritten++;
    if (++packsSinceIndex >= packsPerIndex) {
      saveIndex();
    }
  }

  private void saveIndex() throws IOException {
    byte[] id = new byte[32];
    RANDOM.nextBytes(id);
    BlobName name = new BlobName(BlobType.INDEX, Hex.encode(id));
    try {
      store.save(name, codec.encode(name, IndexWriter.write(unindexed)));
    } catch (IOException e) {
      failure = e;
      throw e;
    }
    unindexed.stream().map(e -> e.location().pack()).distinct().forEach(indexed);
    unindexed.clear();
    packsSinceIndex = 0;
    indexesWritten++;
  }
}
