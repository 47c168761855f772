package io.granule.plugin.vmdisk.internal;

import static io.granule.plugin.vmdisk.internal.ImageFile.hex;

import io.granule.engine.spi.DiskImage;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Reads VMDK images: a hosted sparse extent on its own (monolithicSparse, streamOptimized), or a
 * text descriptor naming FLAT, SPARSE and ZERO extents (monolithicFlat, twoGbMaxExtentSparse,
 * twoGbMaxExtentFlat), and delta disks through {@code parentFileNameHint}. Refuses ESX extents
 * (VMFSSPARSE, SESPARSE, raw device maps) and COWD files.
 *
 * <p>Thread-safe: grain directories are immutable after open; grain tables live in a {@link
 * BoundedCache} of {@value #GT_CACHE_BYTES} bytes shared by the image's extents.
 */
final class VmdkReader extends MappedImage {
  static final int MAGIC = 0x564d444b; // "KDMV" little-endian
  private static final int COWD_MAGIC = 0x44574f43; // "COWD" little-endian
  private static final String DESCRIPTOR_MAGIC = "# Disk DescriptorFile";
  private static final int MAX_DESCRIPTOR_BYTES = 1 << 20;
  private static final int MAX_EXTENTS = 65536;
  private static final long GT_CACHE_BYTES = 16L << 20;
  private static final long GD_AT_END = -1L;
  private static final int FLAG_ZERO_GRAIN = 1 << 2;
  private static final int FLAG_COMPRESSED = 1 << 16;
  private static final int FLAG_MARKERS = 1 << 17;
  private static final int MARKER_END_OF_STREAM = 0;
  private static final int MARKER_FOOTER = 3;
  private static final int MAX_GRAIN_SECTORS = 0x200000;
  private static final int MAX_COMPRESSED_GRAIN_SECTORS = 4096;

  private static final Pattern EXTENT =
      Pattern.compile(
          "^(RW|RDONLY|NOACCESS)\\s+(\\d+)\\s+([A-Z]+)(?:\\s+\"([^\"]*)\"(?:\\s+(\\d+))?)?\\s*$");

  /** A hosted sparse extent: its file and grain directory. */
  private record Sparse(
      ImageFile file,
      long capacity,
      long grainBytes,
      int gtes,
      long[] gd,
      boolean compressed,
      boolean markers,
      boolean zeroGrain) {}

  /**
   * One extent of the virtual disk, {@code [start, start + length)}: flat data in {@code file} from
   * {@code fileOffset}, a sparse extent, or zeros (both null).
   */
  private record Extent(long start, long length, ImageFile file, long fileOffset, Sparse sparse) {}

  /** A compressed grain: extent index and the grain's sector in the extent file. */
  private record Grain(int extent, long sector) {
    @Override
    public String toString() {
      return "grain at sector " + sector + " of extent " + extent;
    }
  }

  private record GtKey(int extent, long sector) {}

  private final Extent[] extents;
  private final long[] starts;
  private final boolean hasParent;
  private final BoundedCache<GtKey, int[]> gtCache =
      new BoundedCache<>(GT_CACHE_BYTES, t -> 4L * t.length);

  private VmdkReader(
      ImageFile file, long size, DiskImage parent, List<Extent> extents, List<Closeable> files) {
    super("vmdk", file, size, parent, files);
    this.extents = extents.toArray(Extent[]::new);
    this.starts = extents.stream().mapToLong(Extent::start).toArray();
    this.hasParent = parent != null;
  }

  /** How sure {@code head} is a VMDK: 100 for a sparse header, COWD or a descriptor file. */
  static int probe(ByteBuffer head) {
    if (head.remaining() >= 4) {
      int m = head.order(ByteOrder.LITTLE_ENDIAN).getInt(head.position());
      if (m == MAGIC || m == COWD_MAGIC) {
        return 100;
      }
    }
    byte[] b = new byte[Math.min(head.remaining(), 4096)];
    head.duplicate().get(b);
    return isDescriptor(new String(b, StandardCharsets.ISO_8859_1)) ? 100 : 0;
  }

  /** As qemu decides: the first line that is not a comment or blank is {@code version=1..3}. */
  private static boolean isDescriptor(String text) {
    for (String line : text.split("\r?\n", -1)) {
      String t = line.strip();
      if (t.isEmpty() || t.startsWith("#")) {
        continue;
      }
      return t.equals("version=1") || t.equals("version=2") || t.equals("version=3");
    }
    return false;
  }

  /** Opens a VMDK; on success the reader owns {@code file}. */
  static VmdkReader open(ImageFile file, Chain chain) throws IOException {
    int n = (int) Math.min(512, file.size());
    ByteBuffer head = file.read("vmdk header", 0, n, ByteOrder.LITTLE_ENDIAN, true);
    int magic = n >= 4 ? head.getInt(0) : 0;
    if (magic == COWD_MAGIC) {
      throw file.openError("VMware ESX sparse (COWD) extents are not supported");
    }
    List<Closeable> files = new ArrayList<>();
    files.add(file);
    List<Extent> extents = new ArrayList<>();
    DiskImage parent = null;
    try {
      Map<String, String> descriptor;
      if (magic == MAGIC) {
        Sparse s = openSparse(file, head);
        extents.add(new Extent(0, s.capacity(), null, 0, s));
        descriptor = embeddedDescriptor(file, head);
      } else {
        if (file.size() > MAX_DESCRIPTOR_BYTES) {
          throw file.openError(
              "not a vmdk image: no sparse header magic at offset 0x0 and larger than a"
                  + " descriptor file (1 MiB)");
        }
        String text =
            new String(
                file.read("vmdk descriptor", 0, (int) file.size(), ByteOrder.LITTLE_ENDIAN, true)
                    .array(),
                StandardCharsets.UTF_8);
        if (!isDescriptor(text)) {
          throw file.openError(
              "not a vmdk image: neither a sparse header (magic KDMV) nor a descriptor file at"
                  + " offset 0x0");
        }
        descriptor = new HashMap<>();
        parseDescriptor(file, text, descriptor, extents, files);
      }
      long size =
          extents.isEmpty()
              ? 0
              : extents.get(extents.size() - 1).start() + extents.get(extents.size() - 1).length();
      String parentCid = descriptor.getOrDefault("parentCID", "ffffffff");
      String hint = descriptor.get("parentFileNameHint");
      if (!parentCid.equalsIgnoreCase("ffffffff") && hint != null) {
        parent = Images.openBacking(file, Qcow2Reader.resolve(file, hint), "vmdk", chain);
      }
      return new VmdkReader(file, size, parent, extents, files);
    } catch (IOException | RuntimeException e) {
      // The caller closes the top file; close the extents opened here.
      for (Closeable c : files.subList(1, files.size())) {
        closeQuietly(c, e);
      }
      if (parent != null) {
        closeQuietly(parent, e);
      }
      throw e;
    }
  }

  private static void closeQuietly(Closeable c, Exception primary) {
    try {
      c.close();
    } catch (IOException x) {
      primary.addSuppressed(x);
    }
  }

  private static Map<String, String> embeddedDescriptor(ImageFile file, ByteBuffer h)
      throws IOException {
    Map<String, String> out = new HashMap<>();
    long offset = h.getLong(28);
    long sectors = h.getLong(36);
    if (offset == 0 || sectors == 0) {
      return out;
    }
    if (offset < 0
        || sectors < 0
        || sectors > MAX_DESCRIPTOR_BYTES / 512
        || offset > Long.MAX_VALUE / 512) {
      throw file.openError(
          "embedded descriptor at sector "
              + offset
              + " of "
              + sectors
              + " sectors (header offsets 0x1c and 0x24) is out of range");
    }
    long length = Math.min(sectors * 512, Math.max(0, file.size() - offset * 512));
    ByteBuffer b =
        file.read("embedded descriptor", offset * 512, (int) length, ByteOrder.LITTLE_ENDIAN, true);
    String text = new String(b.array(), StandardCharsets.UTF_8);
    int nul = text.indexOf('\0');
    for (String line : (nul >= 0 ? text.substring(0, nul) : text).split("\n")) {
      keyValue(line, out);
    }
    return out;
  }

  private static void keyValue(String line, Map<String, String> out) {
    int eq = line.indexOf('=');
    if (eq > 0 && !line.startsWith("#")) {
      String value = line.substring(eq + 1).trim();
      if (value.length() >= 2 && value.startsWith("\"") && value.endsWith("\"")) {
        value = value.substring(1, value.length() - 1);
      }
      out.put(line.substring(0, eq).trim(), value);
    }
  }

  private static void parseDescriptor(
      ImageFile file,
      String text,
      Map<String, String> descriptor,
      List<Extent> extents,
      List<Closeable> files)
      throws IOException {
    long start = 0;
    int lineNo = 0;
    for (String raw : text.split("\r?\n")) {
      lineNo++;
      String line = raw.trim();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      Matcher m = EXTENT.matcher(line);
      if (!m.matches()) {
        keyValue(line, descriptor);
        continue;
      }
      String where = "descriptor line " + lineNo;
      long sectors;
      try {
        sectors = Long.parseLong(m.group(2));
      } catch (NumberFormatException e) {
        throw file.openError(where + ": extent size '" + m.group(2) + "' is out of range");
      }
      if (sectors <= 0
          || sectors > MAX_VIRTUAL_SIZE / 512
          || start + sectors * 512 > MAX_VIRTUAL_SIZE) {
        throw file.openError(where + ": extents add up to more than the limit of 64 TiB");
      }
      if (extents.size() >= MAX_EXTENTS) {
        throw file.openError(where + ": more than " + MAX_EXTENTS + " extents");
      }
      long length = sectors * 512;
      String type = m.group(3);
      if (m.group(1).equals("NOACCESS")) {
        throw file.openError(where + ": NOACCESS extents are not supported");
      }
      if (type.equals("ZERO")) {
        extents.add(new Extent(start, length, null, 0, null));
      } else if (type.equals("FLAT") || type.equals("VMFS")) {
        ImageFile f = openExtent(file, m.group(4), where, files);
        long offset = m.group(5) == null ? 0 : parseSectors(file, m.group(5), where);
        extents.add(new Extent(start, length, f, offset * 512, null));
      } else if (type.equals("SPARSE")) {
        ImageFile f = openExtent(file, m.group(4), where, files);
        ByteBuffer h =
            f.read(
                "vmdk sparse header",
                0,
                (int) Math.min(512, f.size()),
                ByteOrder.LITTLE_ENDIAN,
                true);
        if (h.remaining() < 4 || h.getInt(0) != MAGIC) {
          throw f.openError(
              "not a vmdk sparse extent: no KDMV magic at offset 0x0 (named by "
                  + file.path()
                  + " "
                  + where
                  + ")");
        }
        Sparse s = openSparse(f, h);
        if (s.capacity() < length) {
          throw f.openError(
              "sparse extent capacity "
                  + hex(s.capacity())
                  + " is smaller than the "
                  + hex(length)
                  + " bytes its descriptor ("
                  + where
                  + ") gives it");
        }
        extents.add(new Extent(start, length, null, 0, s));
      } else {
        throw file.openError(
            where + ": " + type + " extents are not supported (supported: FLAT, SPARSE, ZERO)");
      }
      start += length;
    }
    if (extents.isEmpty()) {
      throw file.openError("vmdk descriptor names no extents");
    }
  }

  private static long parseSectors(ImageFile file, String s, String where) throws IOException {
    try {
      long v = Long.parseLong(s);
      if (v >= 0 && v <= Long.MAX_VALUE / 512) {
        return v;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw file.openError(where + ": extent offset '" + s + "' is out of range");
  }

  private static ImageFile openExtent(
      ImageFile descriptor, String name, String where, List<Closeable> files) throws IOException {
    if (name == null) {
      throw descriptor.openError(where + ": extent has no file name");
    }
    ImageFile f;
    try {
      f = ImageFile.open(Qcow2Reader.resolve(descriptor, name));
    } catch (IOException e) {
      throw (IOException)
          descriptor
              .openError(where + ": extent file '" + name + "' cannot be opened: " + e.getMessage())
              .initCause(e);
    }
    files.add(f);
    return f;
  }

  private static Sparse openSparse(ImageFile file, ByteBuffer h) throws IOException {
    if (h.remaining() < 79) {
      throw file.openError("file is too small for a vmdk sparse header (512 bytes)");
    }
    if ((h.getLong(56) == GD_AT_END)) {
      h = footerHeader(file);
    }
    int version = h.getInt(4);
    if (version < 1 || version > 3) {
      throw file.openError(
          "unsupported vmdk version " + version + " at offset 0x4 (supported:" + " 1 to 3)");
    }
    int flags = h.getInt(8);
    long capacitySectors = h.getLong(12);
    long grainSectors = h.getLong(20);
    int gtes = h.getInt(44);
    long gdSector = h.getLong(56);
    boolean compressed = (flags & FLAG_COMPRESSED) != 0;
    boolean markers = (flags & FLAG_MARKERS) != 0;
    if (capacitySectors < 0 || capacitySectors > MAX_VIRTUAL_SIZE / 512) {
      throw file.openError(
          "capacity of "
              + capacitySectors
              + " sectors at offset 0xc exceeds"
              + " the limit of 64 TiB");
    }
    long maxGrain = compressed ? MAX_COMPRESSED_GRAIN_SECTORS : MAX_GRAIN_SECTORS;
    if (grainSectors < 1 || grainSectors > maxGrain) {
      throw file.openError(
          "grain size of "
              + grainSectors
              + " sectors at offset 0x14 is out of"
              + " range (1 to "
              + maxGrain
              + ")");
    }
    if (gtes < 1 || gtes > 65536) {
      throw file.openError(
          "numGTEsPerGT " + gtes + " at offset 0x2c is out of range (1 to" + " 65536)");
    }
    if (compressed) {
      int algorithm = h.getShort(77) & 0xffff;
      if (algorithm != 1) {
        throw file.openError(
            "unsupported vmdk compression algorithm "
                + algorithm
                + " at offset 0x4d (supported: 1 deflate)");
      }
    }
    long capacity = capacitySectors * 512;
    long grainBytes = grainSectors * 512;
    long gtCoverage = grainBytes * gtes;
    long gdEntries = (capacity + gtCoverage - 1) / gtCoverage;
    if (gdSector < 0 || gdSector > file.size() / 512) {
      throw file.openError(
          "grain directory at sector "
              + gdSector
              + " (offset 0x38) lies"
              + " outside the file (size "
              + hex(file.size())
              + ")");
    }
    file.checkRange("grain directory", gdSector * 512, gdEntries * 4, true);
    ByteBuffer gdBytes =
        file.read(
            "grain directory", gdSector * 512, (int) gdEntries * 4, ByteOrder.LITTLE_ENDIAN, true);
    long[] gd = new long[(int) gdEntries];
    for (int i = 0; i < gd.length; i++) {
      gd[i] = gdBytes.getInt(4 * i) & 0xffffffffL;
    }
    return new Sparse(
        file, capacity, grainBytes, gtes, gd, compressed, markers, (flags & FLAG_ZERO_GRAIN) != 0);
  }

  /** The header copy in a streamOptimized file's footer, which has the grain directory offset. */
  private static ByteBuffer footerHeader(ImageFile file) throws IOException {
    long size = file.size();
    if (size < 1536 + 512) {
      throw file.openError("file is too small for a streamOptimized footer");
    }
    ByteBuffer f = file.read("vmdk footer", size - 1536, 1536, ByteOrder.LITTLE_ENDIAN, true);
    boolean ok =
        f.getInt(8) == 0
            && f.getInt(12) == MARKER_FOOTER
            && f.getInt(512) == MAGIC
            && f.getLong(1024) == 0
            && f.getInt(1032) == 0
            && f.getInt(1036) == MARKER_END_OF_STREAM;
    if (!ok) {
      throw file.openError(
          "invalid streamOptimized footer at offset "
              + hex(size - 1536)
              + " (footer marker, footer header and end-of-stream marker expected)");
    }
    ByteBuffer h = f.slice(512, 512).order(ByteOrder.LITTLE_ENDIAN);
    if (h.getLong(56) == GD_AT_END) {
      throw file.openError(
          "streamOptimized footer at offset "
              + hex(size - 1024)
              + " has no grain directory offset");
    }
    return h;
  }

  @Override
  protected Run map(long offset, long length) throws IOException {
    int i = Arrays.binarySearch(starts, offset);
    if (i < 0) {
      i = -i - 2;
    }
    Extent e = extents[i];
    long rel = offset - e.start();
    long max = Math.min(length, e.length() - rel);
    if (e.sparse() != null) {
      return mapSparse(i, e.sparse(), rel, max);
    }
    if (e.file() == null) {
      return new Run.Zero(max);
    }
    return new Run.Data(max, e.file(), e.fileOffset() + rel);
  }

  private Run mapSparse(int index, Sparse s, long rel, long max) throws IOException {
    long grain = rel / s.grainBytes();
    int inGrain = (int) (rel % s.grainBytes());
    int gdIndex = (int) (grain / s.gtes());
    int gtIndex = (int) (grain % s.gtes());
    max = Math.min(max, (s.gtes() - gtIndex) * s.grainBytes() - inGrain);
    long gtSector = s.gd()[gdIndex];
    if (gtSector == 0) {
      return unallocated(max);
    }
    int[] gt = gtCache.get(new GtKey(index, gtSector), k -> loadGt(s, k.sector()));
    long first = gt[gtIndex] & 0xffffffffL;
    long grainLeft = s.grainBytes() - inGrain;
    if (first == 0) {
      long n = grainLeft;
      for (int j = gtIndex + 1; n < max && gt[j] == 0; j++) {
        n += s.grainBytes();
      }
      return unallocated(Math.min(n, max));
    }
    if (first == 1 && s.zeroGrain()) {
      long n = grainLeft;
      for (int j = gtIndex + 1; n < max && gt[j] == 1; j++) {
        n += s.grainBytes();
      }
      return new Run.Zero(Math.min(n, max));
    }
    if (s.compressed()) {
      return new Run.Encoded(Math.min(grainLeft, max), new Grain(index, first), inGrain);
    }
    long n = grainLeft;
    long grainSectors = s.grainBytes() / 512;
    for (int j = gtIndex + 1; n < max; j++) {
      long next = gt[j] & 0xffffffffL;
      if (next != first + (j - gtIndex) * grainSectors || (next == 1 && s.zeroGrain())) {
        break;
      }
      n += s.grainBytes();
    }
    return new Run.Data(Math.min(n, max), s.file(), first * 512 + inGrain);
  }

  private Run unallocated(long n) {
    return hasParent ? new Run.Backing(n) : new Run.Zero(n);
  }

  private static int[] loadGt(Sparse s, long sector) throws IOException {
    if (sector > s.file().size() / 512) {
      throw s.file()
          .readError(
              "grain table at sector "
                  + sector
                  + " lies outside the file (size "
                  + hex(s.file().size())
                  + ")");
    }
    ByteBuffer b =
        s.file().read("grain table", sector * 512, s.gtes() * 4, ByteOrder.LITTLE_ENDIAN, false);
    int[] t = new int[s.gtes()];
    b.asIntBuffer().get(t);
    return t;
  }

  @Override
  protected byte[] decode(Object key) throws IOException {
    Grain g = (Grain) key;
    Sparse s = extents[g.extent()].sparse();
    ImageFile f = s.file();
    long offset = g.sector() * 512;
    int grainBytes = (int) s.grainBytes();
    // Deflate never grows data by more than a few bytes per 16 KiB block.
    int maxCompressed = grainBytes + grainBytes / 8 + 1024;
    int length;
    if (s.markers()) {
      ByteBuffer m = f.read("grain marker", offset, 12, ByteOrder.LITTLE_ENDIAN, false);
      long size = m.getInt(8) & 0xffffffffL;
      if (size == 0 || size > maxCompressed) {
        throw f.readError(
            "compressed grain at offset "
                + hex(offset)
                + " has size "
                + size
                + " (expected 1 to "
                + maxCompressed
                + ")");
      }
      offset += 12;
      length = (int) size;
    } else {
      length = (int) Math.min(maxCompressed, Math.max(0, f.size() - offset));
    }
    byte[] src = new byte[length];
    f.read("compressed grain", offset, ByteBuffer.wrap(src), false);
    byte[] out = new byte[grainBytes];
    Inflater inflater = new Inflater();
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
      if (total < out.length && !inflater.finished()) {
        throw f.readError(
            "compressed grain at offset "
                + hex(offset)
                + " is truncated ("
                + total
                + " of "
                + grainBytes
                + " bytes decompressed)");
      }
      return total == out.length ? out : Arrays.copyOf(out, total);
    } catch (DataFormatException e) {
      throw f.readError(
          "compressed grain at offset " + hex(offset) + " does not decompress: " + e.getMessage());
    } finally {
      inflater.end();
    }
  }
}
