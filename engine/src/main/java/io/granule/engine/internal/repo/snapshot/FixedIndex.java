package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PagedFile;
import io.granule.engine.internal.repo.SourceUnreadableException;
import java.nio.ByteBuffer;

/**
 * The fixed index of one disk in one snapshot: the chunk id at each chunk position ({@link
 * ChunkId#ZERO} for a chunk of zeros, which is not stored). Position {@code i} covers bytes {@code
 * [i * chunkSize, min(size, (i + 1) * chunkSize))}.
 *
 * <p>32 bytes per chunk position (64 MiB per TiB of disk at 512 KiB chunks): on the Java heap up to
 * {@link #HEAP_MAX}, beyond that in a {@link PagedFile} (a temporary file read through a 2 MiB
 * cache), so neither the heap nor the process's memory grows with the disk. {@link #set} is safe
 * from several threads for distinct positions; publication to readers goes through whatever joins
 * those threads. {@link #close} frees the temporary file of a large one.
 */
public final class FixedIndex implements ChunkList, AutoCloseable {
  /** Ids up to this many bytes (262 144 positions: 128 GiB at 512 KiB chunks) stay on the heap. */
  public static final int HEAP_MAX = 8 << 20;

  /**
   * The most positions a fixed index has: 256 Mi, a disk of 128 TiB at 512 KiB chunks (VHDX and
   * VMDK stop at 64 TiB); a restore keeps a bit per position on the heap.
   */
  public static final int MAX_POSITIONS = 1 << 28;

  private final int chunkSize;
  private final long diskSize;
  private final int count;

  /** The ids of a small index, else null. */
  private final ByteBuffer heap;

  /** The ids of a large index, else null. */
  private final PagedFile paged;

  /**
   * An index of all-zero chunks for a disk of {@code diskSize} bytes, to be filled and written.
   *
   * @throws SourceUnreadableException if the disk has more than {@link #MAX_POSITIONS} positions
   * @throws PagedFile.NoRoomException if a large one has no room for its temporary file
   */
  public FixedIndex(int chunkSize, long diskSize) {
    this.count = checkedCount(chunkSize, diskSize);
    this.chunkSize = chunkSize;
    this.diskSize = diskSize;
    long bytes = (long) count * ChunkId.BYTES;
    if (bytes <= HEAP_MAX) {
      this.heap = ByteBuffer.allocate((int) bytes);
      this.paged = null;
    } else {
      this.heap = null;
      this.paged = PagedFile.create(bytes, "the fixed index of a disk of " + diskSize + " bytes");
    }
  }

  private static int checkedCount(int chunkSize, long diskSize) {
    if (chunkSize <= 0 || diskSize < 0) {
      throw new IllegalArgumentException(
          "invalid fixed index: chunk size " + chunkSize + ", disk size " + diskSize);
    }
    long count = count(chunkSize, diskSize);
    if (count > MAX_POSITIONS) {
      throw new SourceUnreadableException(
          "a disk of "
              + diskSize
              + " bytes has "
              + count
              + " chunks of "
              + chunkSize
              + " bytes, more than a fixed index holds ("
              + MAX_POSITIONS
              + ", a disk of "
              + ((long) MAX_POSITIONS * chunkSize >> 40)
              + " TiB): back it up into a repository with a larger chunk size (granule init"
              + " --chunk-size)");
    }
    return (int) count;
  }

  /** Number of chunk positions of a disk. */
  public static long count(int chunkSize, long diskSize) {
    return (diskSize + chunkSize - 1) / chunkSize;
  }

  /** Whether the ids live in a temporary file rather than on the heap. */
  public boolean paged() {
    return paged != null;
  }

  public int chunkSize() {
    return chunkSize;
  }

  public long diskSize() {
    return diskSize;
  }

  /** Number of chunk positions. */
  public int count() {
    return count;
  }

  /** Length of the chunk at {@code position} (the last one may be short). */
  public int length(int position) {
    return (int) Math.min(chunkSize, diskSize - (long) position * chunkSize);
  }

  /** The id at {@code position}. */
  public ChunkId get(int position) {
    long p = (long) position * ChunkId.BYTES;
    if (heap != null) {
      int at = (int) p;
      return new ChunkId(
          heap.getLong(at), heap.getLong(at + 8), heap.getLong(at + 16), heap.getLong(at + 24));
    }
    long[] w = new long[4];
    paged.getLongs(p, w, 4);
    return new ChunkId(w[0], w[1], w[2], w[3]);
  }

  /** Records {@code id} at {@code position}. */
  @Override
  public void set(int position, ChunkId id) {
    long p = (long) position * ChunkId.BYTES;
    if (heap != null) {
      int at = (int) p;
      heap.putLong(at, id.w0()).putLong(at + 8, id.w1()).putLong(at + 16, id.w2());
      heap.putLong(at + 24, id.w3());
      return;
    }
    if (position < 0 || position >= count) {
      throw new IndexOutOfBoundsException("position " + position + " of " + count);
    }
    paged.putLongs(p, id.w0(), id.w1(), id.w2(), id.w3());
  }

  /** Puts the ids' bytes from byte {@code offset} into {@code dst} (what a blob holds). */
  void readIds(long offset, ByteBuffer dst) {
    if (heap != null) {
      dst.put(heap.duplicate().position((int) offset).limit((int) offset + dst.remaining()));
    } else {
      paged.read(offset, dst);
    }
  }

  /** Writes the ids' bytes from byte {@code offset} (as a blob holds them). */
  void writeIds(long offset, ByteBuffer src) {
    if (heap != null) {
      heap.put((int) offset, src, src.position(), src.remaining());
      src.position(src.limit());
    } else {
      paged.write(offset, src);
    }
  }

