package io.granule.engine.spi;

import java.io.IOException;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A filesystem a plugin can read inside a volume: ext4, XFS, NTFS, or a plugin's own.
 *
 * <p>Plugins register implementations as OSGi services. The engine picks the filesystem of a volume
 * by asking every registered type to {@link #probe} it and taking the highest answer.
 * Implementations are stateless and thread-safe.
 */
@ConsumerType
public interface FileSystemType {

  /** Short lowercase name used on the command line and in catalogs, e.g. {@code ext4}. */
  String name();

  /**
   * How sure this type is that the volume holds its filesystem, from 0 (not mine) to 100 (magic
   * number and superblock check out). Reads only the few bytes it needs.
   *
   * @throws IOException only if the volume cannot be read; a volume that is not this type's answers
   *     0
   */
  int probe(DiskImage volume) throws IOException;

  /**
   * Opens the filesystem read-only. The caller closes it; closing it does not close {@code volume},
   * which must stay open while the filesystem is.
   *
   * @throws IOException if the volume does not hold a filesystem of this type, holds one with
   *     features this reader refuses, or is damaged; the message names the structure and its byte
   *     offset in the volume
   */
  FileSystem open(DiskImage volume) throws IOException;
}
