package io.granule.engine.internal.repo.backup;

import io.granule.engine.spi.DiskImage;
import java.io.InputStream;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * What to back up.
 *
 * @param disks the disks (fixed-size chunks); the caller opens and closes them
 * @param streams the streams (content-defined chunks); the caller opens and closes them
 * @param host the host name recorded in the snapshot
 * @param tags user tags
 * @param parent id of the snapshot this one is based on, or null
 * @param afterDisks run once the disks are read, before the streams, or null: ends what held the
 *     sources consistent and hands back more streams and the application metadata to record
 */
public record BackupRequest(
    List<NamedDisk> disks,
    List<NamedStream> streams,
    String host,
    List<String> tags,
    String parent,
    AfterDisks afterDisks) {

  public BackupRequest {
    disks = disks == null ? List.of() : List.copyOf(disks);
    streams = streams == null ? List.of() : List.copyOf(streams);
    tags = tags == null ? List.of() : List.copyOf(tags);
    if (disks.isEmpty() && streams.isEmpty()) {
      throw new IllegalArgumentException("nothing to back up: give at least one disk or stream");
    }
    List<String> names =
        Stream.concat(disks.stream().map(NamedDisk::name), streams.stream().map(NamedStream::name))
            .toList();
    if (names.stream().distinct().count() != names.size()) {
      throw new IllegalArgumentException(
          "disk and stream names must be unique in one backup: " + names);
    }
  }

  /** A backup without an after-disks step. */
  public BackupRequest(
      List<NamedDisk> disks,
      List<NamedStream> streams,
      String host,
      List<String> tags,
      String parent) {
    this(disks, streams, host, tags, parent, null);
  }

  /** A backup of disks only. */
  public BackupRequest(List<NamedDisk> disks, String host, List<String> tags, String parent) {
    this(disks, List.of(), host, tags, parent);
  }

  /** A stream and the name it gets in the snapshot; read to its end, not closed. */
  public record NamedStream(String name, InputStream stream) {}

  /**
   * A disk and the name it gets in the snapshot.
   *
   * @param changes what changed since a parent snapshot of this disk (changed-block tracking), or
   *     null to read the whole disk
   * @param tracking the change-tracking bitmap to record for the next backup, or null
   * @param untracked why change tracking was asked for and this disk could not be tracked (it is
   *     read in full and no bitmap is recorded), or null
   */
  public record NamedDisk(
      String name, DiskImage image, Changes changes, String tracking, String untracked) {
    public NamedDisk(String name, DiskImage image) {
      this(name, image, null, null, null);
    }

    public NamedDisk(String name, DiskImage image, Changes changes, String tracking) {
      this(name, image, changes, tracking, null);
    }

    /** The same disk read through {@code other}. */
    public NamedDisk withImage(DiskImage other) {
      return new NamedDisk(name, other, changes, tracking, untracked);
    }
  }

  /**
   * Changed-block tracking for one disk: only the chunks that overlap {@code changed} are read; the
   * others keep the parent's chunk ids.
   *
   * @param parentSnapshot the parent snapshot's id
   * @param parent the parent's fixed index of this disk (same size and chunk size), which the
   *     backup closes when it ends
   * @param changed the ranges written since the parent was read, sorted, not overlapping
   * @param source where the ranges come from, for people, e.g. {@code qcow2 bitmap granule-1a2b}
   */
  public record Changes(
      String parentSnapshot,
      io.granule.engine.internal.repo.snapshot.FixedIndex parent,
      List<io.granule.engine.spi.Extent> changed,
      String source) {
    public Changes {
      changed = List.copyOf(changed);
    }
  }

  /**
   * The step between reading the disks and reading the streams: the backup's consistency point has
   * passed (every disk byte is read), so holds end here, and what they captured joins the backup.
   */
  @FunctionalInterface
  public interface AfterDisks {
    /** Throws a runtime exception, which the backup passes on, to fail it (nothing is recorded). */
    Extras run();
  }

  /**
   * What {@link AfterDisks} adds.
   *
   * @param streams more streams, read to their end, not closed by the backup
   * @param applications the manifest's application metadata
   */
  public record Extras(List<NamedStream> streams, Map<String, Object> applications) {
    public Extras {
      streams = List.copyOf(streams);
      applications = Map.copyOf(applications);
    }
  }
}
