package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * Writes a dynamic VHDX image (no parent, 512-byte logical and 4096-byte physical sectors) in one
 * pass.
 *
 * <p>Layout, as qemu lays it out: the file identifier (0), headers 1 and 2 (64 KiB, 128 KiB),
 * region tables 1 and 2 (192 KiB, 256 KiB), an empty log (1 MiB, 1 MiB long, log GUID zero so there
 * is nothing to replay), the metadata region (2 MiB), the BAT (3 MiB, rounded up to whole MiB),
 * then payload blocks in guest order, each either fully present or not present. The BAT, metadata
 * and region tables are written by {@link #finish}, then the data is forced, and only then the two
 * headers and the file identifier: until then the file has no signature and is not a VHDX image.
 *
 * <p>Options: {@code block_size} (1M to 256M, default 1M: the smallest, so that a restore allocates
 * as little as it can).
 */
final class VhdxWriter extends SparseImageWriter {
  static final int DEFAULT_BLOCK_SIZE = 1 << 20;
  private static final long MIB = 1 << 20;
  private static final int LOGICAL_SECTOR = 512;
  private static final int PHYSICAL_SECTOR = 4096;
  private static final long LOG_OFFSET = MIB;
  private static final long METADATA_OFFSET = 2 * MIB;
  private static final long BAT_OFFSET = 3 * MIB;
  private static final long STATE_FULLY_PRESENT = 6;

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

  private final long chunkRatio;
  private final long[] bat;
  private final long batLength;
  private long next;

  private VhdxWriter(Path path, long virtualSize, int blockSize) throws IOException {
    super(path, virtualSize, blockSize);
    chunkRatio = (1L << 23) * LOGICAL_SECTOR / blockSize;
    long dataBlocks = Math.max(1, (virtualSize + blockSize - 1) / blockSize);
    long entries = dataBlocks + (dataBlocks - 1) / chunkRatio;
    if (entries > Integer.MAX_VALUE / 8) {
      throw new IllegalArgumentException(
          "a VHDX image with "
              + blockSize
              + "-byte blocks cannot hold "
              + virtualSize
              + " bytes; use larger blocks");
    }
    bat = new long[(int) entries];
    batLength = (entries * 8 + MIB - 1) / MIB * MIB;
    next = BAT_OFFSET + batLength;
  }

  /** Creates {@code path} for a disk of {@code virtualSize} bytes, a multiple of 512. */
  static VhdxWriter create(Path path, long virtualSize, Map<String, String> options)
      throws IOException {
    checkOptions("vhdx", options, Set.of("block_size"));
    int bs = sizeOption("vhdx", options, "block_size", DEFAULT_BLOCK_SIZE, 1 << 20, 256 << 20);
    if (virtualSize % LOGICAL_SECTOR != 0 || virtualSize > 64L << 40) {
      throw new IllegalArgumentException(
          "a VHDX image holds a whole number of 512-byte sectors up to 64 TiB; the disk has "
              + virtualSize
              + " bytes: restore it as raw"
              + (virtualSize % LOGICAL_SECTOR == 0 ? " or qcow2" : ""));
    }
    return new VhdxWriter(path, virtualSize, bs);
  }

  @Override
  void writeCluster(long index, ByteBuffer data) throws IOException {
    writeData("payload block", data, next);
    bat[(int) (index + index / chunkRatio)] = next | STATE_FULLY_PRESENT;
    next += clusterSize();
  }

  @Override
  void finishImage() throws IOException {
    ByteBuffer b = ByteBuffer.allocate((int) batLength).order(ByteOrder.LITTLE_ENDIAN);
    for (long e : bat) {
      b.putLong(e);
    }
    writeAt("BAT", b.clear(), BAT_OFFSET);
    writeAt("metadata region", metadata(), METADATA_OFFSET);
    ByteBuffer regions = regionTable();
    writeAt("region table 1", regions.duplicate(), 192 << 10);
    writeAt("region table 2", regions, 256 << 10);
    force("data and tables");
    UUID fileWrite = UUID.randomUUID();
    UUID dataWrite = UUID.randomUUID();
    writeAt("header 1", header(1, fileWrite, dataWrite), 64 << 10);
    writeAt("header 2", header(2, fileWrite, dataWrite), 128 << 10);
    ByteBuffer id = ByteBuffer.allocate(64 << 10);
    id.put("vhdxfile".getBytes(StandardCharsets.US_ASCII));
    id.put("granule".getBytes(StandardCharsets.UTF_16LE));
    writeAt("file identifier", id.clear(), 0);
    force("headers");
  }

  private ByteBuffer metadata() {
    ByteBuffer m = ByteBuffer.allocate((int) MIB).order(ByteOrder.LITTLE_ENDIAN);
    m.put("metadata".getBytes(StandardCharsets.US_ASCII));
    m.putShort(10, (short) 5);
    int item = 64 << 10;
    int required = 4;
    int virtualDisk = 2;
    entry(m, 0, FILE_PARAMETERS, item, 8, required);
    m.putInt(item, clusterSize());
    m.putInt(item + 4, 0);
    entry(m, 1, VIRTUAL_DISK_SIZE, item + 8, 8, virtualDisk | required);
    m.putLong(item + 8, virtualSize());
    entry(m, 2, PAGE_83, item + 16, 16, virtualDisk | required);
    putGuid(m, item + 16, UUID.randomUUID());
    entry(m, 3, LOGICAL_SECTOR_SIZE, item + 32, 4, virtualDisk | required);
    m.putInt(item + 32, LOGICAL_SECTOR);
    entry(m, 4, PHYSICAL_SECTOR_SIZE, item + 36, 4, virtualDisk | required);
    m.putInt(item + 36, PHYSICAL_SECTOR);
    return m.clear();
  }

  private static void entry(ByteBuffer m, int i, UUID id, int offset, int length, int flags) {
    int at = 32 + 32 * i;
    putGuid(m, at, id);
    m.putInt(at + 16, offset);
    m.putInt(at + 20, length);
    m.putInt(at + 24, flags);
  }

  private ByteBuffer regionTable() {
    ByteBuffer r = ByteBuffer.allocate(64 << 10).order(ByteOrder.LITTLE_ENDIAN);
    r.putInt(0, 0x69676572); // "regi"
    r.putInt(8, 2);
    putGuid(r, 16, BAT_REGION);
    r.putLong(32, BAT_OFFSET);
    r.putInt(40, (int) batLength);
    r.putInt(44, 1);
    putGuid(r, 48, METADATA_REGION);
    r.putLong(64, METADATA_OFFSET);
    r.putInt(72, (int) MIB);
    r.putInt(76, 1);
    r.putInt(4, crc(r));
    return r.clear();
  }

  private static ByteBuffer header(long sequence, UUID fileWrite, UUID dataWrite) {
    ByteBuffer h = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
    h.putInt(0, 0x64616568); // "head"
    h.putLong(8, sequence);
    putGuid(h, 16, fileWrite);
    putGuid(h, 32, dataWrite);
    // 48..63: log GUID zero, the log is empty.
    h.putShort(64, (short) 0);
    h.putShort(66, (short) 1);
    h.putInt(68, (int) MIB);
    h.putLong(72, LOG_OFFSET);
    h.putInt(4, crc(h));
    return h.clear();
  }

  private static int crc(ByteBuffer b) {
    CRC32C c = new CRC32C();
    c.update(b.duplicate().clear());
    return (int) c.getValue();
  }

  /** A GUID in Microsoft's byte order: three little-endian fields, then eight bytes. */
  private static void putGuid(ByteBuffer b, int at, UUID id) {
    long hi = id.getMostSignificantBits();
    b.putInt(at, (int) (hi >>> 32));
    b.putShort(at + 4, (short) (hi >>> 16));
    b.putShort(at + 6, (short) hi);
    b.putLong(at + 8, Long.reverseBytes(id.getLeastSignificantBits()));
  }
}
