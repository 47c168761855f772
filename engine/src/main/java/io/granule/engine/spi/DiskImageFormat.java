package io.granule.engine.spi;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A disk image format the engine can back up from, and restore to when it {@link #canCreate can
 * create} images: raw, qcow2, VMDK, VHD, VHDX, or a plugin's own.
 *
 * <p>Plugins register implementations as OSGi services. The engine picks the format for a file by
 * asking every registered format to {@link #probe} the file's first bytes and taking the highest
 * answer; {@code --format NAME} skips probing. Implementations are stateless and thread-safe.
 */
@ConsumerType
public interface DiskImageFormat {

  /** Bytes of a file's head passed to {@link #probe}; fewer if the file is shorter. */
  int PROBE_BYTES = 4096;

  /** Bytes of a file's end passed to {@link #probe(ByteBuffer, ByteBuffer, long)}. */
  int PROBE_TAIL_BYTES = 512;

  /** Short lowercase name used on the command line and in snapshots, e.g. {@code qcow2}. */
  String name();

  /**
   * How sure this format is that the file is its own, from 0 (not mine) to 100 (magic number and
   * header check out). The raw format answers 1: anything is a raw image.
   *
   * @param head the first bytes of the file, at most {@link #PROBE_BYTES}
   * @param fileSize the size of the file in bytes
   */
  int probe(ByteBuffer head, long fileSize);

  /**
   * Like {@link #probe(ByteBuffer, long)}, also given the file's last bytes, for formats whose only
   * signature is at the end (a fixed VHD's footer). The engine calls this one; the default ignores
   * {@code tail}.
   *
   * @param tail the last bytes of the file, at most {@link #PROBE_TAIL_BYTES} (fewer if the file is
   *     shorter; they may overlap {@code head})
   */
  default int probe(ByteBuffer head, ByteBuffer tail, long fileSize) {
    return probe(head, fileSize);
  }

  /**
   * Opens the image read-only. The caller closes it.
   *
   * @throws IOException with a message that names the file, what is wrong and at which offset
   */
  DiskImage open(Path path) throws IOException;

  /** Whether {@link #create} can write new images of this format. The default is false. */
  default boolean canCreate() {
    return false;
  }

  /**
   * Creates a new image file of this format at {@code target} for a disk of {@code virtualSize}
   * bytes and returns a writer for its data; see {@link DiskImageWriter} for the order of writes
   * and the atomicity contract. The caller closes the writer.
   *
   * @param target the file to create; it must not exist
   * @param virtualSize the size of the disk as the guest sees it, in bytes
   * @param options format-specific options (for example {@code cluster_size}); empty for the
   *     defaults. A format rejects options it does not know.
   * @throws UnsupportedOperationException if {@link #canCreate} is false
   * @throws IllegalArgumentException if the format cannot hold a disk of this size or an option is
   *     unknown or invalid; the message says which
   * @throws IOException if the file cannot be created; the message names it
   */
  default DiskImageWriter create(Path target, long virtualSize, Map<String, String> options)
      throws IOException {
    throw new UnsupportedOperationException(
        "disk image format '" + name() + "' cannot create images");
  }
}
