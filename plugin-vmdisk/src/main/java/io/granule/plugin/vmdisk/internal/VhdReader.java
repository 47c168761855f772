package io.granule.plugin.vmdisk.internal;

import static io.granule.plugin.vmdisk.internal.ImageFile.hex;

import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reads VHD (Virtual PC, qemu's "vpc") images: fixed (data then a footer), dynamic (footer copy,
 * dynamic header, block allocation table, blocks of a sector bitmap and data) and differencing
 * (dynamic, with sectors whose bitmap bit is clear read from the parent found through the parent
 * locators). The virtual size follows qemu: the CHS geometry unless the creator is known to use the
 * footer's current size.
 *
 * <p>Thread-safe: the BAT is immutable after open; sector bitmaps of a differencing disk live in a
 * {@link BoundedCache}.
 */
final class VhdReader extends MappedImage {
  private static final byte[] COOKIE = "conectix".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] DYNAMIC_COOKIE = "cxsparse".getBytes(StandardCharsets.US_ASCII);
  private static final int TYPE_FIXED = 2;
  private static final int TYPE_DYNAMIC = 3;
  private static final int TYPE_DIFFERENCING = 4;
  private static final long MAX_CHS_SECTORS = 65535L * 16 * 255;
  private static final long UNALLOCATED = 0xffffffffL;
  private static final long BITMAP_CACHE_BYTES = 4L << 20;
  private static final int LOCATOR_W2RU = 0x57327275;
  private static final int LOCATOR_W2KU = 0x57326b75;

  private final long blockSize;
  private final int bitmapBytes;
  private final long[] bat;
  private final boolean differencing;
  private final boolean hasParent;
  private final BoundedCache<Integer, byte[]> bitmaps =
      new BoundedCache<>(BITMAP_CACHE_BYTES, b -> b.length);

  private VhdReader(
      ImageFile file,
      long size,
      DiskImage parent,
      long blockSize,
      long[] bat,
      boolean differencing) {
    super("vhd", file, size, parent, List.of(file));
    this.blockSize = blockSize;
    this.bitmapBytes = bat == null ? 0 : (int) (((blockSize / 512 + 7) / 8 + 511) & ~511L);
    this.bat = bat;
    this.differencing = differencing;
    this.hasParent = parent != null;
  }

  /**
   * 100 if {@code head} starts with a footer copy (dynamic and differencing VHDs); a fixed VHD has
   * its only footer at the end of the file, which probing does not see.
   */
  static boolean hasCookie(ByteBuffer head) {
    if (head.remaining() < 8) {
      return false;
    }
    byte[] b = new byte[8];
    head.duplicate().get(b);
    return Arrays.equals(b, COOKIE);
  }

  /** Opens a VHD; on success the reader owns {@code file}. */
  static VhdReader open(ImageFile file, Chain chain) throws IOException {
    if (file.size() < 512) {
      throw file.openError("file of " + file.size() + " bytes is too small for a vhd footer (512)");
    }
    long footerOffset = 0;
    ByteBuffer footer = file.read("vhd footer", 0, 512, ByteOrder.BIG_ENDIAN, true);
    if (!startsWith(footer, COOKIE)) {
      footerOffset = file.size() - 512;
      footer = file.read("vhd footer", footerOffset, 512, ByteOrder.BIG_ENDIAN, true);
      if (!startsWith(footer, COOKIE)) {
        throw file.openError(
            "not a vhd image: no 'conectix' cookie at offset 0x0 or " + hex(footerOffset));
      }
    }
    checksum(file, footer, 64, footerOffset, "footer");
    int type = footer.getInt(60);
    long size = virtualSize(footer);
    if (size < 0 || size > MAX_VIRTUAL_SIZE) {
      throw file.openError(
          "virtual size "
              + hex(size)
              + " in the footer at offset "
              + hex(footerOffset)
              + " exceeds the limit of 64 TiB");
    }
    if (type == TYPE_FIXED) {
      file.checkRange("fixed vhd data", 0, size, true);
      return new VhdReader(file, size, null, 0, null, false);
    }
    if (type != TYPE_DYNAMIC && type != TYPE_DIFFERENCING) {
      throw file.openError(
          "unsupported vhd disk type "
              + type
              + " at offset "
              + hex(footerOffset + 60)
              + " (supported: 2 fixed, 3 dynamic, 4 differencing)");
    }
    long headerOffset = footer.getLong(16);
    ByteBuffer dyn =
        file.read("vhd dynamic header", headerOffset, 1024, ByteOrder.BIG_ENDIAN, true);
    if (!startsWith(dyn, DYNAMIC_COOKIE)) {
      throw file.openError(
          "no 'cxsparse' cookie in the dynamic header at offset " + hex(headerOffset));
    }
    checksum(file, dyn, 36, headerOffset, "dynamic header");
    long batOffset = dyn.getLong(16);
    long entries = dyn.getInt(28) & 0xffffffffL;
    long blockSize = dyn.getInt(32) & 0xffffffffL;
    if (blockSize < 512 || blockSize > (256L << 20) || Long.bitCount(blockSize) != 1) {
      throw file.openError(
          "block size "
              + blockSize
              + " in the dynamic header at offset "
              + hex(headerOffset + 32)
              + " is not a power of two from 512 bytes to 256 MiB");
    }
    long needed = (size + blockSize - 1) / blockSize;
    if (entries < needed) {
      throw file.openError(
          "block allocation table of "
              + entries
              + " entries (offset "
              + hex(headerOffset + 28)
              + ") is too small for virtual size "
              + hex(size));
    }
    file.checkRange("block allocation table", batOffset, needed * 4, true);
    ByteBuffer b =
        file.read(
            "block allocation table", batOffset, (int) needed * 4, ByteOrder.BIG_ENDIAN, true);
    long[] bat = new long[(int) needed];
    for (int i = 0; i < bat.length; i++) {
      bat[i] = b.getInt(4 * i) & 0xffffffffL;
    }
    DiskImage parent = null;
    if (type == TYPE_DIFFERENCING) {
      parent = Images.openBacking(file, findParent(file, dyn, headerOffset), "vhd", chain);
      try {
        checkParent(file, dyn, parent);
      } catch (IOException | RuntimeException e) {
        parent.close();
        throw e;
      }
    }
    return new VhdReader(file, size, parent, blockSize, bat, type == TYPE_DIFFERENCING);
  }

  /** qemu's rule: the CHS geometry, unless the creator app uses the footer's current size. */
  private static long virtualSize(ByteBuffer footer) {
    byte[] app = new byte[4];
    footer.get(28, app);
    String creator = new String(app, StandardCharsets.ISO_8859_1);
    boolean useChs =
        !creator.equals("win ")
            && !creator.equals("qem2")
            && !creator.equals("d2v ")
            && !creator.equals("CTXS")
            && !creator.equals("tap\0");
    long chs =
        (long) (footer.getShort(56) & 0xffff) * (footer.get(58) & 0xff) * (footer.get(59) & 0xff);
    if (!useChs || chs == MAX_CHS_SECTORS) {
      return footer.getLong(48) & ~511L;
    }
    return chs * 512;
  }

  private static Path findParent(ImageFile file, ByteBuffer dyn, long headerOffset)
      throws IOException {
    Path dir = file.path().toAbsolutePath().getParent();
    List<String> tried = new ArrayList<>();
    for (int code : new int[] {LOCATOR_W2RU, LOCATOR_W2KU}) {
      for (int i = 0; i < 8; i++) {
        int at = 576 + 24 * i;
        if (dyn.getInt(at) != code) {
          continue;
        }
        long length = dyn.getInt(at + 8) & 0xffffffffL;
        long offset = dyn.getLong(at + 16);
        if (length == 0 || length > 4096) {
          throw file.openError(
              "parent locator "
                  + i
                  + " at offset "
                  + hex(headerOffset + at)
                  + " has length "
                  + length
                  + " (expected 1 to 4096)");
        }
        ByteBuffer b =
            file.read("parent locator", offset, (int) length, ByteOrder.BIG_ENDIAN, true);
        String name = new String(b.array(), StandardCharsets.UTF_16LE).replace('\\', '/');
        if (name.startsWith("./")) {
          name = name.substring(2);
        }
        Path p = dir.resolve(name);
        tried.add(p.toString());
        if (Files.isRegularFile(p)) {
          return p;
        }
      }
    }
    byte[] unicode = new byte[512];
    dyn.get(64, unicode);
    String name = new String(unicode, StandardCharsets.UTF_16BE);
    int nul = name.indexOf('\0');
    name = (nul >= 0 ? name.substring(0, nul) : name).replace('\\', '/');
    if (!name.isEmpty() && !name.contains("/")) {
      Path p = dir.resolve(name);
      tried.add(p.toString());
      if (Files.isRegularFile(p)) {
        return p;
      }
    }
    throw file.openError(
        "parent of differencing vhd not found (tried: " + String.join(", ", tried) + ")");
  }

  private static void checkParent(ImageFile file, ByteBuffer dyn, DiskImage parent)
      throws IOException {
    if (!(parent instanceof VhdReader p)) {
      throw file.openError("parent of differencing vhd is not a vhd image");
    }
    byte[] expected = new byte[16];
    dyn.get(40, expected);
    ByteBuffer pf =
        p.file().read("vhd footer", p.file().size() - 512, 512, ByteOrder.BIG_ENDIAN, true);
    byte[] actual = new byte[16];
    pf.get(68, actual);
    if (!Arrays.equals(expected, actual)) {
      throw file.openError(
          "parent '"
              + p.file().path()
              + "' has unique id "
              + uuid(actual)
              + ", expected "
              + uuid(expected)
              + " (the parent changed since the child was made)");
    }
  }

  private static String uuid(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : b) {
      s.append(String.format(java.util.Locale.ROOT, "%02x", x & 0xff));
    }
    return s.toString();
  }

  private static boolean startsWith(ByteBuffer b, byte[] cookie) {
    byte[] head = new byte[cookie.length];
    b.get(0, head);
    return Arrays.equals(head, cookie);
  }

  /** VHD checksums: the one's complement of the byte sum with the checksum field as zero. */
  private static void checksum(ImageFile file, ByteBuffer b, int field, long offset, String what)
      throws IOException {
    int sum = 0;
    for (int i = 0; i < b.limit(); i++) {
      if (i < field || i >= field + 4) {
        sum += b.get(i) & 0xff;
      }
    }
    int expected = ~sum;
    int actual = b.getInt(field);
    if (actual != expected) {
      throw file.openError(
          "checksum mismatch in the vhd "
              + what
              + " at offset "
              + hex(offset)
              + ": actual="
              + hex(actual & 0xffffffffL)
              + " expected="
              + hex(expected & 0xffffffffL));
    }
  }

  @Override
  protected Run map(long offset, long length) throws IOException {
    if (bat == null) {
      return new Run.Data(length, file(), offset);
    }
    int block = (int) (offset / blockSize);
    long inBlock = offset % blockSize;
    long max = Math.min(length, blockSize - inBlock);
    long sector = bat[block];
    if (sector == UNALLOCATED) {
      long n = max;
      for (int i = block + 1; n < length && bat[i] == UNALLOCATED; i++) {
        n += Math.min(blockSize, length - n);
      }
      return hasParent ? new Run.Backing(n) : new Run.Zero(n);
    }
    long data = sector * 512 + bitmapBytes;
    if (!differencing) {
      // Like qemu, a dynamic disk reads an allocated block whole, whatever its bitmap says.
      return new Run.Data(max, file(), data + inBlock);
    }
    byte[] bitmap = bitmaps.get(block, k -> loadBitmap(k, sector));
    int first = (int) (inBlock / 512);
    boolean present = bit(bitmap, first);
    long n = 512 - inBlock % 512;
    for (int s = first + 1; n < max && bit(bitmap, s) == present; s++) {
      n += 512;
    }
    n = Math.min(n, max);
    return present ? new Run.Data(n, file(), data + inBlock) : new Run.Backing(n);
  }

  private static boolean bit(byte[] bitmap, int sector) {
    return (bitmap[sector >>> 3] & (0x80 >>> (sector & 7))) != 0;
  }

  private byte[] loadBitmap(int block, long sector) throws IOException {
    ByteBuffer b =
        file()
            .read(
                "sector bitmap of block " + block,
                sector * 512,
                bitmapBytes,
                ByteOrder.BIG_ENDIAN,
                false);
    return b.array();
  }
}
