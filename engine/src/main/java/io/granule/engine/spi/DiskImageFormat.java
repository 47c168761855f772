package io.granule.engine.spi;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A disk image format the engine can back up from: raw, qcow2, VMDK, VHD, VHDX, or a plugin's own.
 *
 * <p>Plugins register implementations as OSGi services. The engine picks the format for a file by
 * asking every registered format to {@link #probe} the file's first bytes and taking the highest
 * answer; {@code --format NAME} skips probing. Implementations are stateless and thread-safe.
 */
@ConsumerType
public interface DiskImageFormat {

  /** Bytes of a file's head passed to {@link #probe}; fewer if the file is shorter. */
  int PROBE_BYTES = 4096;

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
   * Opens the image read-only. The caller closes it.
   *
   * @throws IOException with a message that names the file, what is wrong and at which offset
   */
  DiskImage open(Path path) throws IOException;
}