  /** Frees a large index's temporary file; the index is unusable afterwards. */
  @Override
  public void close() {
    if (paged != null) {
      paged.close();
    }
  }

  /** Slots of {@link #nextSame}'s table at most: 32 MiB of heap. */
  static final int MAX_SLOTS = 1 << 22;

  /**
   * For each position, the next position after it that holds the same chunk (not zeros), or -1: the
   * chains of a chunk's places on the disk, each in ascending order, so that a restore can fetch a
   * chunk once and write it everywhere it goes. 4 bytes per position (in a temporary file for a
   * large index), and while it is built an open-addressing table of (position, 32 bits of the id),
   * at most half full, of at most {@link #MAX_SLOTS} slots: a disk of more distinct chunks than
   * half of that links the first ones it meets, and the others are fetched at each place (correct,
   * only slower). Ids are compared in full when their 32 bits agree.
   */
  public NextSame nextSame() {
    return nextSame(MAX_SLOTS);
  }

  /** {@link #nextSame()} with a table of at most {@code maxSlots} slots, a power of two. */
  NextSame nextSame(int maxSlots) {
    int stored = 0; // positions that are not zeros: the table's size (a sparse disk has few)
    long[] w = new long[4];
    for (int p = 0; p < count; p++) {
      words(p, w);
      if ((w[0] | w[1] | w[2] | w[3]) != 0) {
        stored++;
      }
    }
    int slots = (int) Math.min(maxSlots, Integer.highestOneBit(Math.max(1, 2 * stored - 1)) << 1);
    long[] table = new long[slots]; // (32 bits of the id) << 32 | (position + 1); 0: empty
    int mask = slots - 1;
    int filled = 0;
    NextSame next = new NextSame(count, paged != null);
    long[] other = new long[4];
    ByteBuffer scratch = ByteBuffer.allocate(ChunkId.BYTES);
    try {
      for (int p = 0; p < count; p++) {
        words(p, w);
        if ((w[0] | w[1] | w[2] | w[3]) == 0) {
          continue; // zeros: not stored, never fetched
        }
        long tag = (long) (int) w[1] << 32;
        int slot = (int) (w[0] ^ (w[0] >>> 32)) * 0x9E3779B9 & mask; // ids are hashes already
        while (true) {
          long s = table[slot];
          if (s == 0) {
            if (filled < slots / 2) {
              table[slot] = tag | (p + 1L);
              filled++;
            }
            break;
          }
          if ((s & 0xFFFFFFFF00000000L) == tag) {
            int q = (int) s - 1;
            wordsAnywhere(q, other, scratch);
            if (other[0] == w[0] && other[1] == w[1] && other[2] == w[2] && other[3] == w[3]) {
              next.set(q, p);
              table[slot] = tag | (p + 1L);
              break;
            }
          }
          slot = (slot + 1) & mask;
        }
      }
    } catch (RuntimeException | Error e) {
      next.close();
      throw e;
    }
    return next;
  }

  /**
   * As {@link #words}, for a position far from the last ones read: a large index reads its 32 bytes
   * alone instead of loading (and evicting) a page of the cache for them.
   */
  private void wordsAnywhere(int position, long[] w, ByteBuffer scratch) {
    if (heap != null) {
      words(position, w);
      return;
    }
    paged.read((long) position * ChunkId.BYTES, scratch.clear());
    for (int i = 0; i < 4; i++) {
      w[i] = scratch.getLong(8 * i);
    }
  }

  private void words(int position, long[] w) {
    long p = (long) position * ChunkId.BYTES;
    if (heap != null) {
      int at = (int) p;
      w[0] = heap.getLong(at);
      w[1] = heap.getLong(at + 8);
      w[2] = heap.getLong(at + 16);
      w[3] = heap.getLong(at + 24);
    } else {
      paged.getLongs(p, w, 4);
    }
  }

  /**
   * Per position, the next position of the same chunk or -1 ({@link #nextSame}): an int array on
   * the heap, or in a temporary file for a large index. {@link #close} frees the file.
   */
  public static final class NextSame implements AutoCloseable {
    private final int count;
    private final int[] small;
    private final PagedFile large;

    NextSame(int count, boolean large) {
      this.count = count;
      if (large) {
        this.small = null;
        this.large = PagedFile.create(4L * count + 7 & ~7L, "the duplicate chunks of a disk");
      } else {
        this.small = new int[count];
        this.large = null;
      }
    }

    /** Links given as an array ({@code next[p]}: the next position of p's chunk, or -1). */
    public static NextSame of(int... next) {
      NextSame n = new NextSame(next.length, false);
      for (int p = 0; p < next.length; p++) {
        n.set(p, next[p]);
      }
      return n;
    }

    /** Number of positions. */
    public int count() {
      return count;
    }

    /** The next position of the chunk at {@code p}, or -1. */
    public int get(int p) {
      if (small != null) {
        return small[p] - 1;
      }
      return large.getInt(4L * p) - 1;
    }

    /** Links {@code p} to {@code next}: written alone, without loading a page for it. */
    void set(int p, int next) {
      if (small != null) {
        small[p] = next + 1;
        return;
      }
      large.write(4L * p, ByteBuffer.allocate(4).putInt(0, next + 1));
    }

    /** The whole array (for tests and small disks). */
    public int[] toArray() {
      int[] a = new int[count];
      for (int p = 0; p < count; p++) {
        a[p] = get(p);
      }
      return a;
    }

    @Override
    public void close() {
      if (large != null) {
        large.close();
      }
    }
  }
}
