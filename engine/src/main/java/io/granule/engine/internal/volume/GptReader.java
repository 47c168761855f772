package io.granule.engine.internal.volume;

import static io.granule.engine.internal.volume.Sectors.hex;
import static io.granule.engine.internal.volume.Sectors.u32;

import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.zip.CRC32;

/**
 * Reads a GUID partition table: the primary header at LBA 1 and its entry array, checked by their
 * CRC32s; when either is damaged, the backup header at the last LBA and its own entry array.
 * Falling back is reported as a warning, as is a damaged backup behind an intact primary.
 *
 * <p>The entry array is bounded ({@link #MAX_ENTRY_BYTES}); entries outside the usable LBA range
 * are skipped with a warning.
 */
final class GptReader {
  static final long SIGNATURE = 0x5452415020494645L; // "EFI PART", little-endian
  static final int MAX_ENTRY_BYTES = 4 << 20;

  private GptReader() {}

  /** A header that passed its checks. */
  record Header(
      long myLba,
      long alternateLba,
      long firstUsable,
      long lastUsable,
      long entriesLba,
      int entryCount,
      int entrySize,
      long entriesCrc) {}

  /** Whether the sector at LBA 1 starts with the GPT signature. */
  static boolean hasSignature(DiskImage disk, int sectorSize) throws IOException {
    if (disk.size() < 2L * sectorSize) {
      return false;
    }
    ByteBuffer b = Sectors.read(disk, sectorSize, 8, "gpt header");
    return b.getLong(0) == SIGNATURE;
  }

  static PartitionTable read(DiskImage disk, int sectorSize) throws IOException {
    long lastLba = disk.size() / sectorSize - 1;
    List<String> warnings = new ArrayList<>();
    String primaryProblem;
    try {
      Header primary = header(disk, sectorSize, 1, lastLba);
      ByteBuffer entries = entries(disk, sectorSize, primary, "primary");
      try {
        Header backup = header(disk, sectorSize, lastLba, lastLba);
        entries(disk, sectorSize, backup, "backup");
      } catch (IOException e) {
        warnings.add(e.getMessage() + "; the primary header is intact and used");
      }
      return table(primary, entries, sectorSize, lastLba, warnings);
    } catch (IOException e) {
      primaryProblem = e.getMessage();
    }
    Header backup;
    ByteBuffer entries;
    try {
      backup = header(disk, sectorSize, lastLba, lastLba);
      entries = entries(disk, sectorSize, backup, "backup");
    } catch (IOException e) {
      throw new IOException(
          primaryProblem + "; " + e.getMessage() + "; no usable gpt header: the table is lost", e);
    }
    warnings.add(
        primaryProblem + "; using the backup header at offset " + hex(lastLba * sectorSize));
    return table(backup, entries, sectorSize, lastLba, warnings);
  }

