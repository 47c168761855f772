package io.granule.engine.internal.repo;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A zero-filled array of bytes that grows with a disk (a fixed index holds 32 bytes per chunk
 * position: 64 MiB per TiB of disk at 512 KiB chunks), in a temporary file deleted as soon as it is
 * open, read and written through a cache of {@link #PAGES} pages of {@link #PAGE} bytes on the Java
 * heap with reads and writes of a {@link RandomAccessFile} (not its channel: a channel is closed
 * for good when a thread using it is interrupted, and this file, deleted, could not be opened
 * again; a thread that serves a disk may be interrupted). It is never mapped: whatever its length,
 * it adds its cache (2 MiB) to the process's memory, and the rest is the kernel's page cache, which
 * the kernel writes back or drops as it needs. The file is in {@code granule.tmpdir}, else {@code
 * java.io.tmpdir}; {@link #close} frees its space (else the collector does, when it collects the
 * channel).
 *
 * <p>Thread-safe: every access takes the file's lock (callers touch it once per chunk of the disk,
 * so the lock is never the bottleneck).
 */
public final class PagedFile implements AutoCloseable {
  /** Bytes per cached page. */
  public static final int PAGE = 64 << 10;

  /** Pages the cache holds. */
  static final int PAGES = 32;

  private final RandomAccessFile file;
  private long length;
  private final String what;
  private final Path dir;

  /**
   * Cached pages by number, least recently used first; a dirty page is written back on eviction.
   */
  private final LinkedHashMap<Long, Page> pages = new LinkedHashMap<>(PAGES * 2, 0.75f, true);

  private long reads;

  private static final class Page {
    final ByteBuffer data = ByteBuffer.allocate(PAGE);
    boolean dirty;
  }

  private PagedFile(RandomAccessFile file, long length, String what, Path dir) {
    this.file = file;
    this.length = length;
    this.what = what;
    this.dir = dir;
  }

  /** The directory of temporary files: {@code granule.tmpdir}, else {@code java.io.tmpdir}. */
  public static Path directory() {
    return Path.of(System.getProperty("granule.tmpdir", System.getProperty("java.io.tmpdir")));
  }

  /**
   * A zero-filled array of {@code length} bytes for {@code what} (named in errors).
   *
   * @throws NoRoomException if the temporary file cannot be made or its file system has not room
   *     for it
   */
  public static PagedFile create(long length, String what) {
    Path dir = directory();
    Path path = reserve(length, what, dir);
    try {
      RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw");
      try {
        Files.delete(path);
      } catch (IOException e) {
        f.close();
        throw e;
      }
      return new PagedFile(f, length, what, dir);
    } catch (IOException e) {
      deleteQuietly(path);
      throw noRoom(what, length, dir, e);
    }
  }

  /**
   * A new temporary file in {@code dir} once its file system was seen to have room for {@code
   * length} bytes.
   */
  private static Path reserve(long length, String what, Path dir) {
    if (length < 0) {
      throw new IllegalArgumentException(what + ": negative length " + length);
    }
    try {
      // A sparse file takes its blocks as pages are written back: make sure they will fit, so
      // that the failure, if any, comes now and names the place, not in the middle of a backup.
      long free = Files.getFileStore(dir).getUsableSpace();
      if (free < length + (64 << 20)) {
        throw new IOException(
            "only " + (free >> 20) + " MiB free there, " + ((length >> 20) + 64) + " MiB needed");
      }
      return Files.createTempFile(dir, ".granule-", ".tmp");
    } catch (IOException e) {
      throw noRoom(what, length, dir, e);
    }
  }

  private static void deleteQuietly(Path path) {
    try {
      Files.deleteIfExists(path);
    } catch (IOException ignored) {
      // the first failure is the one to report
    }
  }

  /**
   * A new temporary file, already deleted, with room for {@code length} bytes, for {@code what}
   * (named in errors); the caller closes it, which frees its space.
   *
   * @throws NoRoomException if it cannot be made or its file system has not room for it
   */
  public static FileChannel temporary(long length, String what) {
    Path dir = directory();
    Path file = reserve(length, what, dir);
    try {
      FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
      try {
        Files.delete(file);
      } catch (IOException e) {
        ch.close();
        throw e;
      }
      return ch;
    } catch (IOException e) {
      deleteQuietly(file);
      throw noRoom(what, length, dir, e);
    }
  }

