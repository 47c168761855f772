package io.granule.engine.internal.repo.backup;

import io.granule.engine.spi.DiskImage;
import java.util.List;

/**
 * What to back up.
 *
 * @param disks the disks, each with a name unique in the request; the caller opens and closes them
 * @param host the host name recorded in the snapshot
 * @param tags user tags
 * @param parent id of the snapshot this one is based on, or null
 */
public record BackupRequest(List<NamedDisk> disks, String host, List<String> tags, String parent) {

  public BackupRequest {
    disks = List.copyOf(disks);
    tags = tags == null ? List.of() : List.copyOf(tags);
    if (disks.isEmpty()) {
      throw new IllegalArgumentException("nothing to back up: give at least one disk");
    }
    if (disks.stream().map(NamedDisk::name).distinct().count() != disks.size()) {
      throw new IllegalArgumentException("disk names must be unique in one backup: " + disks);
    }
  }

  /** A disk and the name it gets in the snapshot. */
  public record NamedDisk(String name, DiskImage image) {}
}
