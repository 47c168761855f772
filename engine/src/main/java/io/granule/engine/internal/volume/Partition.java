package io.granule.engine.internal.volume;

import java.util.Objects;

/**
 * One partition of a disk, or the whole disk when it has no partition table.
 *
 * @param number the number the partition table gives it: 1 to 4 for MBR primary partitions, 5 and
 *     up for MBR logical partitions in chain order, the entry index plus one for GPT; 0 for the
 *     whole disk
 * @param offset first byte on the disk
 * @param length bytes, at least 1
 * @param type the partition type: {@code 0x83} style for MBR, the lowercase type GUID for GPT,
 *     empty for the whole disk
 * @param label the GPT partition name, empty when there is none
 */
public record Partition(int number, long offset, long length, String type, String label) {
  /** The name of the whole-disk volume of a disk without a partition table. */
  public static final String WHOLE_DISK = "whole";

  public Partition {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(label, "label");
    if (number < 0 || offset < 0 || length <= 0) {
      throw new IllegalArgumentException(
          "invalid partition " + number + ": offset=" + offset + " length=" + length);
    }
  }

  /** {@code p1}, {@code p2}, … as the partition table numbers it, {@code whole} for number 0. */
  public String name() {
    return number == 0 ? WHOLE_DISK : "p" + number;
  }

  /** The first byte after the partition. */
  public long end() {
    return offset + length;
  }
}