  /** The error of temporary file {@code what} of {@code length} bytes failing with {@code e}. */
  public static NoRoomException noRoom(String what, long length, IOException e) {
    return noRoom(what, length, directory(), e);
  }

  private static NoRoomException noRoom(String what, long length, Path dir, IOException e) {
    return new NoRoomException(
        "unable to keep "
            + what
            + " ("
            + (length >> 20)
            + " MiB) in a temporary file in "
            + dir
            + ": "
            + (e.getMessage() == null ? e.toString() : e.getMessage())
            + " (free space there, or point GRANULE_JAVA_OPTS=-Dgranule.tmpdir=DIR elsewhere)",
        e);
  }

  /** The length in bytes. */
  public synchronized long length() {
    return length;
  }

  /**
   * Makes the array {@code newLength} bytes long (zeros after the old end): no I/O, the file is
   * sparse; its file system is checked for room for the bytes added.
   *
   * @throws NoRoomException if there is not room for them
   */
  public synchronized void grow(long newLength) {
    if (newLength <= length) {
      return;
    }
    try {
      long free = Files.getFileStore(dir).getUsableSpace();
      if (free < newLength - length + (64 << 20)) {
        throw new IOException(
            "only "
                + (free >> 20)
                + " MiB free there, "
                + ((newLength - length >> 20) + 64)
                + " MiB more needed");
      }
    } catch (IOException e) {
      throw noRoom(what, newLength, dir, e);
    }
    long oldPages = (length + PAGE - 1) / PAGE;
    Page last = pages.get(oldPages - 1);
    if (last != null) {
      pages.remove(oldPages - 1); // its length changes: reloaded (after writing back) when needed
      if (last.dirty) {
        writeFile((oldPages - 1) * PAGE, last.data.clear().limit(pageLength(oldPages - 1)));
      }
    }
    length = newLength;
  }

  /** Page loads from the file so far (for tests of the access pattern). */
  public synchronized long pageReads() {
    return reads;
  }

  /** The long at byte {@code offset}. */
  public synchronized long getLong(long offset) {
    check(offset, 8);
    return page(offset / PAGE).data.getLong((int) (offset % PAGE));
  }

  /** The int at byte {@code offset}. */
  public synchronized int getInt(long offset) {
    check(offset, 4);
    return page(offset / PAGE).data.getInt((int) (offset % PAGE));
  }

  /**
   * Puts the {@code count} longs at byte {@code offset} into {@code dst} from index 0; they lie in
   * one page ({@code offset} aligned to {@code 8 * count}, a power of two up to {@link #PAGE}).
   */
  public synchronized void getLongs(long offset, long[] dst, int count) {
    check(offset, 8L * count);
    ByteBuffer p = page(offset / PAGE).data;
    int at = (int) (offset % PAGE);
    for (int i = 0; i < count; i++) {
      dst[i] = p.getLong(at + 8 * i);
    }
  }

  /** Writes the long at byte {@code offset}. */
  public synchronized void putLong(long offset, long value) {
    check(offset, 8);
    Page p = page(offset / PAGE);
    p.data.putLong((int) (offset % PAGE), value);
    p.dirty = true;
  }

  /**
   * Writes {@code values} at byte {@code offset}, in one page ({@code offset} aligned to the size
   * of the values, a power of two up to {@link #PAGE}).
   */
  public synchronized void putLongs(long offset, long... values) {
    check(offset, 8L * values.length);
    Page p = page(offset / PAGE);
    int at = (int) (offset % PAGE);
    for (int i = 0; i < values.length; i++) {
      p.data.putLong(at + 8 * i, values[i]);
    }
    p.dirty = true;
  }

