package io.granule.plugin.vmdisk.internal;

import static io.granule.plugin.vmdisk.internal.ImageFile.hex;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A disk image read through a block map: the format's reader answers, for a virtual offset, where
 * the next run of bytes lives ({@link Run}), and this class turns runs into reads and allocation.
 *
 * <p>Thread-safe as long as {@link #map} and {@link #decode} are: every subclass keeps its tables
 * immutable or in a {@link BoundedCache}. Contiguous data runs are read with one positional read.
 */
abstract class MappedImage implements DiskImage {
  /** The largest virtual disk any reader accepts: 64 TiB (the VHDX limit). */
  static final long MAX_VIRTUAL_SIZE = 64L << 40;

  /** Weight budget of the decoded-block cache of one image. */
  private static final long DECODED_CACHE_BYTES = 8L << 20;

  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 16).asReadOnlyBuffer();

  private final String format;
  private final ImageFile file;
  private final long size;
  private final DiskImage backing;
  private final List<Closeable> resources;
  private final BoundedCache<Object, byte[]> decoded =
      new BoundedCache<>(DECODED_CACHE_BYTES, b -> b.length);

  /**
   * @param file the image's main file, named in error messages
   * @param backing the backing (parent) image, or null if bytes not held here read as zeros
   * @param resources closed by {@link #close}, after the backing image, in order
   */
  MappedImage(
      String format, ImageFile file, long size, DiskImage backing, List<Closeable> resources) {
    this.format = format;
    this.file = file;
    this.size = size;
    this.backing = backing;
    this.resources = List.copyOf(resources);
  }

  /**
   * The run at virtual {@code offset}, at most {@code length} bytes long.
   *
   * @param offset in {@code [0, size())}
   * @param length at least 1, and {@code offset + length <= size()}
   */
  protected abstract Run map(long offset, long length) throws IOException;

  /**
   * Decodes the block an {@link Run.Encoded} run names. The result may be shorter than the block (a
   * truncated last grain); reading past its end is an error.
   */
  protected byte[] decode(Object key) throws IOException {
    throw new IllegalStateException(format + " reader has no encoded blocks");
  }

  final ImageFile file() {
    return file;
  }

  @Override
  public final long size() {
    return size;
  }

  @Override
  public final String format() {
    return format;
  }

  /** Whether the image's own file is read past the page cache ({@link ImageFile}). */
  @Override
  public boolean readsPastPageCache() {
    return file.direct();
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws IOException {
    checkRange(offset, dst.remaining());
    long pos = offset;
    while (dst.hasRemaining()) {
      Run run = map(pos, dst.remaining());
      int n = (int) checkRun(run, dst.remaining());
      int limit = dst.limit();
      dst.limit(dst.position() + n);
      try {
        readRun(run, pos, dst);
      } finally {
        dst.limit(limit);
      }
      pos += n;
    }
  }

  private void readRun(Run run, long pos, ByteBuffer dst) throws IOException {
    if (run instanceof Run.Data d) {
      d.file().read("data for virtual offset " + hex(pos), d.fileOffset(), dst, false);
    } else if (run instanceof Run.Zero) {
      fillZeros(dst);
    } else if (run instanceof Run.Backing) {
      readBacking(pos, dst);
    } else if (run instanceof Run.Encoded e) {
      byte[] block = decoded.get(e.key(), this::decode);
      if (e.skip() + e.length() > block.length) {
        throw file.readError(
            "compressed block "
                + e.key()
                + " decodes to "
                + block.length
                + " bytes, too few for virtual offset "
                + hex(pos));
      }
      dst.put(block, e.skip(), (int) e.length());
    }
  }

  private void readBacking(long pos, ByteBuffer dst) throws IOException {
    if (backing != null && pos < backing.size()) {
      int fromBacking = (int) Math.min(dst.remaining(), backing.size() - pos);
      int limit = dst.limit();
      dst.limit(dst.position() + fromBacking);
      try {
        backing.read(pos, dst);
      } finally {
        dst.limit(limit);
      }
    }
    fillZeros(dst);
  }

  private static void fillZeros(ByteBuffer dst) {
    while (dst.hasRemaining()) {
      ByteBuffer z = ZEROS.duplicate();
      z.limit(Math.min(z.capacity(), dst.remaining()));
      dst.put(z);
    }
  }

  @Override
  public List<Extent> allocation(long offset, long length) throws IOException {
    checkRange(offset, length);
    List<Extent> out = new ArrayList<>();
    long pos = offset;
    long end = offset + length;
    while (pos < end) {
      Run run = map(pos, end - pos);
      long n = checkRun(run, end - pos);
      if (run instanceof Run.Data || run instanceof Run.Encoded) {
        add(out, pos, n);
      } else if (run instanceof Run.Backing && backing != null && pos < backing.size()) {
        for (Extent e : backing.allocation(pos, Math.min(n, backing.size() - pos))) {
          add(out, e.offset(), e.length());
        }
      }
      pos += n;
    }
    return out;
  }

  private static void add(List<Extent> out, long offset, long length) {
    if (!out.isEmpty()) {
      Extent last = out.get(out.size() - 1);
      if (last.end() == offset) {
        out.set(out.size() - 1, new Extent(last.offset(), last.length() + length));
        return;
      }
    }
    out.add(new Extent(offset, length));
  }

  private void checkRange(long offset, long length) throws EOFException {
    if (offset < 0 || length < 0 || offset > size || length > size - offset) {
      throw new EOFException(
          "unable to read disk image '"
              + file.path()
              + "': range at "
              + hex(offset)
              + " of length "
              + hex(length)
              + " reaches past the end of the disk (size "
              + hex(size)
              + ")");
    }
  }

  private long checkRun(Run run, long max) {
    if (run.length() < 1 || run.length() > max) {
      throw new IllegalStateException(
          format + " reader returned a run of " + run.length() + " bytes (max " + max + ")");
    }
    return run.length();
  }

  /** This image's files (its own first), then its backing chain's. */
  @Override
  public List<java.nio.file.Path> files() {
    List<java.nio.file.Path> all = new ArrayList<>();
    for (Closeable c : resources) {
      if (c instanceof ImageFile f) {
        all.add(f.path());
      }
    }
    if (backing != null) {
      all.addAll(backing.files());
    }
    return all;
  }

  @Override
  public void close() throws IOException {
    IOException first = null;
    List<Closeable> all = new ArrayList<>();
    if (backing != null) {
      all.add(backing);
    }
    all.addAll(resources);
    for (Closeable c : all) {
      try {
        c.close();
      } catch (IOException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }
}
