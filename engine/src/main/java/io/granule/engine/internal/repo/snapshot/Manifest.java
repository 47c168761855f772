package io.granule.engine.internal.repo.snapshot;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonInclude;
import io.granule.engine.internal.repo.SnapshotId;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/**
 * The manifest of a snapshot (a recovery point), stored as JSON. Written last by a backup: a
 * manifest exists only when everything it references is durable.
 *
 * @param version manifest format version ({@link ManifestWriter#VERSION})
 * @param id the snapshot id (64 hex digits), also the blob name
 * @param time when the backup started, ISO-8601 UTC
 * @param host the host the data came from
 * @param tags user tags, possibly empty
 * @param parent id of the snapshot this one was based on, or null
 * @param disks one entry per disk, in backup order
 * @param streams one entry per stream (content-defined chunks), possibly empty
 * @param applications free-form metadata and catalogs added by application plugins, by plugin name
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record Manifest(
    int version,
    String id,
    String time,
    String host,
    List<String> tags,
    String parent,
    List<DiskEntry> disks,
    List<StreamEntry> streams,
    Map<String, Object> applications) {

  public Manifest {
    tags = tags == null ? List.of() : List.copyOf(tags);
    disks = disks == null ? List.of() : List.copyOf(disks);
    streams = streams == null ? List.of() : List.copyOf(streams);
    applications = applications == null ? Map.of() : Map.copyOf(applications);
  }

  /** The typed id. */
  @JsonIgnore
  public SnapshotId snapshotId() {
    return new SnapshotId(id);
  }

  /** {@link #time} parsed. */
  @JsonIgnore
  public Instant instant() {
    return Instant.parse(time);
  }

  /** The disk entry named {@code name}, or null. */
  public DiskEntry disk(String name) {
    return disks.stream().filter(d -> d.name().equals(name)).findFirst().orElse(null);
  }

  /**
   * One disk of a snapshot.
   *
   * @param name the disk name, unique in the snapshot
   * @param size virtual size in bytes
   * @param chunkSize fixed chunk size
   * @param format the image format it was read from, e.g. {@code raw}
   * @param fixedIndex name of its fixed index blob
   * @param bytesStored stored bytes of the chunks this backup added for this disk
   * @param bytesNew plaintext bytes of the chunks this backup added for this disk
   * @param changeTracking the image's change-tracking bitmap created by this backup for the next
   *     one, or null
   * @param changedSince the parent snapshot whose chunk ids were kept for ranges changed-block
   *     tracking showed unchanged, or null if the whole disk was read
   * @param bytesUnchanged bytes not read because they were unchanged since {@code changedSince}
   * @param untracked why this backup was asked to track changes ({@code --cbt}) and could not track
   *     this disk (read in full, no bitmap created), or null: a later backup then reads the disk in
   *     full rather than go back past this snapshot to an older one's bitmap
   */
  public record DiskEntry(
      String name,
      long size,
      int chunkSize,
      String format,
      String fixedIndex,
      long bytesStored,
      long bytesNew,
      String changeTracking,
      String changedSince,
      long bytesUnchanged,
      String untracked) {

    public DiskEntry(
        String name,
        long size,
        int chunkSize,
        String format,
        String fixedIndex,
        long bytesStored,
        long bytesNew) {
      this(name, size, chunkSize, format, fixedIndex, bytesStored, bytesNew, null, null, 0, null);
    }
  }

  /** The stream entry named {@code name}, or null. */
  public StreamEntry stream(String name) {
    return streams.stream().filter(d -> d.name().equals(name)).findFirst().orElse(null);
  }

  /**
   * One stream of a snapshot (database dump, WAL, mail store): content-defined chunks listed in a
   * dynamic index blob.
   *
   * @param name the stream name, unique in the snapshot
   * @param size length in bytes
   * @param dynamicIndex name of its dynamic index blob
   * @param bytesStored stored bytes of the chunks this backup added for this stream
   * @param bytesNew plaintext bytes of the chunks this backup added for this stream
   */
  public record StreamEntry(
      String name, long size, String dynamicIndex, long bytesStored, long bytesNew) {}
}
