package io.granule.plugin.vmdisk.internal;

import static io.granule.plugin.vmdisk.internal.ImageFile.hex;

import com.github.luben.zstd.ZstdInputStreamNoFinalizer;
import io.granule.engine.spi.DiskImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Reads qcow2 images, versions 2 (compat=0.10) and 3 (compat=1.1): L1/L2 tables, compressed
 * clusters (deflate and zstd), zero clusters and backing chains. Refuses encryption, external data
 * files and extended L2 entries. Internal snapshots are ignored: the active L1 table is read.
 *
 * <p>Thread-safe: the L1 table is immutable after open and L2 tables live in a {@link BoundedCache}
 * of {@value #L2_CACHE_BYTES} bytes.
 */
final class Qcow2Reader extends MappedImage {
  static final int MAGIC = 0x514649fb;

  private static final long L1E_OFFSET_MASK = 0x00fffffffffffe00L;
  private static final long L2E_OFFSET_MASK = 0x00fffffffffffe00L;
  private static final long L2E_COMPRESSED = 1L << 62;
  private static final long L2E_ZERO = 1L;
  private static final int MAX_L1_BYTES = 32 << 20;
  private static final long L2_CACHE_BYTES = 32L << 20;
  private static final int V2_HEADER_LENGTH = 72;
  private static final int V3_HEADER_LENGTH = 104;

  private static final long INCOMPAT_DIRTY = 1;
  private static final long INCOMPAT_CORRUPT = 1 << 1;
  private static final long INCOMPAT_DATA_FILE = 1 << 2;
  private static final long INCOMPAT_COMPRESSION = 1 << 3;
  private static final long INCOMPAT_EXTL2 = 1 << 4;

  private static final int EXT_END = 0;
  private static final int EXT_BACKING_FORMAT = 0xe2792aca;

  /** Kinds of standard L2 entries, for merging runs of clusters. */
  private static final int UNALLOCATED = 0;

  private static final int ZERO = 1;
  private static final int DATA = 2;

  private static final int COMPRESSION_DEFLATE = 0;
  private static final int COMPRESSION_ZSTD = 1;

  /** A compressed cluster: its host offset and the bytes it may span. */
  private record Compressed(long offset, int length) {
    @Override
    public String toString() {
      return "at offset " + hex(offset);
    }
  }

  private final int clusterBits;
  private final int clusterSize;
  private final int l2Bits;
  private final long[] l1;
  private final long l1Offset;
  private final boolean hasBacking;
  private final int compressionType;
  private final int csizeShift;
  private final long csizeMask;
  private final long coffsetMask;
  private volatile io.granule.engine.spi.ChangeTracking changeTracking;
  private final BoundedCache<Long, long[]> l2Cache =
      new BoundedCache<>(L2_CACHE_BYTES, t -> 8L * t.length);

  private Qcow2Reader(
      ImageFile file,
      long size,
      DiskImage backing,
      int clusterBits,
      long[] l1,
      long l1Offset,
      int compressionType) {
    super("qcow2", file, size, backing, List.of(file));
    this.clusterBits = clusterBits;
    this.clusterSize = 1 << clusterBits;
    this.l2Bits = clusterBits - 3;
    this.l1 = l1;
    this.l1Offset = l1Offset;
    this.hasBacking = backing != null;
    this.compressionType = compressionType;
    this.csizeShift = 62 - (clusterBits - 8);
    this.csizeMask = (1L << (clusterBits - 8)) - 1;
    this.coffsetMask = (1L << csizeShift) - 1;
  }

  /** Whether {@code head} starts with the qcow2 magic. */
  static boolean hasMagic(ByteBuffer head) {
    return head.remaining() >= 4 && head.getInt(head.position()) == MAGIC;
  }

  /**
   * Makes this (top) image offer its persistent dirty bitmaps for changed-block tracking, read
   * through its own open file and changed as the identity that opened it: call it on the thread
   * that opened the image.
   */
  Qcow2Reader trackChanges() {
    this.changeTracking = new Qcow2Bitmaps(file(), Qcow2Bitmaps.Opener.ofThisThread());
    return this;
  }

  @Override
  public io.granule.engine.spi.ChangeTracking changeTracking() {
    return changeTracking;
  }

  /**
   * Opens a qcow2 image; on success the reader owns {@code file}.
   *
   * @param chain the backing chain so far, {@code file} included
   */
  static Qcow2Reader open(ImageFile file, Chain chain) throws IOException {
    if (file.size() < V2_HEADER_LENGTH) {
      throw file.openError(
          "file of " + file.size() + " bytes is too small for a qcow2 header (72 bytes)");
    }
    ByteBuffer h = file.read("qcow2 header", 0, V2_HEADER_LENGTH, ByteOrder.BIG_ENDIAN, true);
    int magic = h.getInt(0);
    if (magic != MAGIC) {
      throw file.openError(
          "not a qcow2 image: magic "
              + hex(magic & 0xffffffffL)
              + " at offset 0x0, expected "
              + hex(MAGIC & 0xffffffffL));
    }
    int version = h.getInt(4);
    if (version != 2 && version != 3) {
      throw file.openError("unsupported qcow2 version " + version + " (supported: 2, 3)");
    }
    int clusterBits = h.getInt(20);
    if (clusterBits < 9 || clusterBits > 21) {
      throw file.openError(
          "cluster_bits " + clusterBits + " at offset 0x14 is out of range (9 to 21)");
    }
    int clusterSize = 1 << clusterBits;
    long headerSize = h.getLong(24);
    if (headerSize < 0 || headerSize > MAX_VIRTUAL_SIZE) {
      throw file.openError(
          "virtual size " + hex(headerSize) + " at offset 0x18 exceeds the limit of 64 TiB");
    }
    // qemu sees whole sectors only: a size that is not a multiple of 512 is rounded down.
    long size = headerSize & ~511L;
    int cryptMethod = h.getInt(32);
    if (cryptMethod != 0) {
      throw file.openError(
          "encrypted qcow2 images are not supported (crypt_method "
              + cryptMethod
              + " at offset 0x20); decrypt it first with qemu-img convert");
    }
    // Everything below the header length, the extensions and the backing file name live in the
    // first cluster.
    int headLength = (int) Math.min(clusterSize, file.size());
    ByteBuffer c0 = file.read("qcow2 header cluster", 0, headLength, ByteOrder.BIG_ENDIAN, true);

    int headerLength = V2_HEADER_LENGTH;
    int compressionType = COMPRESSION_DEFLATE;
    if (version == 3) {
      if (headLength < V3_HEADER_LENGTH) {
        throw file.openError("file is too small for a qcow2 version 3 header (104 bytes)");
      }
      long incompatible = c0.getLong(72);
      if ((incompatible & INCOMPAT_DATA_FILE) != 0) {
        throw file.openError(
            "qcow2 external data files are not supported (incompatible feature bit 2 at offset"
                + " 0x48)");
      }
      if ((incompatible & INCOMPAT_EXTL2) != 0) {
        throw file.openError(
            "qcow2 extended L2 entries (subclusters) are not supported (incompatible feature bit"
                + " 4 at offset 0x48); convert it with qemu-img convert -O qcow2");
      }
      long known =
          INCOMPAT_DIRTY
              | INCOMPAT_CORRUPT
              | INCOMPAT_DATA_FILE
              | INCOMPAT_COMPRESSION
              | INCOMPAT_EXTL2;
      if ((incompatible & ~known) != 0) {
        throw file.openError(
            "unknown qcow2 incompatible features "
                + hex(incompatible & ~known)
                + " at offset 0x48");
      }
      headerLength = c0.getInt(100);
      if (headerLength < V3_HEADER_LENGTH || headerLength > headLength) {
        throw file.openError(
            "header_length "
                + headerLength
                + " at offset 0x64 is out of range (104 to "
                + headLength
                + ")");
      }
      if (headerLength > V3_HEADER_LENGTH) {
        compressionType = c0.get(104) & 0xff;
      }
      boolean flagged = (incompatible & INCOMPAT_COMPRESSION) != 0;
      if (compressionType != COMPRESSION_DEFLATE && compressionType != COMPRESSION_ZSTD
          || flagged != (compressionType != COMPRESSION_DEFLATE)) {
        throw file.openError(
            "unsupported qcow2 compression_type "
                + compressionType
                + " at offset 0x68 (supported: 0 deflate, 1 zstd with incompatible bit 3)");
      }
    }

    String backingFormat = null;
    int pos = headerLength;
    while (pos + 8 <= headLength) {
      int type = c0.getInt(pos);
      long length = c0.getInt(pos + 4) & 0xffffffffL;
      if (type == EXT_END) {
        break;
      }
      if (length > headLength - pos - 8) {
        throw file.openError(
            "header extension "
                + hex(type & 0xffffffffL)
                + " at offset "
                + hex(pos)
                + " of length "
                + length
                + " overruns the first cluster");
      }
      if (type == EXT_BACKING_FORMAT) {
        backingFormat = ascii(c0, pos + 8, (int) length);
      }
      pos += 8 + (int) ((length + 7) & ~7L);
    }

    long l1Entries = h.getInt(36) & 0xffffffffL;
    long l1Offset = h.getLong(40);
    int l2Bits = clusterBits - 3;
    long needed = ceilShift(size, clusterBits + l2Bits);
    if (l1Entries < needed) {
      throw file.openError(
          "L1 table size "
              + l1Entries
              + " at offset 0x24 is too small for virtual size "
              + hex(size)
              + " (need "
              + needed
              + " entries)");
    }
    if (l1Entries * 8 > MAX_L1_BYTES) {
      throw file.openError(
          "L1 table size " + l1Entries + " at offset 0x24 exceeds the limit of 32 MiB");
    }
    if (needed > 0 && (l1Offset & (clusterSize - 1)) != 0) {
      throw file.openError(
          "L1 table offset " + hex(l1Offset) + " at offset 0x28 is not cluster-aligned");
    }
    long[] l1 = new long[(int) needed];
    if (needed > 0) {
      file.checkRange("L1 table", l1Offset, l1Entries * 8, true);
      ByteBuffer t = file.read("L1 table", l1Offset, (int) needed * 8, ByteOrder.BIG_ENDIAN, true);
      t.asLongBuffer().get(l1);
    }

    DiskImage backing = null;
    long backingOffset = h.getLong(8);
    int backingLength = h.getInt(16);
    if (backingOffset != 0) {
      if (backingLength <= 0
          || backingLength > 1023
          || backingOffset > headLength - backingLength) {
        throw file.openError(
            "backing file name at offset "
                + hex(backingOffset)
                + " of length "
                + backingLength
                + " (header offsets 0x8 and 0x10) lies outside the first cluster or exceeds 1023"
                + " bytes");
      }
      String name = ascii(c0, (int) backingOffset, backingLength);
      backing = Images.openBacking(file, resolve(file, name), backingFormat, chain);
    }
    try {
      return new Qcow2Reader(file, size, backing, clusterBits, l1, l1Offset, compressionType);
    } catch (RuntimeException e) {
      if (backing != null) {
        backing.close();
      }
      throw e;
    }
  }

  /** A backing file name resolved the way qemu does: relative to the image's directory. */
  static Path resolve(ImageFile file, String name) throws IOException {
    if (name.startsWith("json:") || name.isEmpty() || name.indexOf('\0') >= 0) {
      throw file.openError("backing file '" + name + "' is not a plain file name; not supported");
    }
    Path p = Path.of(name);
    if (p.isAbsolute()) {
      return p;
    }
    Path dir = file.path().toAbsolutePath().getParent();
    return dir == null ? p : dir.resolve(p);
  }

  private static String ascii(ByteBuffer b, int offset, int length) {
    byte[] bytes = new byte[length];
    b.get(offset, bytes);
    return new String(bytes, StandardCharsets.UTF_8);
  }

  private static long ceilShift(long value, int bits) {
    return (value + (1L << bits) - 1) >>> bits;
  }

  @Override
  protected Run map(long offset, long length) throws IOException {
    long cluster = offset >>> clusterBits;
    int inCluster = (int) (offset & (clusterSize - 1));
    int l1Index = (int) (cluster >>> l2Bits);
    int l2Index = (int) (cluster & ((1 << l2Bits) - 1));
    long max = Math.min(length, ((long) ((1 << l2Bits) - l2Index) << clusterBits) - inCluster);
    long l2Offset = l1[l1Index] & L1E_OFFSET_MASK;
    if (l2Offset == 0) {
      return unallocated(max);
    }
    long[] l2 = loadL2(l1Index, l2Offset);
    long first = l2[l2Index];
    if ((first & L2E_COMPRESSED) != 0) {
      long coffset = first & coffsetMask;
      long sectors = ((first >>> csizeShift) & csizeMask) + 1;
      int csize = (int) (sectors * 512 - (coffset & 511));
      return new Run.Encoded(
          Math.min(max, clusterSize - inCluster), new Compressed(coffset, csize), inCluster);
    }
    int kind = kind(first, l2Offset, l2Index);
    long host = first & L2E_OFFSET_MASK;
    long covered = clusterSize - inCluster;
    for (int i = l2Index + 1; covered < max; i++) {
      long e = l2[i];
      if ((e & L2E_COMPRESSED) != 0 || kind(e, l2Offset, i) != kind) {
        break;
      }
      if (kind == DATA && (e & L2E_OFFSET_MASK) != host + ((long) (i - l2Index) << clusterBits)) {
        break;
      }
      covered += clusterSize;
    }
    long n = Math.min(covered, max);
    switch (kind) {
      case DATA:
        return new Run.Data(n, file(), host + inCluster);
      case ZERO:
        return new Run.Zero(n);
      default:
        return unallocated(n);
    }
  }

  private int kind(long entry, long l2Offset, int index) throws IOException {
    if ((entry & L2E_ZERO) != 0) {
      return ZERO;
    }
    long host = entry & L2E_OFFSET_MASK;
    if (host == 0) {
      return UNALLOCATED;
    }
    if ((host & (clusterSize - 1)) != 0) {
      throw file()
          .readError(
              "L2 entry at offset "
                  + hex(l2Offset + 8L * index)
                  + " points to unaligned cluster offset "
                  + hex(host));
    }
    return DATA;
  }

  private Run unallocated(long n) {
    return hasBacking ? new Run.Backing(n) : new Run.Zero(n);
  }

  private long[] loadL2(int l1Index, long l2Offset) throws IOException {
    return l2Cache.get(
        l2Offset,
        off -> {
          if ((off & (clusterSize - 1)) != 0) {
            throw file()
                .readError(
                    "L1 entry at offset "
                        + hex(l1Offset + 8L * l1Index)
                        + " points to unaligned L2 table offset "
                        + hex(off));
          }
          ByteBuffer b = file().read("L2 table", off, clusterSize, ByteOrder.BIG_ENDIAN, false);
          long[] t = new long[clusterSize / 8];
          b.asLongBuffer().get(t);
          return t;
        });
  }

  @Override
  protected byte[] decode(Object key) throws IOException {
    Compressed c = (Compressed) key;
    long fileSize = file().size();
    if (c.offset() >= fileSize) {
      throw file()
          .readError(
              "compressed cluster at offset "
                  + hex(c.offset())
                  + " lies outside the file (size "
                  + hex(fileSize)
                  + ")");
    }
    // The last compressed cluster's sector count may reach past the end of the file.
    int length = (int) Math.min(c.length(), fileSize - c.offset());
    byte[] src = new byte[length];
    file().read("compressed cluster", c.offset(), ByteBuffer.wrap(src), false);
    byte[] out = new byte[clusterSize];
    int produced = compressionType == COMPRESSION_ZSTD ? unzstd(c, src, out) : inflate(c, src, out);
    if (produced < clusterSize) {
      throw file()
          .readError(
              "compressed cluster at offset "
                  + hex(c.offset())
                  + " decompresses to "
                  + produced
                  + " bytes, expected "
                  + clusterSize);
    }
    return out;
  }

  private int inflate(Compressed c, byte[] src, byte[] out) throws IOException {
    Inflater inflater = new Inflater(true);
    try {
      inflater.setInput(src);
      int total = 0;
      while (total < out.length) {
        int n = inflater.inflate(out, total, out.length - total);
        if (n == 0) {
          break;
        }
        total += n;
      }
      return total;
    } catch (DataFormatException e) {
      throw file()
          .readError(
              "compressed cluster at offset "
                  + hex(c.offset())
                  + " does not decompress (deflate): "
                  + e.getMessage());
    } finally {
      inflater.end();
    }
  }

  private int unzstd(Compressed c, byte[] src, byte[] out) throws IOException {
    try (InputStream in = new ZstdInputStreamNoFinalizer(new ByteArrayInputStream(src))) {
      int total = 0;
      while (total < out.length) {
        int n = in.read(out, total, out.length - total);
        if (n <= 0) {
          break;
        }
        total += n;
      }
      return total;
    } catch (IOException | RuntimeException e) {
      throw file()
          .readError(
              "compressed cluster at offset "
                  + hex(c.offset())
                  + " does not decompress (zstd): "
                  + e.getMessage());
    } catch (LinkageError e) {
      throw file().readError("zstd decompression is unavailable on this platform: " + e);
    }
  }
}
