package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.PageCache;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * One file of a disk image, opened read-only, with bounds-checked positional reads and the error
 * messages every reader shares.
 *
 * <p>Thread-safe: reads are positional ({@link FileChannel#read(ByteBuffer, long)}), so several
 * threads may read at once. The size is taken once at open: image files are not expected to change
 * while they are read.
 *
 * <p>A file that is mostly not in the page cache when it is opened ({@link
 * PageCache#mostlyUncached}) gets its large aligned reads (a backup's data runs, into aligned
 * direct buffers) with {@code O_DIRECT}: straight from the disk, no page cache filled, none of the
 * host's cached data evicted. Tables and other small reads go through the page cache. A direct read
 * that fails is done again buffered, and the file is read buffered from then on.
 *
 * <p>The file's identity (device and inode) is taken when it is opened; a name that led elsewhere
 * before the open than after it (a link swapped meanwhile) is an error, and {@link #isAt} tells
 * later whether the name still leads to the opened file.
 */
final class ImageFile implements Closeable {
  /** The shortest read that goes direct, when the file is read direct. */
  static final int MIN_DIRECT_READ = 64 << 10;

  private static final int ALIGN = 4096;

  private final Path path;
  private final FileChannel channel;
  private final long size;
  private final Object key;
  private final boolean owner;
  private volatile FileChannel direct;

  private ImageFile(Path path, FileChannel channel, long size, Object key, boolean owner) {
    this.path = path;
    this.channel = channel;
    this.size = size;
    this.key = key;
    this.owner = owner;
  }

  /**
   * Opens {@code path} for reading.
   *
   * @throws IOException also if the name led to another file after the open than before it
   */
  public static ImageFile open(Path path) throws IOException {
    try {
      Object before = key(path);
      FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
      ImageFile f = null;
      try {
        f = new ImageFile(path, ch, ch.size(), before, true);
        f.direct = openDirect(path);
        if (before == null || !before.equals(key(path))) {
          throw f.openError(
              "it was replaced while it was opened (the name led to another file afterwards)");
        }
        return f;
      } catch (IOException | RuntimeException e) {
        if (f != null) {
          f.close();
        } else {
          ch.close();
        }
        throw e;
      }
    } catch (NoSuchFileException e) {
      throw new IOException("unable to open disk image '" + path + "': no such file", e);
    }
  }

  /** The identity (device and inode) of the file {@code path} leads to now. */
  static Object key(Path path) throws IOException {
    return Files.readAttributes(path, BasicFileAttributes.class).fileKey();
  }

  /**
   * Whether this file's name still leads to the file that was opened (same device and inode); false
   * if it leads elsewhere or nowhere.
   */
  boolean isAt() {
    try {
      return key != null && key.equals(key(path));
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * This file as it is now: the same open file (not opened again by name), its current size, read
   * buffered. Closing the view leaves this file open.
   */
  ImageFile current() throws IOException {
    return new ImageFile(path, channel, channel.size(), key, false);
  }

  private static FileChannel openDirect(Path path) {
    OpenOption o = PageCache.directOption();
    if (o == null || !PageCache.mostlyUncached(path)) {
      return null;
    }
    try {
      return FileChannel.open(path, StandardOpenOption.READ, o);
    } catch (IOException | UnsupportedOperationException e) {
      return null; // a file system without O_DIRECT
    }
  }

  public Path path() {
    return path;
  }

  /** Whether large aligned reads go past the page cache. */
  public boolean direct() {
    return direct != null;
  }

  public long size() {
    return size;
  }

  /** An error found while opening: {@code unable to open disk image 'PATH': MESSAGE}. */
  public IOException openError(String message) {
    return new IOException("unable to open disk image '" + path + "': " + message);
  }

  /** An error found while reading: {@code unable to read disk image 'PATH': MESSAGE}. */
  public IOException readError(String message) {
    return new IOException("unable to read disk image '" + path + "': " + message);
  }

  /** {@code 0x…} lowercase hex, as every message prints offsets and sizes. */
  public static String hex(long value) {
    return "0x" + Long.toHexString(value);
  }

  /**
   * Checks that {@code [offset, offset + length)} lies inside the file.
   *
   * @param what what lies there, for the message, e.g. {@code "L1 table"}
   * @param opening whether the error is an open error or a read error
   */
  public void checkRange(String what, long offset, long length, boolean opening)
      throws IOException {
    if (offset < 0 || length < 0 || offset > size || length > size - offset) {
      String msg =
          what
              + " at offset "
              + hex(offset)
              + (length > 0 ? " (length " + hex(length) + ")" : "")
              + " lies outside the file (size "
              + hex(size)
              + ")";
      throw opening ? openError(msg) : readError(msg);
    }
  }

  /**
   * Reads exactly {@code dst.remaining()} bytes at {@code offset}, after checking that they lie in
   * the file.
   */
  public void read(String what, long offset, ByteBuffer dst, boolean opening) throws IOException {
    checkRange(what, offset, dst.remaining(), opening);
    readFully(offset, dst);
  }

  /** Reads {@code length} bytes at {@code offset} into a new buffer of the given byte order. */
  public ByteBuffer read(String what, long offset, int length, ByteOrder order, boolean opening)
      throws IOException {
    ByteBuffer b = ByteBuffer.allocate(length).order(order);
    read(what, offset, b, opening);
    return b.flip();
  }

  private void readFully(long offset, ByteBuffer dst) throws IOException {
    FileChannel d = direct;
    if (d != null
        && dst.remaining() >= MIN_DIRECT_READ
        && dst.isDirect()
        && (offset & (ALIGN - 1)) == 0
        && (dst.remaining() & (ALIGN - 1)) == 0
        && dst.alignmentOffset(dst.position(), ALIGN) == 0) {
      int start = dst.position();
      try {
        readFully(d, offset, dst);
        return;
      } catch (EOFException e) {
        throw e;
      } catch (IOException e) {
        // Some file systems open with O_DIRECT and then refuse the reads: read buffered from now
        // on (a real error comes back from the buffered read).
        stopDirect(d);
        dst.position(start);
      }
    }
    readFully(channel, offset, dst);
  }

  private synchronized void stopDirect(FileChannel d) {
    if (direct == d) {
      direct = null;
      try {
        d.close();
      } catch (IOException ignored) {
        // only reads were made through it
      }
    }
  }

  private void readFully(FileChannel ch, long offset, ByteBuffer dst) throws IOException {
    long pos = offset;
    while (dst.hasRemaining()) {
      int n = ch.read(dst, pos);
      if (n < 0) {
        // The file shrank after it was opened.
        throw new EOFException(
            "unable to read disk image '" + path + "': unexpected end of file at " + hex(pos));
      }
      pos += n;
    }
  }

  @Override
  public void close() throws IOException {
    if (!owner) {
      return; // a view: the file is its owner's to close
    }
    try (FileChannel d = direct) {
      channel.close();
    }
  }
}
