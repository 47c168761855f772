package io.granule.plugin.vmdisk.internal;

import static io.granule.plugin.vmdisk.internal.ImageFile.hex;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * Reads VHDX images, dynamic and fixed: the two headers (the valid one with the higher sequence
 * number), the region table, the metadata region (block size, virtual size, logical sector size,
 * file parameters) and the BAT with its interleaved sector-bitmap entries. Refuses images whose log
 * may need replaying (a non-zero log GUID) and differencing images.
 *
 * <p>Thread-safe: the BAT is read lazily in pages of {@value #BAT_PAGE_ENTRIES} entries kept in a
 * {@link BoundedCache} of {@value #BAT_CACHE_BYTES} bytes.
 */
final class VhdxReader extends MappedImage {
  private static final byte[] SIGNATURE = "vhdxfile".getBytes(StandardCharsets.US_ASCII);
  private static final int HEADER_SIGNATURE = 0x64616568; // "head"
  private static final int REGION_SIGNATURE = 0x69676572; // "regi"
  private static final byte[] METADATA_SIGNATURE = "metadata".getBytes(StandardCharsets.US_ASCII);
  private static final long KIB = 1024;
  private static final long MIB = 1024 * KIB;
  private static final int MAX_TABLE_ENTRIES = 2047;

  private static final UUID BAT_REGION = UUID.fromString("2dc27766-f623-4200-9d64-115e9bfd4a08");
  private static final UUID METADATA_REGION =
      UUID.fromString("8b7ca206-4790-4b9a-b8fe-575f050f886e");
  private static final UUID FILE_PARAMETERS =
      UUID.fromString("caa16737-fa36-4d43-b3b6-33f0aa44e76b");
  private static final UUID VIRTUAL_DISK_SIZE =
      UUID.fromString("2fa54224-cd1b-4876-b211-5dbed83bf4b8");
  private static final UUID PAGE_83 = UUID.fromString("beca12ab-b2e6-4523-93ef-c309e000c746");
  private static final UUID LOGICAL_SECTOR_SIZE =
      UUID.fromString("8141bf1d-a96f-4709-ba47-f233a8faab5f");
  private static final UUID PHYSICAL_SECTOR_SIZE =
      UUID.fromString("cda348c7-445d-4471-9cc9-e9885251c556");
  private static final UUID PARENT_LOCATOR =
      UUID.fromString("a8d35f2d-b30b-454d-abf7-d3d84834ab0c");

  private static final int STATE_NOT_PRESENT = 0;
  private static final int STATE_UNDEFINED = 1;
  private static final int STATE_ZERO = 2;
  private static final int STATE_UNMAPPED = 3;
  private static final int STATE_FULLY_PRESENT = 6;
  private static final long BAT_OFFSET_MASK = 0xfffffffffff00000L;
  private static final int BAT_PAGE_ENTRIES = 4096;
  private static final long BAT_CACHE_BYTES = 16L << 20;

  private final long blockSize;
  private final long chunkRatio;
  private final long batOffset;
  private final long batEntries;
  private final BoundedCache<Long, long[]> batPages =
      new BoundedCache<>(BAT_CACHE_BYTES, p -> 8L * p.length);

  private VhdxReader(
      ImageFile file, long size, long blockSize, long chunkRatio, long batOffset, long batEntries) {
    super("vhdx", file, size, null, List.of(file));
    this.blockSize = blockSize;
    this.chunkRatio = chunkRatio;
    this.batOffset = batOffset;
    this.batEntries = batEntries;
  }

  static boolean hasSignature(ByteBuffer head) {
    if (head.remaining() < 8) {
      return false;
    }
    byte[] b = new byte[8];
    head.duplicate().get(b);
    return Arrays.equals(b, SIGNATURE);
  }

  /** Opens a VHDX; on success the reader owns {@code file}. */
  static VhdxReader open(ImageFile file, Chain chain) throws IOException {
    if (file.size() < 1 * MIB) {
      throw file.openError(
          "file of "
              + file.size()
              + " bytes is too small for a vhdx image (the"
              + " headers and region tables take 1 MiB)");
    }
    if (!hasSignature(file.read("vhdx signature", 0, 8, ByteOrder.LITTLE_ENDIAN, true))) {
      throw file.openError("not a vhdx image: no 'vhdxfile' signature at offset 0x0");
    }
    ByteBuffer header = pickHeader(file);
    if (header.getShort(66) != 1) {
      throw file.openError("unsupported vhdx version " + header.getShort(66) + " (supported: 1)");
    }
    if (header.getLong(48) != 0 || header.getLong(56) != 0) {
      throw file.openError(
          "vhdx log not empty: open it once with qemu-img check -r all or" + " Hyper-V first");
    }
    ByteBuffer regions = regionTable(file);
    long[] bat = null;
    long[] metadata = null;
    int count = regions.getInt(8);
    for (int i = 0; i < count; i++) {
      int at = 16 + 32 * i;
      UUID id = guid(regions, at);
      long offset = regions.getLong(at + 16);
      long length = regions.getInt(at + 24) & 0xffffffffL;
      boolean required = (regions.getInt(at + 28) & 1) != 0;
      long[] region = {offset, length};
      if (id.equals(BAT_REGION)) {
        bat = region;
      } else if (id.equals(METADATA_REGION)) {
        metadata = region;
      } else if (required) {
        throw file.openError("unknown required vhdx region " + id + " in the region table");
      }
      if (id.equals(BAT_REGION) || id.equals(METADATA_REGION)) {
        file.checkRange((bat == region ? "BAT" : "metadata") + " region", offset, length, true);
      }
    }
    if (bat == null || metadata == null) {
      throw file.openError(
          "vhdx region table lacks the " + (bat == null ? "BAT" : "metadata") + " region");
    }
    Metadata m = readMetadata(file, metadata[0], metadata[1]);
    long chunkRatio = (1L << 23) * m.logicalSectorSize() / m.blockSize();
    long dataBlocks = (m.virtualSize() + m.blockSize() - 1) / m.blockSize();
    long entries = dataBlocks == 0 ? 0 : dataBlocks + (dataBlocks - 1) / chunkRatio;
    if (entries * 8 > bat[1]) {
      throw file.openError(
          "BAT region at offset "
              + hex(bat[0])
              + " of length "
              + hex(bat[1])
              + " is too small for "
              + entries
              + " entries");
    }
    return new VhdxReader(file, m.virtualSize(), m.blockSize(), chunkRatio, bat[0], entries);
  }

  private record Metadata(long blockSize, long virtualSize, long logicalSectorSize) {}

  private static ByteBuffer pickHeader(ImageFile file) throws IOException {
    ByteBuffer best = null;
    long bestSequence = -1;
    StringBuilder why = new StringBuilder();
    for (long offset : new long[] {64 * KIB, 128 * KIB}) {
      ByteBuffer h = file.read("vhdx header", offset, 4096, ByteOrder.LITTLE_ENDIAN, true);
      if (h.getInt(0) != HEADER_SIGNATURE) {
        why.append(" no 'head' signature at ").append(hex(offset)).append(';');
        continue;
      }
      if (!crcOk(h, 4)) {
        why.append(" checksum mismatch at ").append(hex(offset)).append(';');
        continue;
      }
      long sequence = h.getLong(8);
      if (best == null || Long.compareUnsigned(sequence, bestSequence) > 0) {
        best = h;
        bestSequence = sequence;
      }
    }
    if (best == null) {
      throw file.openError("no valid vhdx header:" + why.substring(0, why.length() - 1));
    }
    return best;
  }

  private static ByteBuffer regionTable(ImageFile file) throws IOException {
    for (long offset : new long[] {192 * KIB, 256 * KIB}) {
      ByteBuffer r =
          file.read("vhdx region table", offset, (int) (64 * KIB), ByteOrder.LITTLE_ENDIAN, true);
      if (r.getInt(0) == REGION_SIGNATURE && crcOk(r, 4)) {
        long count = r.getInt(8) & 0xffffffffL;
        if (count > MAX_TABLE_ENTRIES) {
          throw file.openError(
              "vhdx region table at offset "
                  + hex(offset)
                  + " has "
                  + count
                  + " entries (at most "
                  + MAX_TABLE_ENTRIES
                  + ")");
        }
        return r;
      }
    }
    throw file.openError("no valid vhdx region table at offset 0x30000 or 0x40000");
  }

  private static Metadata readMetadata(ImageFile file, long offset, long length)
      throws IOException {
    if (length < 64 * KIB) {
      throw file.openError(
          "metadata region at offset " + hex(offset) + " is shorter than its" + " 64 KiB table");
    }
    ByteBuffer t =
        file.read("vhdx metadata table", offset, (int) (64 * KIB), ByteOrder.LITTLE_ENDIAN, true);
    byte[] sig = new byte[8];
    t.get(0, sig);
    if (!Arrays.equals(sig, METADATA_SIGNATURE)) {
      throw file.openError("no 'metadata' signature at offset " + hex(offset));
    }
    int count = t.getShort(10) & 0xffff;
    if (count > MAX_TABLE_ENTRIES) {
      throw file.openError(
          "vhdx metadata table at offset "
              + hex(offset)
              + " has "
              + count
              + " entries (at most "
              + MAX_TABLE_ENTRIES
              + ")");
    }
    long blockSize = -1;
    long flags = 0;
    long virtualSize = -1;
    long logicalSector = -1;
    for (int i = 0; i < count; i++) {
      int at = 32 + 32 * i;
      UUID id = guid(t, at);
      long itemOffset = t.getInt(at + 16) & 0xffffffffL;
      long itemLength = t.getInt(at + 20) & 0xffffffffL;
      boolean required = (t.getInt(at + 24) & 4) != 0;
      String where = "metadata item " + id + " at offset " + hex(offset + at);
      boolean known =
          id.equals(FILE_PARAMETERS)
              || id.equals(VIRTUAL_DISK_SIZE)
              || id.equals(PAGE_83)
              || id.equals(LOGICAL_SECTOR_SIZE)
              || id.equals(PHYSICAL_SECTOR_SIZE)
              || id.equals(PARENT_LOCATOR);
      if (!known) {
        if (required) {
          throw file.openError("unknown required " + where);
        }
        continue;
      }
      if (itemOffset < 64 * KIB || itemLength > length || itemOffset > length - itemLength) {
        throw file.openError(where + " points outside the metadata region");
      }
      int need = id.equals(VIRTUAL_DISK_SIZE) || id.equals(FILE_PARAMETERS) ? 8 : 4;
      if (id.equals(PAGE_83) || id.equals(PARENT_LOCATOR) || id.equals(PHYSICAL_SECTOR_SIZE)) {
        continue;
      }
      if (itemLength < need) {
        throw file.openError(where + " is " + itemLength + " bytes, expected " + need);
      }
      ByteBuffer v =
          file.read("vhdx metadata item", offset + itemOffset, need, ByteOrder.LITTLE_ENDIAN, true);
      if (id.equals(FILE_PARAMETERS)) {
        blockSize = v.getInt(0) & 0xffffffffL;
        flags = v.getInt(4) & 0xffffffffL;
      } else if (id.equals(VIRTUAL_DISK_SIZE)) {
        virtualSize = v.getLong(0);
      } else {
        logicalSector = v.getInt(0) & 0xffffffffL;
      }
    }
    if (blockSize < 0 || virtualSize < 0 || logicalSector < 0) {
      throw file.openError(
          "vhdx metadata lacks the "
              + (blockSize < 0
                  ? "file parameters"
                  : virtualSize < 0 ? "virtual disk size" : "logical sector size")
              + " item");
    }
    if ((flags & 2) != 0) {
      throw file.openError(
          "differencing vhdx images are not supported (file parameters"
              + " has-parent flag set); merge it first with Hyper-V or convert it with qemu-img");
    }
    if (blockSize < MIB || blockSize > 256 * MIB || Long.bitCount(blockSize) != 1) {
      throw file.openError(
          "block size " + blockSize + " is not a power of two from 1 MiB to" + " 256 MiB");
    }
    if (logicalSector != 512 && logicalSector != 4096) {
      throw file.openError("logical sector size " + logicalSector + " is neither 512 nor 4096");
    }
    if (virtualSize > MAX_VIRTUAL_SIZE || virtualSize % logicalSector != 0) {
      throw file.openError(
          "virtual size "
              + hex(virtualSize)
              + " exceeds the limit of 64 TiB or"
              + " is not a multiple of the logical sector size");
    }
    return new Metadata(blockSize, virtualSize, logicalSector);
  }

  /** A GUID in Microsoft's byte order: three little-endian fields, then eight bytes. */
  private static UUID guid(ByteBuffer b, int at) {
    long d1 = b.getInt(at) & 0xffffffffL;
    long d2 = b.getShort(at + 4) & 0xffffL;
    long d3 = b.getShort(at + 6) & 0xffffL;
    long hi = d1 << 32 | d2 << 16 | d3;
    long lo = Long.reverseBytes(b.getLong(at + 8));
    return new UUID(hi, lo);
  }

  private static boolean crcOk(ByteBuffer b, int field) {
    int stored = b.getInt(field);
    byte[] copy = new byte[b.limit()];
    b.get(0, copy);
    copy[field] = copy[field + 1] = copy[field + 2] = copy[field + 3] = 0;
    CRC32C crc = new CRC32C();
    crc.update(copy);
    return (int) crc.getValue() == stored;
  }

  @Override
  protected Run map(long offset, long length) throws IOException {
    long block = offset / blockSize;
    long inBlock = offset % blockSize;
    long entry = batEntry(block);
    int state = (int) (entry & 7);
    long n = blockSize - inBlock;
    if (state == STATE_FULLY_PRESENT) {
      long start = entry & BAT_OFFSET_MASK;
      for (long b = block + 1; n < length; b++) {
        long e = batEntry(b);
        if ((e & 7) != STATE_FULLY_PRESENT
            || (e & BAT_OFFSET_MASK) != start + (b - block) * blockSize) {
          break;
        }
        n += blockSize;
      }
      return new Run.Data(Math.min(n, length), file(), start + inBlock);
    }
    if (!isZero(state)) {
      throw file()
          .readError(
              "BAT entry of block "
                  + block
                  + " at offset "
                  + hex(batOffset + 8 * batIndex(block))
                  + " has state "
                  + state
                  + " (expected 0 to 3 or 6 in a dynamic or fixed vhdx)");
    }
    for (long b = block + 1; n < length && isZero((int) (batEntry(b) & 7)); b++) {
      n += blockSize;
    }
    return new Run.Zero(Math.min(n, length));
  }

  private static boolean isZero(int state) {
    return state == STATE_NOT_PRESENT
        || state == STATE_UNDEFINED
        || state == STATE_ZERO
        || state == STATE_UNMAPPED;
  }

  private long batIndex(long block) {
    return block + block / chunkRatio;
  }

  private long batEntry(long block) throws IOException {
    long index = batIndex(block);
    long page = index / BAT_PAGE_ENTRIES;
    long[] entries = batPages.get(page, this::loadBatPage);
    return entries[(int) (index % BAT_PAGE_ENTRIES)];
  }

  private long[] loadBatPage(long page) throws IOException {
    long first = page * BAT_PAGE_ENTRIES;
    int count = (int) Math.min(BAT_PAGE_ENTRIES, batEntries - first);
    ByteBuffer b =
        file().read("BAT", batOffset + 8 * first, count * 8, ByteOrder.LITTLE_ENDIAN, false);
    long[] out = new long[count];
    b.asLongBuffer().get(out);
    return out;
  }
}
