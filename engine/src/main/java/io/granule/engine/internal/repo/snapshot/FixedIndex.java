package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.LargeBuffers;
import java.nio.ByteBuffer;

/**
 * The fixed index of one disk in one snapshot: the chunk id at each chunk position ({@link
 * ChunkId#ZERO} for a chunk of zeros, which is not stored). Position {@code i} covers bytes {@code
 * [i * chunkSize, min(size, (i + 1) * chunkSize))}.
 *
 * <p>Held in memory at 32 bytes per chunk position (64 KiB per GiB of disk at 512 KiB chunks), on
 * the Java heap up to {@link LargeBuffers#HEAP_MAX} and beyond that in a memory-mapped temporary
 * file (the kernel's to page), so the heap does not bound the size of a disk. {@link #set} is safe
 * from several threads for distinct positions; publication to readers goes through whatever joins
 * those threads.
 */
public final class FixedIndex implements ChunkList {
  private final int chunkSize;
  private final long diskSize;
  private final ByteBuffer ids;

  /**
   * The blob frame the ids are a slice of (header written, checksum not yet), or null: an index
   * made to be written is framed in place ({@link FixedIndexWriter#frame}), without a copy.
   */
  private final ByteBuffer frame;

  /**
   * An index of all-zero chunks for a disk of {@code diskSize} bytes, to be filled and written: its
   * ids are in a buffer from {@link LargeBuffers} (off the Java heap for a large disk) inside the
   * frame of the blob it will be written as.
   */
  public FixedIndex(int chunkSize, long diskSize) {
    this(chunkSize, diskSize, framed(chunkSize, diskSize));
  }

  private FixedIndex(int chunkSize, long diskSize, ByteBuffer frame) {
    this(chunkSize, diskSize, frame.slice(HEADER, frame.capacity() - HEADER - 4), frame);
  }

  /** An index over {@code ids} (32 bytes per position), in {@code frame} if not null. */
  FixedIndex(int chunkSize, long diskSize, ByteBuffer ids, ByteBuffer frame) {
    if (chunkSize <= 0 || diskSize < 0) {
      throw new IllegalArgumentException(
          "invalid fixed index: chunk size " + chunkSize + ", disk size " + diskSize);
    }
    this.chunkSize = chunkSize;
    this.diskSize = diskSize;
    this.ids = ids;
    this.frame = frame;
  }

  /**
   * Bytes before the ids in a fixed index blob: the frame's header, then chunk size, size, count.
   */
  static final int HEADER = 8 + 20;

  /** A new blob frame for the ids, its header written. */
  private static ByteBuffer framed(int chunkSize, long diskSize) {
    if (chunkSize <= 0 || diskSize < 0) {
      throw new IllegalArgumentException(
          "invalid fixed index: chunk size " + chunkSize + ", disk size " + diskSize);
    }
    long count = count(chunkSize, diskSize);
    // room for the blob's encoding too (AES-GCM adds under 0.1 %)
    long most = (LargeBuffers.MAX - (LargeBuffers.MAX >>> 10) - HEADER - 4) / ChunkId.BYTES;
    if (count > most) {
      throw new io.granule.engine.internal.repo.SourceUnreadableException(
          "a disk of "
              + diskSize
              + " bytes has "
              + count
              + " chunks of "
              + chunkSize
              + " bytes, more than a fixed index holds ("
              + most
              + ", a disk of "
              + (most * chunkSize >> 40)
              + " TiB): back it up into a repository with a larger chunk size (granule init"
              + " --chunk-size)");
    }
    ByteBuffer b =
        io.granule.engine.internal.repo.BlobFrames.open(
            FixedIndexWriter.MAGIC,
            FixedIndexWriter.VERSION,
            20 + count * ChunkId.BYTES,
            "the fixed index of a disk of " + diskSize + " bytes");
    b.putInt(chunkSize).putLong(diskSize).putLong(count);
    return b;
  }

  /** The frame the ids are in ({@link #FixedIndex(int, long)}), or null. */
  ByteBuffer frame() {
    return frame == null ? null : frame.duplicate();
  }

  /** Number of chunk positions of a disk. */
  public static long count(int chunkSize, long diskSize) {
    return (diskSize + chunkSize - 1) / chunkSize;
  }

  public int chunkSize() {
    return chunkSize;
  }

  public long diskSize() {
    return diskSize;
  }

  /** Number of chunk positions. */
  public int count() {
    return ids.capacity() / ChunkId.BYTES;
  }

  /** Length of the chunk at {@code position} (the last one may be short). */
  public int length(int position) {
    return (int) Math.min(chunkSize, diskSize - (long) position * chunkSize);
  }

  /** The id at {@code position}. */
  public ChunkId get(int position) {
    int p = position * ChunkId.BYTES;
    return new ChunkId(
        ids.getLong(p), ids.getLong(p + 8), ids.getLong(p + 16), ids.getLong(p + 24));
  }

  /** Records {@code id} at {@code position}. */
  @Override
  public void set(int position, ChunkId id) {
    int p = position * ChunkId.BYTES;
    ids.putLong(p, id.w0()).putLong(p + 8, id.w1()).putLong(p + 16, id.w2());
    ids.putLong(p + 24, id.w3());
  }

  /**
   * For each position, the next position after it that holds the same chunk (not zeros), or -1: the
   * chains of a chunk's places on the disk, each in ascending order, so that a restore can fetch a
   * chunk once and write it everywhere it goes. 4 bytes per position, and 8 to 16 more per position
   * that is not zeros while it is built (an open-addressing table of positions, at most half full,
   * compared by id in place: no object per chunk).
   */
  public int[] nextSame() {
    int n = count();
    int[] next = new int[n];
    java.util.Arrays.fill(next, -1);
    int stored = 0; // positions that are not zeros: the table's size (a sparse disk has few)
    for (int p = 0; p < n; p++) {
      int at = p * ChunkId.BYTES;
      if ((ids.getLong(at) | ids.getLong(at + 8) | ids.getLong(at + 16) | ids.getLong(at + 24))
          != 0) {
        stored++;
      }
    }
    int slots = Integer.highestOneBit(Math.max(1, 2 * stored - 1)) << 1; // at most half full
    if (n > 1 << 29 || slots <= 0) {
      throw new IllegalStateException("fixed index too large to find duplicates: " + n);
    }
    int[] last = new int[slots]; // position + 1 of the last place seen of each id, 0 if empty
    int mask = slots - 1;
    for (int p = 0; p < n; p++) {
      int at = p * ChunkId.BYTES;
      long w0 = ids.getLong(at);
      long w1 = ids.getLong(at + 8);
      long w2 = ids.getLong(at + 16);
      long w3 = ids.getLong(at + 24);
      if ((w0 | w1 | w2 | w3) == 0) {
        continue; // zeros: not stored, never fetched
      }
      int slot = (int) (w0 ^ (w0 >>> 32)) * 0x9E3779B9 & mask; // ids are hashes already
      while (true) {
        int q = last[slot] - 1;
        if (q < 0) {
          last[slot] = p + 1;
          break;
        }
        int qa = q * ChunkId.BYTES;
        if (ids.getLong(qa) == w0
            && ids.getLong(qa + 8) == w1
            && ids.getLong(qa + 16) == w2
            && ids.getLong(qa + 24) == w3) {
          next[q] = p;
          last[slot] = p + 1;
          break;
        }
        slot = (slot + 1) & mask;
      }
    }
    return next;
  }

  ByteBuffer raw() {
    return ids.duplicate();
  }
}
