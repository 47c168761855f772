package io.granule.engine.internal.repo.store;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Reads one chunk by id: looks it up in the {@link ChunkIndex}, loads just its record from the pack
 * (a range load), decodes, decompresses and checks that the plaintext hashes to the id. It never
 * returns wrong bytes: any mismatch is a {@link RepositoryCorruptedException} naming the chunk and
 * the pack. Thread-safe.
 */
public final class ChunkReader {
  private final BlobStore store;
  private final BlobCodec codec;
  private final ChunkIndex index;
  private final ThreadLocal<ChunkHasher> hasher;
  private final ThreadLocal<ChunkCompressor> compressor =
      ThreadLocal.withInitial(() -> new ChunkCompressor(1));
  private final AtomicLong storedBytesLoaded = new AtomicLong();

  public ChunkReader(BlobStore store, BlobCodec codec, ChunkIndex index, ChunkHasher hasher) {
    this.store = store;
    this.codec = codec;
    this.index = index;
    this.hasher = ThreadLocal.withInitial(hasher::copy);
  }

  /** The pack blob name of a pack id. */
  public static BlobName packName(io.granule.engine.internal.repo.PackId pack) {
    return new BlobName(BlobType.PACK, pack.toString());
  }

  /** Total stored bytes loaded from packs by this reader. */
  public long storedBytesLoaded() {
    return storedBytesLoaded.get();
  }

  /** The location of {@code id}, or null if no index lists it. */
  public ChunkLocation locate(ChunkId id) {
    return index.get(id);
  }

  /**
   * The plaintext of chunk {@code id}.
   *
   * @throws RepositoryCorruptedException if the chunk is not indexed, its pack is missing or
   *     damaged, or its content does not hash to {@code id}
   */
  public byte[] read(ChunkId id) {
    ChunkLocation loc = index.get(id);
    if (loc == null) {
      throw new RepositoryCorruptedException(
          "chunk " + id + " is not in any index (run 'granule verify' to list the damage)");
    }
    return read(id, loc);
  }

  /** The plaintext of chunk {@code id} stored at {@code loc}, checked as by {@link #read}. */
  public byte[] read(ChunkId id, ChunkLocation loc) {
    BlobName pack = packName(loc.pack());
    byte[] stored;
    try {
      stored = store.load(pack, loc.offset(), loc.storedLength());
    } catch (NoSuchFileException e) {
      throw new RepositoryCorruptedException(
          "chunk "
              + id
              + ": pack "
              + pack
              + " is missing (run 'granule verify' to list the damage)",
          e);
    } catch (IOException e) {
      throw new RepositoryCorruptedException(
          "chunk " + id + ": unable to read pack " + pack + ": " + e.getMessage(), e);
    }
    storedBytesLoaded.addAndGet(stored.length);
    return decode(id, pack, stored, loc.flags(), loc.rawLength());
  }

  /**
   * Decodes, decompresses and hash-checks a stored record of chunk {@code id} from {@code pack}.
   */
  public byte[] decode(ChunkId id, BlobName pack, byte[] stored, int flags, int rawLength) {
    byte[] plain;
    try {
      plain = compressor.get().decompress(codec.decode(pack, stored), flags, rawLength);
    } catch (IllegalArgumentException e) {
      throw new RepositoryCorruptedException(
          "chunk "
              + id
              + " in pack "
              + pack
              + ": undecodable: "
              + e.getMessage()
              + " (run 'granule verify' to list the damage)",
          e);
    }
    ChunkId actual = hasher.get().hash(plain, 0, plain.length);
    if (!actual.equals(id)) {
      throw BlobFrames.corrupted("chunk " + id + " in pack " + pack, "hash mismatch", actual, id);
    }
    return plain;
  }
}
