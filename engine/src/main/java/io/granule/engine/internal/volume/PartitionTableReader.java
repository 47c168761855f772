package io.granule.engine.internal.volume;

import io.granule.engine.spi.DiskImage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Finds the partitions of a disk: a GUID partition table, a DOS/MBR table, or none (the whole disk
 * is one volume).
 *
 * <p>A disk is GPT when its MBR holds a protective (type 0xee) entry or LBA 1 holds the GPT
 * signature; 512- and 4096-byte logical sectors are recognised. It is MBR when sector 0 holds a
 * plausible MBR that is not a FAT or NTFS boot sector. Anything else has no partition table.
 * Stateless and thread-safe; reads only the table's sectors.
 */
public final class PartitionTableReader {
  private PartitionTableReader() {}

  /**
   * Reads the partition table of {@code disk}.
   *
   * @throws IOException if the disk cannot be read, or it has a protective MBR but neither GPT
   *     header is usable; the message names the damaged structure and its offset
   */
  public static PartitionTable read(DiskImage disk) throws IOException {
    if (disk.size() < MbrReader.SECTOR) {
      return whole(disk);
    }
    ByteBuffer sector0 = Sectors.read(disk, 0, MbrReader.SECTOR, "mbr");
    boolean protective = false;
    if (MbrReader.hasSignature(sector0)) {
      for (int slot = 0; slot < 4; slot++) {
        if (MbrReader.entry(sector0, slot).type() == MbrReader.TYPE_GPT_PROTECTIVE) {
          protective = true;
        }
      }
    }
    for (int sectorSize : new int[] {512, 4096}) {
      if (GptReader.hasSignature(disk, sectorSize)) {
        return GptReader.read(disk, sectorSize);
      }
    }
    if (protective) {
      // The primary header is gone; the backup at the end of the disk may still be there.
      try {
        return GptReader.read(disk, MbrReader.SECTOR);
      } catch (IOException e) {
        try {
          return GptReader.read(disk, 4096);
        } catch (IOException ignored) {
          throw e;
        }
      }
    }
    if (MbrReader.looksLikeMbr(sector0)) {
      return MbrReader.read(disk, sector0);
    }
    return whole(disk);
  }

  private static PartitionTable whole(DiskImage disk) {
    List<Partition> parts =
        disk.size() == 0 ? List.of() : List.of(new Partition(0, 0, disk.size(), "", ""));
    return new PartitionTable(PartitionTable.Scheme.NONE, parts, List.of());
  }
}