  private static Header header(DiskImage disk, int sectorSize, long lba, long lastLba)
      throws IOException {
    String which = lba == 1 ? "primary" : "backup";
    long offset = lba * sectorSize;
    String where = "gpt: " + which + " header at offset " + hex(offset);
    ByteBuffer b = Sectors.read(disk, offset, sectorSize, where);
    if (b.getLong(0) != SIGNATURE) {
      throw new IOException(
          where
              + " is damaged: signature "
              + hex(b.getLong(0))
              + " (expected "
              + hex(SIGNATURE)
              + ")");
    }
    long headerSize = u32(b, 12);
    if (headerSize < 92 || headerSize > sectorSize) {
      throw new IOException(
          where
              + " is damaged: header size "
              + headerSize
              + " (expected 92 to "
              + sectorSize
              + ")");
    }
    long stored = u32(b, 16);
    b.putInt(16, 0);
    CRC32 crc = new CRC32();
    crc.update(b.array(), 0, (int) headerSize);
    if (crc.getValue() != stored) {
      throw new IOException(
          where
              + " is damaged: header crc32 "
              + hex(crc.getValue())
              + " (stored "
              + hex(stored)
              + ")");
    }
    long myLba = b.getLong(24);
    if (myLba != lba) {
      throw new IOException(where + " is damaged: it says it is at lba " + myLba);
    }
    long firstUsable = b.getLong(40);
    long lastUsable = b.getLong(48);
    if (firstUsable < 2 || lastUsable < firstUsable || lastUsable > lastLba) {
      throw new IOException(
          where
              + " is damaged: usable lbas ["
              + firstUsable
              + ", "
              + lastUsable
              + "] do not fit a disk whose last lba is "
              + lastLba);
    }
    long entriesLba = b.getLong(72);
    long count = u32(b, 80);
    long size = u32(b, 84);
    if (size < 128 || size % 8 != 0 || count * size > MAX_ENTRY_BYTES) {
      throw new IOException(
          where
              + " is damaged: "
              + count
              + " entries of "
              + size
              + " bytes (expected entries of at least 128 bytes, at most "
              + MAX_ENTRY_BYTES
              + " bytes in all)");
    }
    if (entriesLba < 2
        || entriesLba > lastLba
        || count * size > (lastLba + 1 - entriesLba) * sectorSize) {
      throw new IOException(
          where + " is damaged: entry array at lba " + entriesLba + " is outside the disk");
    }
    return new Header(
        myLba,
        b.getLong(32),
        firstUsable,
        lastUsable,
        entriesLba,
        (int) count,
        (int) size,
        u32(b, 88));
  }

  private static ByteBuffer entries(DiskImage disk, int sectorSize, Header h, String which)
      throws IOException {
    long offset = h.entriesLba() * sectorSize;
    String where = "gpt: " + which + " entry array at offset " + hex(offset);
    ByteBuffer b = Sectors.read(disk, offset, h.entryCount() * h.entrySize(), where);
    CRC32 crc = new CRC32();
    crc.update(b.array(), 0, b.limit());
    if (crc.getValue() != h.entriesCrc()) {
      throw new IOException(
          where
              + " is damaged: crc32 "
              + hex(crc.getValue())
              + " (header says "
              + hex(h.entriesCrc())
              + ")");
    }
    return b;
  }

  private static PartitionTable table(
      Header h, ByteBuffer entries, int sectorSize, long lastLba, List<String> warnings) {
    List<Partition> partitions = new ArrayList<>();
    for (int i = 0; i < h.entryCount(); i++) {
      int at = i * h.entrySize();
      long typeLo = entries.getLong(at);
      long typeHi = entries.getLong(at + 8);
      if (typeLo == 0 && typeHi == 0) {
        continue;
      }
      long first = entries.getLong(at + 32);
      long last = entries.getLong(at + 40);
      if (first < h.firstUsable() || last < first || last > h.lastUsable()) {
        warnings.add(
            String.format(
                Locale.ROOT,
                "gpt: entry %d covers lbas [%d, %d], outside the usable lbas [%d, %d]; skipped",
                i + 1,
                first,
                last,
                h.firstUsable(),
                h.lastUsable()));
        continue;
      }
      byte[] name = new byte[72];
      entries.get(at + 56, name);
      int len = 0;
      while (len + 1 < name.length && (name[len] != 0 || name[len + 1] != 0)) {
        len += 2;
      }
      partitions.add(
          new Partition(
              i + 1,
              first * sectorSize,
              (last - first + 1) * sectorSize,
              guid(entries, at),
              new String(name, 0, len, StandardCharsets.UTF_16LE)));
    }
    return new PartitionTable(PartitionTable.Scheme.GPT, partitions, warnings);
  }

  /** The GUID at {@code at} in its usual text form (the first three fields are little-endian). */
  static String guid(ByteBuffer b, int at) {
    return String.format(
        Locale.ROOT,
        "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
        b.getInt(at),
        b.getShort(at + 4),
        b.getShort(at + 6),
        b.get(at + 8),
        b.get(at + 9),
        b.get(at + 10),
        b.get(at + 11),
        b.get(at + 12),
        b.get(at + 13),
        b.get(at + 14),
        b.get(at + 15));
  }
}
