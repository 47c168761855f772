package io.granule.engine.spi;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A virtual block device: a disk image file or a block device seen as a flat run of bytes.
 *
 * <p>Implementations must be safe for concurrent {@link #read} calls from several threads (the
 * backup pipeline reads ahead on one thread while another hashes). {@link #close} is called once,
 * after every read has returned.
 */
@ConsumerType
public interface DiskImage extends Closeable {

  /** The virtual size of the disk in bytes, as the guest sees it. */
  long size();

  /** The name of the format that opened this image, e.g. {@code raw} or {@code qcow2}. */
  String format();

  /**
   * Reads exactly {@code dst.remaining()} bytes of the virtual disk starting at {@code offset} into
   * {@code dst}. Unallocated ranges read as zeros.
   *
   * @throws java.io.EOFException if the range reaches past {@link #size()}
   * @throws IOException if the image cannot be read; the message names the file and the offset
   */
  void read(long offset, ByteBuffer dst) throws IOException;

  /**
   * The allocated ranges of {@code [offset, offset + length)}, sorted and not overlapping. Bytes
   * outside them read as zeros and are neither read nor stored by a backup. An image that cannot
   * tell returns the whole range, which is always correct.
   */
  default List<Extent> allocation(long offset, long length) throws IOException {
    return List.of(new Extent(offset, length));
  }

  /**
   * The changed-block tracking this image carries (qcow2 persistent dirty bitmaps), or null when it
   * has none.
   */
  default ChangeTracking changeTracking() {
    return null;
  }

  /**
   * Whether this image's large reads go past the page cache ({@code O_DIRECT}, see {@link
   * PageCache}) and so wait for the disk: a backup then keeps more reads in flight. False by
   * default.
   *
   * @since 1.3
   */
  default boolean readsPastPageCache() {
    return false;
  }

  /**
   * Every file this image reads, its own first: the images of its backing chain, a VMDK
   * descriptor's extent files. A backup holds read locks on each while it reads, so a restore
   * writing one of them in place is refused (and a backup of an image whose backing file is being
   * restored does not start). The default, an empty list, means the file the image was opened from
   * is the only one.
   *
   * @since 1.4
   */
  default List<java.nio.file.Path> files() {
    return List.of();
  }
}
