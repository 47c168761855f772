package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.Unmapper;
import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.zip.CRC32;

/**
 * The bytes of one chunk-index table (zero-filled at first) in memory that does not grow past a
 * budget, whatever the table's size, off the Java heap.
 *
 * <p>A table that fits its budget is <i>resident</i>: a temporary file mapped in blocks of {@link
 * #BLOCK} bytes. A larger table is <i>paged</i>: its bytes are in a temporary file (deleted as soon
 * as it is open) read and written {@link #PAGE} bytes at a time through a cache of as many pages as
 * the budget holds, in direct buffers allocated a block at a time as needed (second-chance
 * eviction; a dirty page is written back when evicted; a page never written is zeros, not read).
 * Reads and writes go through a {@link RandomAccessFile}, not a channel, which an interrupted
 * thread would close for good. The kernel's page cache stays between the cache and the disk: it is
 * not the process's memory, and the kernel drops or writes it back as it needs. A miss costs ~1.3
 * µs (a read of a page the kernel has cached) plus ~5 µs when the page it evicts is dirty (measured
 * on ext4).
 *
 * <p>Not thread-safe: the chunk index serializes its calls. {@link #read} and {@link #write} return
 * the buffer holding a slot and leave the slot's offset in it in {@link #pos}; the buffer is valid
 * until the next call.
 */
final class SlotPages implements Closeable {
  static final int PAGE_SHIFT = 12;
  static final int PAGE = 1 << PAGE_SHIFT;
  static final int BLOCK_SHIFT = 20;
  static final int BLOCK = 1 << BLOCK_SHIFT;
  private static final int FRAMES_PER_BLOCK = BLOCK / PAGE;
  private static final byte REFERENCED = 1;
  private static final byte DIRTY = 2;

  private final Path dir;
  private final long length;
  private final boolean resident;
  private final ByteBuffer[] blocks;

  /** Offset of the last slot asked for in the buffer returned. */
  int pos;

  // paged tables only
  private int[] frameOfPage;
  private int[] pageOfFrame;
  private byte[] state;
  private long[] written;
  private int frames;
  private int frameLimit;
  private int hand;
  private int frame;
  private RandomAccessFile file;

  /**
   * A paged table read from a kept index ({@link #readFrom}): the file its bytes are in, from
   * {@link #baseOffset}; a page not written since is read from there.
   */
  private RandomAccessFile base;

  private long baseOffset;
  private byte[] scratch;

  /**
   * A zero-filled table of {@code length} bytes (a multiple of 64) that keeps at most {@code
   * budget} bytes in memory (at least one block); its file, if it needs one, goes in {@code dir}.
   */
  SlotPages(Path dir, long length, long budget) {
    this.dir = dir;
    this.length = length;
    long pages = (length + PAGE - 1) >>> PAGE_SHIFT;
    if (pages > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("chunk index table too large: " + length + " bytes");
    }
    long blocksNeeded = (length + BLOCK - 1) >>> BLOCK_SHIFT;
    resident = blocksNeeded <= Math.max(1, budget >>> BLOCK_SHIFT);
    if (resident) {
      blocks = map(dir, length);
    } else {
      long budgetBlocks = Math.max(1, Math.min(budget, DIRECT_LIMIT / 4) >>> BLOCK_SHIFT);
      blocks = new ByteBuffer[(int) budgetBlocks];
      frameLimit = (int) (budgetBlocks * FRAMES_PER_BLOCK);
      frameOfPage = new int[(int) pages];
      Arrays.fill(frameOfPage, -1);
      pageOfFrame = new int[frameLimit];
      state = new byte[frameLimit];
      written = new long[(int) ((pages + 63) >>> 6)];
      scratch = new byte[PAGE];
    }
  }

  /**
   * The process's cap on direct buffers ({@code -XX:MaxDirectMemorySize}, else the heap's maximum,
   * as the JVM does): a paged table's cache takes at most a quarter of it, so that the buffers of
   * the backup pipeline and the blob store still fit beside it.
   */
  static final long DIRECT_LIMIT = directLimit();