  /** Reads {@code dst.remaining()} bytes from byte {@code offset} into {@code dst}. */
  public synchronized void read(long offset, ByteBuffer dst) {
    check(offset, dst.remaining());
    while (dst.hasRemaining()) {
      long n = offset / PAGE;
      int at = (int) (offset % PAGE);
      int len = Math.min(dst.remaining(), PAGE - at);
      Page cached = pages.get(n);
      if (cached != null) {
        dst.put(cached.data.duplicate().position(at).limit(at + len));
      } else {
        int limit = dst.limit();
        dst.limit(dst.position() + len);
        readFile(offset, dst);
        dst.limit(limit);
      }
      offset += len;
    }
  }

  /** Writes the bytes remaining in {@code src} at byte {@code offset} (consumed). */
  public synchronized void write(long offset, ByteBuffer src) {
    check(offset, src.remaining());
    while (src.hasRemaining()) {
      long n = offset / PAGE;
      int at = (int) (offset % PAGE);
      int len = Math.min(src.remaining(), PAGE - at);
      ByteBuffer part = src.duplicate().limit(src.position() + len);
      Page cached = pages.get(n);
      if (cached != null) {
        cached.data.put(at, part, part.position(), len);
        cached.dirty = true;
      } else {
        writeFile(offset, part);
      }
      src.position(src.position() + len);
      offset += len;
    }
  }

  /** Closes the file, which frees its space; the array is unusable afterwards. */
  @Override
  public synchronized void close() {
    pages.clear();
    try {
      file.close();
    } catch (IOException ignored) {
      // a deleted file: nothing is lost
    }
  }

  private void check(long offset, long len) {
    if (offset < 0 || len < 0 || offset > length - len) {
      throw new IndexOutOfBoundsException(
          what + ": bytes [" + offset + ", " + (offset + len) + ") of " + length);
    }
  }

  private Page page(long n) {
    Page p = pages.get(n);
    if (p != null) {
      return p;
    }
    if (pages.size() >= PAGES) {
      Iterator<Map.Entry<Long, Page>> eldest = pages.entrySet().iterator();
      Map.Entry<Long, Page> e = eldest.next();
      eldest.remove();
      p = e.getValue();
      if (p.dirty) {
        writeFile(e.getKey() * PAGE, p.data.clear().limit(pageLength(e.getKey())));
      }
      p.data.clear();
      p.dirty = false;
    } else {
      p = new Page();
    }
    p.data.limit(pageLength(n));
    readFile(n * PAGE, p.data);
    p.data.clear();
    reads++;
    pages.put(n, p);
    return p;
  }

  private int pageLength(long n) {
    return (int) Math.min(PAGE, length - n * PAGE);
  }

  /** Reads the file from {@code offset} into {@code dst}; past its end (never written) zeros. */
  private void readFile(long offset, ByteBuffer dst) {
    try {
      file.seek(offset);
      byte[] a = dst.hasArray() ? dst.array() : new byte[Math.min(dst.remaining(), PAGE)];
      while (dst.hasRemaining()) {
        int at = dst.hasArray() ? dst.arrayOffset() + dst.position() : 0;
        int n =
            file.read(
                a, at, dst.hasArray() ? dst.remaining() : Math.min(dst.remaining(), a.length));
        if (n < 0) {
          while (dst.hasRemaining()) {
            dst.put((byte) 0);
          }
          return;
        }
        if (dst.hasArray()) {
          dst.position(dst.position() + n);
        } else {
          dst.put(a, 0, n);
        }
      }
    } catch (IOException e) {
      throw noRoom(what, length, dir, e);
    }
  }

  private void writeFile(long offset, ByteBuffer src) {
    try {
      file.seek(offset);
      if (src.hasArray()) {
        file.write(src.array(), src.arrayOffset() + src.position(), src.remaining());
        src.position(src.limit());
        return;
      }
      byte[] a = new byte[Math.min(src.remaining(), PAGE)];
      while (src.hasRemaining()) {
        int n = Math.min(a.length, src.remaining());
        src.get(a, 0, n);
        file.write(a, 0, n);
      }
    } catch (IOException e) {
      throw noRoom(what, length, dir, e);
    }
  }

  /**
   * No room for a temporary file (or it failed): a local condition, never damage in the repository
   * (verify and prune let it through instead of naming a blob).
   */
  public static final class NoRoomException extends RepositoryException {
    NoRoomException(String message, Throwable cause) {
      super(message, cause);
    }
  }
}
