package io.granule.engine.internal.volume;

import static io.granule.engine.internal.volume.Sectors.hex;
import static io.granule.engine.internal.volume.Sectors.u32;

import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Reads a DOS/MBR partition table with 512-byte sectors: four primary entries and the chain of
 * extended boot records (EBRs) holding the logical partitions.
 *
 * <p>Primary partitions keep their slot number (1–4), logical partitions are numbered from 5 in
 * chain order. The extended partition itself is a container and is not listed. The EBR chain is
 * bounded: each EBR must lie inside the extended partition, none may be visited twice, and at most
 * {@link #MAX_LOGICAL} are followed.
 */
final class MbrReader {
  static final int SECTOR = 512;
  static final int MAX_LOGICAL = 256;
  static final int TYPE_GPT_PROTECTIVE = 0xee;

  private MbrReader() {}

  /** A raw partition entry: start and count in sectors. */
  record Entry(int status, int type, long start, long count) {
    boolean isEmpty() {
      return type == 0;
    }

    boolean isExtended() {
      return type == 0x05 || type == 0x0f || type == 0x85;
    }
  }

  static boolean hasSignature(ByteBuffer sector0) {
    return sector0.limit() >= SECTOR
        && (sector0.get(510) & 0xff) == 0x55
        && (sector0.get(511) & 0xff) == 0xaa;
  }

  static Entry entry(ByteBuffer sector, int slot) {
    int at = 446 + 16 * slot;
    return new Entry(
        sector.get(at) & 0xff,
        sector.get(at + 4) & 0xff,
        u32(sector, at + 8),
        u32(sector, at + 12));
  }

  /**
   * Whether sector 0 holds a plausible MBR: the boot signature, status bytes 0x00 or 0x80,
   * non-empty entries with a start and a length, and not the boot sector of a FAT or NTFS
   * filesystem (which also ends in the boot signature).
   */
  static boolean looksLikeMbr(ByteBuffer sector0) {
    if (!hasSignature(sector0)) {
      return false;
    }
    byte[] oem = new byte[8];
    sector0.get(3, oem);
    String oemId = new String(oem, StandardCharsets.US_ASCII);
    byte[] fat = new byte[5];
    sector0.get(0x52, fat);
    byte[] fat16 = new byte[3];
    sector0.get(0x36, fat16);
    if (oemId.equals("NTFS    ")
        || new String(fat, StandardCharsets.US_ASCII).equals("FAT32")
        || new String(fat16, StandardCharsets.US_ASCII).equals("FAT")) {
      return false;
    }
    for (int slot = 0; slot < 4; slot++) {
      Entry e = entry(sector0, slot);
      if (e.status() != 0 && e.status() != 0x80) {
        return false;
      }
      if (!e.isEmpty() && (e.start() == 0 || e.count() == 0)) {
        return false;
      }
    }
    return true;
  }

  static PartitionTable read(DiskImage disk, ByteBuffer sector0) throws IOException {
    long diskSectors = disk.size() / SECTOR;
    List<Partition> partitions = new ArrayList<>();
    List<String> warnings = new ArrayList<>();
    List<Entry> extended = new ArrayList<>();
    for (int slot = 0; slot < 4; slot++) {
      Entry e = entry(sector0, slot);
      if (e.isEmpty()) {
        continue;
      }
      if (e.isExtended()) {
        extended.add(e);
        continue;
      }
      add(partitions, warnings, slot + 1, e.start(), e.count(), e.type(), diskSectors, "mbr");
    }
    int next = 5;
    for (Entry ext : extended) {
      next = readLogical(disk, ext, diskSectors, next, partitions, warnings);
    }
    return new PartitionTable(PartitionTable.Scheme.MBR, partitions, warnings);
  }

  private static int readLogical(
      DiskImage disk,
      Entry ext,
      long diskSectors,
      int number,
      List<Partition> partitions,
      List<String> warnings)
      throws IOException {
    long extStart = ext.start();
    long extEnd = Math.min(ext.start() + ext.count(), diskSectors);
    Set<Long> visited = new HashSet<>();
    long ebr = extStart;
    while (true) {
      if (ebr < extStart || ebr >= extEnd) {
        warnings.add(
            String.format(
                Locale.ROOT,
                "mbr: ebr at sector %d is outside the extended partition [%d, %d); chain ends",
                ebr,
                extStart,
                extEnd));
        return number;
      }
      if (!visited.add(ebr)) {
        warnings.add(
            String.format(Locale.ROOT, "mbr: ebr chain loops back to sector %d; chain ends", ebr));
        return number;
      }
      if (visited.size() > MAX_LOGICAL) {
        warnings.add("mbr: more than " + MAX_LOGICAL + " logical partitions; chain ends");
        return number;
      }
      ByteBuffer sector = Sectors.read(disk, ebr * SECTOR, SECTOR, "mbr: ebr");
      if (!hasSignature(sector)) {
        warnings.add(
            String.format(
                Locale.ROOT,
                "mbr: ebr at offset %s has no boot signature 0x55aa; chain ends",
                hex(ebr * SECTOR)));
        return number;
      }
      Entry logical = entry(sector, 0);
      if (!logical.isEmpty()) {
        long start = ebr + logical.start();
        if (logical.start() == 0 || start + logical.count() > extEnd) {
          warnings.add(
              String.format(
                  Locale.ROOT,
                  "mbr: logical partition %d [%d, +%d) is outside the extended partition; skipped",
                  number,
                  start,
                  logical.count()));
        } else {
          add(
              partitions,
              warnings,
              number,
              start,
              logical.count(),
              logical.type(),
              diskSectors,
              "mbr");
        }
        number++;
      }
      Entry link = entry(sector, 1);
      if (link.isEmpty() || link.start() == 0) {
        return number;
      }
      ebr = extStart + link.start();
    }
  }

  private static void add(
      List<Partition> partitions,
      List<String> warnings,
      int number,
      long start,
      long count,
      int type,
      long diskSectors,
      String scheme) {
    if (count == 0) {
      return;
    }
    if (start >= diskSectors) {
      warnings.add(
          String.format(
              Locale.ROOT,
              "%s: partition %d starts at sector %d, past the end of the disk (%d sectors);"
                  + " skipped",
              scheme,
              number,
              start,
              diskSectors));
      return;
    }
    if (start + count > diskSectors) {
      warnings.add(
          String.format(
              Locale.ROOT,
              "%s: partition %d ends at sector %d, past the end of the disk (%d sectors);"
                  + " truncated",
              scheme,
              number,
              start + count,
              diskSectors));
      count = diskSectors - start;
    }
    partitions.add(
        new Partition(
            number,
            start * SECTOR,
            count * SECTOR,
            String.format(Locale.ROOT, "0x%02x", type),
            ""));
  }
}