  private static long directLimit() {
    long limit = Runtime.getRuntime().maxMemory();
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("-XX:MaxDirectMemorySize=")) {
        String v = a.substring(a.indexOf('=') + 1).toLowerCase(java.util.Locale.ROOT);
        int unit = "kmgt".indexOf(v.isEmpty() ? ' ' : v.charAt(v.length() - 1));
        try {
          long n = Long.parseLong(unit < 0 ? v : v.substring(0, v.length() - 1));
          long bytes = n << (10 * (unit + 1));
          limit = bytes > 0 ? bytes : limit;
        } catch (NumberFormatException e) {
          // the JVM refused to start on a value it could not parse: not reached
        }
      }
    }
    return limit;
  }

  /**
   * The blocks of a resident table: a temporary file (deleted once mapped) mapped a block at a
   * time, so that the kernel may write its pages back to the file under memory pressure, where
   * memory on the heap or in direct buffers would need swap, and so that it does not count against
   * the cap on direct buffers.
   */
  private static ByteBuffer[] map(Path dir, long length) {
    try {
      Files.createDirectories(dir);
      Path path = Files.createTempFile(dir, ".chunk-index-", ".tmp");
      FileChannel open;
      try {
        open =
            FileChannel.open(
                path,
                StandardOpenOption.READ,
                StandardOpenOption.WRITE,
                StandardOpenOption.DELETE_ON_CLOSE);
      } catch (IOException | RuntimeException e) {
        Files.deleteIfExists(path);
        throw e;
      }
      try (FileChannel channel = open) {
        Files.deleteIfExists(path);
        ByteBuffer[] blocks = new ByteBuffer[(int) ((length + BLOCK - 1) >>> BLOCK_SHIFT)];
        for (int k = 0; k < blocks.length; k++) {
          long at = (long) k << BLOCK_SHIFT;
          blocks[k] = channel.map(FileChannel.MapMode.READ_WRITE, at, Math.min(BLOCK, length - at));
        }
        return blocks; // the mappings outlive the channel
      }
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to create the chunk index in "
              + dir
              + ": "
              + e.getMessage()
              + " (free space there or point the cache directory elsewhere)",
          e);
    }
  }

  /** Whether the whole table is in memory, with no file. */
  boolean resident() {
    return resident;
  }

  /** Bytes of memory the table holds now. */
  long memoryBytes() {
    long n = 0;
    for (ByteBuffer b : blocks) {
      n += b == null ? 0 : b.capacity();
    }
    return n;
  }

  /**
   * The buffer holding the 64 bytes at {@code offset}, for reading; the offset is in {@link #pos}.
   */
  ByteBuffer read(long offset) {
    if (resident) {
      pos = (int) (offset & (BLOCK - 1));
      return blocks[(int) (offset >>> BLOCK_SHIFT)];
    }
    int page = (int) (offset >>> PAGE_SHIFT);
    int f = frameOfPage[page];
    if (f < 0) {
      f = load(page);
    }
    state[f] |= REFERENCED;
    frame = f;
    pos = (f % FRAMES_PER_BLOCK) * PAGE + (int) (offset & (PAGE - 1));
    return blocks[f / FRAMES_PER_BLOCK];
  }

  /** As {@link #read}, for writing. */
  ByteBuffer write(long offset) {
    ByteBuffer b = read(offset);
    if (!resident) {
      state[frame] |= DIRTY;
    }
    return b;
  }

  /**
   * Prepares for a scan in order that reads each byte once (a table being grown): a paged table
   * writes back its dirty pages and keeps one block of cache, so that the table that replaces it
   * can take the budget.
   */
  void beginScan() {
    if (resident) {
      return;
    }
    for (int f = 0; f < frames; f++) {
      if ((state[f] & DIRTY) != 0) {
        writeBack(f);
      }
    }
    for (int f = 0; f < frames; f++) {
      frameOfPage[pageOfFrame[f]] = -1;
    }
    frames = 0;
    hand = 0;
    frameLimit = FRAMES_PER_BLOCK;
    for (int i = 1; i < blocks.length; i++) {
      Unmapper.unmap(blocks[i]);
      blocks[i] = null;
    }
  }

  /**
   * After a scan passed offset {@code end} (exclusive): a resident table frees the blocks wholly
   * before it, which are never touched again.
   */
  void scanned(long end) {
    if (resident && (end & (BLOCK - 1)) == 0) {
      int k = (int) (end >>> BLOCK_SHIFT) - 1;
      Unmapper.unmap(blocks[k]);
      blocks[k] = null;
    }
  }

  /**
   * Caps the memory a paged table takes from now on at {@code budget} bytes (at least one block);
   * what it holds already stays. A table being grown into lets the old one's memory go first.
   */
  void limit(long budget) {
    if (!resident) {
      long blocksAllowed = Math.max(1, Math.min(blocks.length, budget >>> BLOCK_SHIFT));
      frameLimit = (int) Math.max(frames, blocksAllowed * FRAMES_PER_BLOCK);
    }
  }

  private int load(int page) {
    int f;
    if (frames < frameLimit && (frames % FRAMES_PER_BLOCK != 0 || addBlock(frames))) {
      f = frames++;
    } else {
      f = evict();
    }
    ByteBuffer b = blocks[f / FRAMES_PER_BLOCK];
    int at = (f % FRAMES_PER_BLOCK) * PAGE;
    readPage(page, scratch, 0, PAGE);
    b.put(at, scratch);
    frameOfPage[page] = f;
    pageOfFrame[f] = page;
    state[f] = 0;
    return f;
  }

  /**
   * Reads the first {@code len} bytes (at most a page) of page {@code page}, which is not in the
   * cache, into {@code dst} at {@code off}: from the table's file if the page was written there,
   * else from its base if it has one, else zeros.
   */
  private void readPage(int page, byte[] dst, int off, int len) {
    if ((written[page >>> 6] & (1L << page)) != 0) {
      try {
        file.seek((long) page << PAGE_SHIFT);
        file.readFully(dst, off, len);
      } catch (IOException e) {
        throw failure("read", e);
      }
    } else if (base != null) {
      readBase(page, dst, off, len);
    } else {
      Arrays.fill(dst, off, off + len, (byte) 0);
    }
  }

  /** Allocates the block for frame {@code f}; false if the process has no room for it. */
  private boolean addBlock(int f) {
    int k = f / FRAMES_PER_BLOCK;
    if (k >= blocks.length) {
      return false;
    }
    if (blocks[k] != null) {
      return true;
    }
    try {
      blocks[k] = ByteBuffer.allocateDirect(BLOCK);
    } catch (OutOfMemoryError e) { // other direct buffers took the room: page within what it has
      if (frames == 0) {
        throw new RepositoryException(
            "no memory left for the chunk index's cache ("
                + e.getMessage()
                + "): give the JVM more direct memory (GRANULE_JAVA_OPTS=-XX:MaxDirectMemorySize=…)",
            e);
      }
      frameLimit = frames;
      return false;
    }
    return true;
  }

  private int evict() {
    while (true) {
      int f = hand;
      hand = hand + 1 == frames ? 0 : hand + 1;
      if ((state[f] & REFERENCED) != 0) {
        state[f] &= ~REFERENCED;
        continue;
      }
      if ((state[f] & DIRTY) != 0) {
        writeBack(f);
      }
      frameOfPage[pageOfFrame[f]] = -1;
      return f;
    }
  }

  private void writeBack(int f) {
    int page = pageOfFrame[f];
    try {
      if (file == null) {
        file = open();
      }
      blocks[f / FRAMES_PER_BLOCK].get((f % FRAMES_PER_BLOCK) * PAGE, scratch);
      file.seek((long) page << PAGE_SHIFT);
      file.write(scratch);
    } catch (IOException e) {
      throw failure("write", e);
    }
    written[page >>> 6] |= 1L << page;
    state[f] &= ~DIRTY;
  }

  /**
   * Writes the table's bytes to {@code out} in order and adds them to {@code crc}; a paged table's
   * pages come from its cache, its file, or are zeros, and its cache is left as it was.
   */
  void copyTo(OutputStream out, CRC32 crc) throws IOException {
    byte[] buf = new byte[BLOCK];
    for (long at = 0; at < length; at += BLOCK) {
      int n = (int) Math.min(BLOCK, length - at);
      if (resident) {
        blocks[(int) (at >>> BLOCK_SHIFT)].get(0, buf, 0, n);
      } else {
        for (int o = 0; o < n; o += PAGE) {
          int page = (int) ((at + o) >>> PAGE_SHIFT);
          int len = Math.min(PAGE, n - o);
          int f = frameOfPage[page];
          if (f >= 0) {
            blocks[f / FRAMES_PER_BLOCK].get((f % FRAMES_PER_BLOCK) * PAGE, buf, o, len);
          } else {
            readPage(page, buf, o, len);
          }
        }
      }
      crc.update(buf, 0, n);
      out.write(buf, 0, n);
    }
  }

  /**
   * Makes a table that was never touched hold the {@code length} bytes at {@code offset} of {@code
   * in}, reading them once in order and adding them to {@code crc}. A resident table copies them
   * into its memory; a paged one keeps {@code in} as its base, from which it reads each page it has
   * not written since (into its own temporary file), and closes it with itself. So {@code in} must
   * not change while the table is open (a kept index is only ever replaced by a rename). Returns
   * whether the table kept {@code in}; if not, it is the caller's to close.
   *
   * @throws java.io.EOFException if {@code in} ends first
   */
  boolean readFrom(RandomAccessFile in, long offset, CRC32 crc) throws IOException {
    if (file != null || base != null || frames != 0) {
      throw new IllegalStateException("the table is in use");
    }
    byte[] buf = new byte[BLOCK];
    in.seek(offset);
    for (long at = 0; at < length; at += BLOCK) {
      int n = (int) Math.min(BLOCK, length - at);
      in.readFully(buf, 0, n);
      crc.update(buf, 0, n);
      if (resident) {
        blocks[(int) (at >>> BLOCK_SHIFT)].put(0, buf, 0, n);
      }
    }
    if (!resident) {
      base = in;
      baseOffset = offset;
    }
    return !resident;
  }

  /** Reads {@code len} bytes of page {@code page} from the base (zeros past the table's end). */
  private void readBase(int page, byte[] dst, int off, int len) {
    long from = (long) page << PAGE_SHIFT;
    int n = (int) Math.min(len, length - from);
    try {
      base.seek(baseOffset + from);
      base.readFully(dst, off, n);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to read the chunk index kept in the user's cache: "
              + e.getMessage()
              + " (delete the file chunk-index in the repository's cache directory: the next"
              + " command reads the index blobs again)",
          e);
    }
    Arrays.fill(dst, off + n, off + len, (byte) 0);
  }

  private RandomAccessFile open() throws IOException {
    return nameless(dir, ".chunk-index-");
  }

  /**
   * A new temporary file in {@code dir} open for reading and writing and deleted at once: it lives
   * on, nameless, until closed or the process ends, so a crash leaves nothing behind.
   */
  static RandomAccessFile nameless(Path dir, String prefix) throws IOException {
    Files.createDirectories(dir);
    Path path = Files.createTempFile(dir, prefix, ".tmp");
    RandomAccessFile f;
    try {
      f = new RandomAccessFile(path.toFile(), "rw");
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(path);
      throw e;
    }
    try {
      Files.delete(path); // the file lives on, nameless, while open
    } catch (IOException | RuntimeException e) {
      f.close();
      throw e;
    }
    return f;
  }

  private RepositoryException failure(String what, IOException e) {
    return new RepositoryException(
        "unable to "
            + what
            + " the chunk index's temporary file in "
            + dir
            + ": "
            + e.getMessage()
            + " (free space there or point the cache directory elsewhere)",
        e);
  }

  /** Frees the memory and the file; the table must not be touched again. */
  @Override
  public void close() {
    for (int i = 0; i < blocks.length; i++) {
      Unmapper.unmap(blocks[i]);
      blocks[i] = null;
    }
    frames = 0;
    if (base != null) {
      try {
        base.close();
      } catch (IOException e) {
        // opened for reading: nothing is lost
      }
      base = null;
    }
    if (file != null) {
      try {
        file.close();
      } catch (IOException e) {
        // the file is deleted: closing frees its space either way
      }
      file = null;
    }
  }
}
