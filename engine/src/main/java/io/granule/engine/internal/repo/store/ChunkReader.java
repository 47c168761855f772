package io.granule.engine.internal.repo.store;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RepositoryUnreachableException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.ChunkFlags;
import java.io.IOException;
import java.nio.ByteBuffer;
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
  private final ChunkHasher hasherPrototype;
  private final ThreadLocal<ChunkHasher> hasher;
  private final ThreadLocal<ChunkCompressor> compressor =
      ThreadLocal.withInitial(() -> new ChunkCompressor(1));
  private final AtomicLong storedBytesLoaded = new AtomicLong();

  /** Whether {@link #close} closes the index: one made for this reader alone. */
  private final boolean ownsIndex;

  public ChunkReader(BlobStore store, BlobCodec codec, ChunkIndex index, ChunkHasher hasher) {
    this(store, codec, index, hasher, false);
  }

  /** A reader whose {@link #close} closes {@code index} if {@code ownsIndex}. */
  public ChunkReader(
      BlobStore store, BlobCodec codec, ChunkIndex index, ChunkHasher hasher, boolean ownsIndex) {
    this.store = store;
    this.codec = codec;
    this.index = index;
    this.hasherPrototype = hasher.copy();
    this.hasher = ThreadLocal.withInitial(hasherPrototype::copy);
    this.ownsIndex = ownsIndex;
  }

  /** Closes the index if this reader owns it (a reader shared by many disks owns nothing). */
  public void close() {
    if (ownsIndex && index != null) {
      index.close();
    }
  }

  /** The pack blob name of a pack id. */
  public static BlobName packName(io.granule.engine.internal.repo.PackId pack) {
    return new BlobName(BlobType.PACK, pack.toString());
  }

  /** Total stored bytes loaded from packs by this reader. */
  public long storedBytesLoaded() {
    return storedBytesLoaded.get();
  }

  /**
   * A hint that {@code length} stored bytes of {@code pack} from {@code offset} will be read soon
   * (see {@link BlobStore#prefetch}); runs on the calling thread, never fails.
   */
  public void prefetch(
      io.granule.engine.internal.repo.PackId pack, long offset, long length, long useful) {
    store.prefetch(packName(pack), offset, length, useful);
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
    return read(id, location(id));
  }

  /**
   * The location of {@code id}.
   *
   * @throws RepositoryCorruptedException if no index lists it
   */
  public ChunkLocation location(ChunkId id) {
    ChunkLocation loc = index.get(id);
    if (loc == null) {
      throw new RepositoryCorruptedException(
          "chunk " + id + " is not in any index (run 'granule verify' to list the damage)");
    }
    return loc;
  }

  /** The plaintext of chunk {@code id} stored at {@code loc}, checked as by {@link #read}. */
  public byte[] read(ChunkId id, ChunkLocation loc) {
    BlobName pack = packName(loc.pack());
    checkLocation(id, pack, loc);
    return decode(id, pack, load(id, pack, loc), loc.flags(), loc.rawLength());
  }

  /** The stored record of chunk {@code id} at {@code loc} in {@code pack}. */
  private byte[] load(ChunkId id, BlobName pack, ChunkLocation loc) {
    byte[] stored;
    try {
      stored = store.load(pack, loc.offset(), loc.storedLength());
    } catch (NoSuchFileException e) {
      throw missingPack(id, pack, e);
    } catch (IOException e) {
      throw unreadablePack(id, pack, e);
    }
    storedBytesLoaded.addAndGet(stored.length);
    return stored;
  }

  /**
   * As {@link #load(ChunkId, BlobName, ChunkLocation)}, into the bytes remaining in {@code dst}.
   */
  private void load(ChunkId id, BlobName pack, ChunkLocation loc, ByteBuffer dst) {
    int length = dst.remaining();
    try {
      store.load(pack, loc.offset(), dst);
    } catch (NoSuchFileException e) {
      throw missingPack(id, pack, e);
    } catch (IOException e) {
      throw unreadablePack(id, pack, e);
    }
    storedBytesLoaded.addAndGet(length);
  }

  /**
   * Refuses, as damage, a location no chunk can have ({@link ChunkIndex#impossible}) before
   * anything is allocated or read for it: index blobs are checked as they are loaded, but an index
   * kept between runs by an earlier version was not (audit12 L1: a stored length near 2^31 made
   * restore fail with "capacity < 0", or run out of memory).
   */
  private void checkLocation(ChunkId id, BlobName pack, ChunkLocation loc) {
    String why = ChunkIndex.impossible(loc, codec);
    if (why != null) {
      throw new RepositoryCorruptedException(
          "chunk "
              + id
              + " in pack "
              + pack
              + ": the index gives an "
              + why
              + " (run 'granule verify' to list the damage)");
    }
  }

  private static RepositoryCorruptedException missingPack(
      ChunkId id, BlobName pack, NoSuchFileException e) {
    return new RepositoryCorruptedException(
        "chunk " + id + ": pack " + pack + " is missing (run 'granule verify' to list the damage)",
        e);
  }

  private RepositoryCorruptedException unreadablePack(ChunkId id, BlobName pack, IOException e) {
    RepositoryUnreachableException.throwIfUnreachable(pack, store.location(), e);
    return new RepositoryCorruptedException(
        "chunk " + id + ": unable to read pack " + pack + ": " + e.getMessage(), e);
  }

  private static RepositoryCorruptedException undecodable(
      ChunkId id, BlobName pack, IllegalArgumentException e) {
    return new RepositoryCorruptedException(
        "chunk "
            + id
            + " in pack "
            + pack
            + ": undecodable: "
            + e.getMessage()
            + " (run 'granule verify' to list the damage)",
        e);
  }

  /**
   * Decodes, decompresses and hash-checks a stored record of chunk {@code id} from {@code pack}.
   */
  public byte[] decode(ChunkId id, BlobName pack, byte[] stored, int flags, int rawLength) {
    byte[] plain;
    try {
      plain = compressor.get().decompress(codec.decode(pack, stored), flags, rawLength);
    } catch (IllegalArgumentException e) {
      throw undecodable(id, pack, e);
    }
    ChunkId actual = hasher.get().hash(plain, 0, plain.length);
    if (!actual.equals(id)) {
      throw BlobFrames.corrupted("chunk " + id + " in pack " + pack, "hash mismatch", actual, id);
    }
    return plain;
  }

  /**
   * {@code b} cleared to {@code length} bytes, or a larger direct buffer (a sixteenth to spare) if
   * it is too small: a scratch buffer reused from record to record, or pack to pack.
   */
  public static ByteBuffer room(ByteBuffer b, int length) {
    if (b.capacity() < length) {
      b = ByteBuffer.allocateDirect((int) Math.min(Integer.MAX_VALUE - 8, length + (length >> 4L)));
    }
    return b.clear().limit(length);
  }

  /**
   * A decoder for one thread that writes plaintext into the caller's buffers (heap or direct) with
   * its own zstd context and hasher, so that a chunk costs no plaintext array. Close it to free the
   * zstd context.
   */
  public Decoder decoder() {
    return new Decoder();
  }

  /** See {@link #decoder()}. Not thread-safe. */
  public final class Decoder implements AutoCloseable {
    private final ChunkCompressor decompressor = new ChunkCompressor(1);
    private final ChunkHasher hash = hasherPrototype.copy();
    private ByteBuffer stored = ByteBuffer.allocateDirect(0);
    private ByteBuffer decoded = ByteBuffer.allocateDirect(0);

    private Decoder() {}

    /**
     * Puts the plaintext of chunk {@code id}, stored at {@code loc}, into {@code dst} at its
     * position and advances it by {@code loc.rawLength()}; checked as by {@link ChunkReader#read}:
     * on any exception the bytes put into {@code dst} must not be used.
     *
     * @throws IllegalArgumentException if {@code dst} has less than {@code loc.rawLength()} bytes
     *     remaining
     */
    public void read(ChunkId id, ChunkLocation loc, ByteBuffer dst) {
      int raw = loc.rawLength();
      if (dst.remaining() < raw) {
        throw new IllegalArgumentException(
            "buffer of " + dst.remaining() + " bytes for a chunk of " + raw);
      }
      BlobName pack = packName(loc.pack());
      checkLocation(id, pack, loc);
      int storedLength = loc.storedLength();
      // The record is read into a direct buffer (or straight into dst when it is the plaintext)
      // and decoded from there: no array per chunk, no copy through the JDK's own buffers.
      if (!codec.transforms() && (loc.flags() & ChunkFlags.ZSTD) == 0 && storedLength == raw) {
        int start = dst.position();
        load(id, pack, loc, dst.duplicate().limit(start + raw));
        dst.position(start + raw);
        check(id, pack, dst, start, raw);
      } else {
        ByteBuffer in = stored = room(stored, storedLength);
        load(id, pack, loc, in);
        decode(id, pack, in.flip(), loc.flags(), raw, dst);
      }
    }

    /**
     * Puts the plaintext of chunk {@code id}, whose stored record (in {@code pack}, with {@code
     * flags}) is the bytes remaining in {@code record} (consumed), into {@code dst} at its position
     * and advances it by {@code rawLength}; checked as {@link #read} checks: on any exception the
     * bytes put into {@code dst} must not be used.
     *
     * @throws IllegalArgumentException if {@code dst} has less than {@code rawLength} bytes
     *     remaining
     */
    public void decode(
        ChunkId id, BlobName pack, ByteBuffer record, int flags, int rawLength, ByteBuffer dst) {
      int raw = rawLength;
      if (dst.remaining() < raw) {
        throw new IllegalArgumentException(
            "buffer of " + dst.remaining() + " bytes for a chunk of " + raw);
      }
      int start = dst.position();
      int storedLength = record.remaining();
      boolean zstd = (flags & ChunkFlags.ZSTD) != 0;
      ByteBuffer in = record;
      try {
        if (codec.transforms()) {
          int plain = codec.decodedLength(storedLength);
          if (plain < 0) {
            // a codec that only decodes arrays
            byte[] bytes = new byte[in.remaining()];
            in.get(bytes);
            in = ByteBuffer.wrap(codec.decode(pack, bytes));
          } else if (zstd) {
            ByteBuffer out = decoded = room(decoded, plain);
            codec.decode(pack, in, out);
            in = out.flip();
          } else if (plain == raw) {
            codec.decode(pack, in, dst.duplicate().limit(start + raw));
            in = null;
          } else {
            throw new IllegalArgumentException(
                "stored length " + plain + " differs from plain length " + raw);
          }
        }
        if (in != null) {
          decompressor.decompressInto(in, flags, raw, dst.duplicate());
        }
      } catch (IllegalArgumentException e) {
        throw undecodable(id, pack, e);
      }
      dst.position(start + raw);
      check(id, pack, dst, start, raw);
    }

    /** Checks that the {@code raw} bytes at {@code start} of {@code dst} hash to {@code id}. */
    private void check(ChunkId id, BlobName pack, ByteBuffer dst, int start, int raw) {
      ChunkId actual = hash.hash(dst.duplicate().position(start).limit(start + raw));
      if (!actual.equals(id)) {
        throw BlobFrames.corrupted("chunk " + id + " in pack " + pack, "hash mismatch", actual, id);
      }
    }

    @Override
    public void close() {
      decompressor.close();
    }
  }
}
