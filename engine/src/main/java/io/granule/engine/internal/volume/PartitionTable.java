package io.granule.engine.internal.volume;

import io.granule.engine.spi.DiskImage;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Objects;

/**
 * The partitions of a disk as {@link PartitionTableReader} found them.
 *
 * @param scheme the kind of partition table
 * @param partitions the partitions in number order; for {@link Scheme#NONE} one partition, number
 *     0, covering the whole disk
 * @param warnings what the reader recovered from, e.g. a damaged primary GPT header replaced by the
 *     backup; empty when the table is intact
 */
public record PartitionTable(Scheme scheme, List<Partition> partitions, List<String> warnings) {
  /** The kinds of partition table. */
  public enum Scheme {
    /** A DOS/MBR table, with logical partitions in an extended partition. */
    MBR,
    /** A GUID partition table. */
    GPT,
    /** No partition table: the whole disk is one volume. */
    NONE
  }

  public PartitionTable {
    Objects.requireNonNull(scheme, "scheme");
    partitions = List.copyOf(partitions);
    warnings = List.copyOf(warnings);
  }

  /**
   * The partition named {@code name} ({@code p1}, … or {@code whole}).
   *
   * @throws NoSuchElementException if there is none; the message lists the names there are
   */
  public Partition partition(String name) {
    for (Partition p : partitions) {
      if (p.name().equals(name)) {
        return p;
      }
    }
    throw new NoSuchElementException(
        "no partition '"
            + name
            + "' (partitions: "
            + String.join(", ", partitions.stream().map(Partition::name).toList())
            + ")");
  }

  /** A view of {@code partition} on {@code disk}, read like a disk of its own. */
  public static Volume volume(DiskImage disk, Partition partition) {
    return new Volume(disk, partition.name(), partition.offset(), partition.length());
  }
}
