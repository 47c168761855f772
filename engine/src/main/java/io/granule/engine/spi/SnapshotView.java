package io.granule.engine.spi;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.function.Predicate;
import org.osgi.annotation.versioning.ProviderType;

/**
 * A snapshot as the engine hands it to a plugin for a restore: its disks' filesystems, read in
 * place from the repository (only the chunks touched are fetched), and what plugins stored with it.
 * Valid only during the call it is passed to.
 */
@ProviderType
public interface SnapshotView {

  /** The snapshot id (64 hex digits). */
  String id();

  /** When the backup started. */
  Instant time();

  /** The host the data came from. */
  String host();

  /**
   * Every filesystem the engine can read on the snapshot's disks: bare filesystems and those in
   * partitions. Opened lazily and closed by the engine.
   */
  List<Volume> volumes() throws IOException;

  /**
   * Opens a file a plugin captured at backup ({@link Captured.CapturedFile#name}).
   *
   * @throws java.nio.file.NoSuchFileException if the record holds no such file
   */
  InputStream openCaptured(ApplicationRecord record, String name) throws IOException;

  /**
   * Copies the file or tree at {@code path} of {@code volume} into {@code target} (created if
   * missing; must be empty) as {@code target}'s contents, keeping modes, times and (as root)
   * owners, sparse files sparse. Safe against hostile images: nothing is written outside {@code
   * target}.
   *
   * @param include which entries to copy, by their path relative to {@code path} ('/' separators,
   *     no leading '/'); a directory left out is left out with everything under it
   * @return the number of bytes of file data copied
   */
  long extract(Volume volume, String path, Path target, Predicate<String> include)
      throws IOException;

  /** Bytes of chunk data fetched from the repository for this view so far. */
  long bytesFetched();

  /** Number of chunks fetched from the repository for this view so far. */
  long chunksFetched();

  /** The total size of the snapshot's disks in bytes. */
  long diskBytes();

  /** One filesystem of the snapshot. */
  @ProviderType
  interface Volume {
    /** The disk's name in the snapshot. */
    String disk();

    /** The partition's name ({@code p1}, {@code p2}, …), or null for a bare filesystem. */
    String partition();

    /** The filesystem type's name, e.g. {@code ext4}. */
    String type();

    /** The filesystem, read-only. */
    FileSystem fileSystem();
  }
}
