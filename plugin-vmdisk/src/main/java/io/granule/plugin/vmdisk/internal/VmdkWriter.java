package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Writes a monolithicSparse VMDK image (hosted sparse extent version 1, 64 KiB grains, 512 entries
 * per grain table, embedded descriptor, no redundant grain directory) in one pass.
 *
 * <p>Layout, in 512-byte sectors: the sparse header (0), the descriptor (1, 20 sectors), the grain
 * directory, every grain table (all preallocated, as VMware lays them out), padding to a grain
 * boundary, then grains in guest order. Each grain table is written as soon as its 32 MiB range is
 * passed; the grain directory by {@link #finish}, then the data is forced, and only then the header
 * with its magic number: until then sector 0 is zeros and the file is not a VMDK image.
 *
 * <p>Grain offsets are 32-bit sector numbers, so the file is limited to 2 TiB. No options.
 */
final class VmdkWriter extends SparseImageWriter {
  private static final int SECTOR = 512;
  private static final int GRAIN_SECTORS = 128;
  private static final int GT_ENTRIES = 512;
  private static final long DESCRIPTOR_SECTOR = 1;
  private static final long DESCRIPTOR_SECTORS = 20;
  private static final long GD_SECTOR = DESCRIPTOR_SECTOR + DESCRIPTOR_SECTORS;

  private final long capacity;
  private final int tables;
  private final long gtSector;
  private final long overhead;
  private final String fileName;
  private final ByteBuffer gt;
  private long gtIndex = -1;
  private long nextSector;

  private VmdkWriter(Path path, long virtualSize, String fileName) throws IOException {
    super(path, virtualSize, GRAIN_SECTORS * SECTOR);
    this.fileName = fileName;
    capacity = virtualSize / SECTOR;
    tables =
        (int) ((capacity + (long) GT_ENTRIES * GRAIN_SECTORS - 1) / (GT_ENTRIES * GRAIN_SECTORS));
    long gdSectors = ((long) tables * 4 + SECTOR - 1) / SECTOR;
    gtSector = GD_SECTOR + gdSectors;
    long end = gtSector + (long) tables * (GT_ENTRIES * 4 / SECTOR);
    overhead = (end + GRAIN_SECTORS - 1) / GRAIN_SECTORS * GRAIN_SECTORS;
    nextSector = overhead;
    gt = ByteBuffer.allocate(GT_ENTRIES * 4).order(ByteOrder.LITTLE_ENDIAN);
  }

  /** Creates {@code path} for a disk of {@code virtualSize} bytes, a multiple of 512. */
  static VmdkWriter create(Path path, long virtualSize, Map<String, String> options)
      throws IOException {
    checkOptions("vmdk", options, Set.of());
    if (virtualSize % SECTOR != 0 || virtualSize > (2L << 40) - (64L << 20)) {
      throw new IllegalArgumentException(
          "a monolithicSparse VMDK image holds a whole number of 512-byte sectors up to about 2"
              + " TiB; the disk has "
              + virtualSize
              + " bytes: restore it as raw"
              + (virtualSize % SECTOR == 0 ? " or qcow2" : ""));
    }
    String name = options.getOrDefault(OPTION_FILE_NAME, path.getFileName().toString());
    if (name.contains("\"") || name.contains("\n") || name.contains("\r")) {
      throw new IllegalArgumentException(
          "vmdk file name '" + name + "' contains a quote or a line break");
    }
    return new VmdkWriter(path, virtualSize, name);
  }

  @Override
  void writeCluster(long index, ByteBuffer data) throws IOException {
    long table = index / GT_ENTRIES;
    if (table != gtIndex) {
      flushTable();
      gtIndex = table;
    }
    if (nextSector + GRAIN_SECTORS > 0xffffffffL) {
      throw new IOException(
          "unable to write disk image '" + path() + "': the file would exceed 2 TiB");
    }
    writeData("grain", data, nextSector * SECTOR);
    gt.putInt((int) (index % GT_ENTRIES) * 4, (int) nextSector);
    nextSector += GRAIN_SECTORS;
  }

  private void flushTable() throws IOException {
    if (gtIndex < 0) {
      return;
    }
    writeAt("grain table", gt.clear(), tableSector(gtIndex) * SECTOR);
    gt.clear();
    while (gt.hasRemaining()) {
      gt.putInt(0);
    }
    gtIndex = -1;
  }

  private long tableSector(long table) {
    return gtSector + table * (GT_ENTRIES * 4 / SECTOR);
  }

  @Override
  void finishImage() throws IOException {
    flushTable();
    ByteBuffer gd = ByteBuffer.allocate(tables * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int t = 0; t < tables; t++) {
      gd.putInt((int) tableSector(t));
    }
    writeAt("grain directory", gd.flip(), GD_SECTOR * SECTOR);
    writeAt("descriptor", descriptor(), DESCRIPTOR_SECTOR * SECTOR);
    if (nextSector == overhead) {
      // No grain: give the file its full metadata length so that readers find every table.
      writeAt("padding", ByteBuffer.allocate(1), overhead * SECTOR - 1);
    }
    force("data and tables");
    ByteBuffer h = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
    h.putInt(0, 0x564d444b); // "KDMV"
    h.putInt(4, 1);
    h.putInt(8, 1); // valid newline detection
    h.putLong(12, capacity);
    h.putLong(20, GRAIN_SECTORS);
    h.putLong(28, DESCRIPTOR_SECTOR);
    h.putLong(36, DESCRIPTOR_SECTORS);
    h.putInt(44, GT_ENTRIES);
    h.putLong(48, 0);
    h.putLong(56, GD_SECTOR);
    h.putLong(64, overhead);
    h.put(72, (byte) 0);
    h.put(73, (byte) '\n');
    h.put(74, (byte) ' ');
    h.put(75, (byte) '\r');
    h.put(76, (byte) '\n');
    writeAt("header", h, 0);
    force("header");
  }

  private ByteBuffer descriptor() {
    long cylinders = Math.min(capacity / (16 * 63), 16383);
    int cid = new SecureRandom().nextInt() & 0x7fffffff;
    String text =
        String.format(
            Locale.ROOT,
            "# Disk DescriptorFile\n"
                + "version=1\n"
                + "CID=%08x\n"
                + "parentCID=ffffffff\n"
                + "createType=\"monolithicSparse\"\n"
                + "\n"
                + "# Extent description\n"
                + "RW %d SPARSE \"%s\"\n"
                + "\n"
                + "# The Disk Data Base\n"
                + "#DDB\n"
                + "\n"
                + "ddb.virtualHWVersion = \"4\"\n"
                + "ddb.geometry.cylinders = \"%d\"\n"
                + "ddb.geometry.heads = \"16\"\n"
                + "ddb.geometry.sectors = \"63\"\n"
                + "ddb.adapterType = \"ide\"\n",
            cid,
            capacity,
            fileName,
            cylinders);
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate((int) (DESCRIPTOR_SECTORS * SECTOR));
    if (bytes.length > b.capacity()) {
      throw new IllegalArgumentException("vmdk file name '" + fileName + "' is too long");
    }
    return b.put(bytes).clear();
  }
}
