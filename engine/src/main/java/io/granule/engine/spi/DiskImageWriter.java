package io.granule.engine.spi;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * Writes a new disk image file from a disk's data, streamed once in increasing offset order; made
 * by {@link DiskImageFormat#create}.
 *
 * <p>The caller passes only the ranges it knows to hold data; every byte it never passes reads as
 * zero in the finished image and stays unallocated where the format allows. A writer may also leave
 * all-zero parts of the data it is given unallocated.
 *
 * <p>Atomicity: the image looks complete (its header or signature is valid) only after {@link
 * #finish} has returned. A writer that is closed without {@code finish()}, or whose process dies
 * first, leaves a file that no reader, ours or qemu's, accepts as an image. The caller still
 * deletes it.
 *
 * <p>Not thread-safe: one thread writes, finishes and closes.
 */
@ConsumerType
public interface DiskImageWriter extends Closeable {

  /**
   * An option every format accepts: the file name the finished image will have when the caller
   * writes it under a temporary name and renames it after {@link #finish} (the CLI writes {@code
   * vm.vmdk.partial}). Formats that record their own file name (a VMDK descriptor names its extent)
   * use it; the others ignore it.
   */
  String OPTION_FILE_NAME = "file_name";

  /**
   * Writes {@code data.remaining()} bytes of the virtual disk at {@code offset}, consuming {@code
   * data}. Calls come in increasing, non-overlapping offset order; the offset and length need not
   * be aligned to anything.
   *
   * @throws IllegalArgumentException if the range goes backwards, overlaps an earlier one, or
   *     reaches past the virtual size
   * @throws IOException if the file cannot be written; the message names the file
   */
  void write(long offset, ByteBuffer data) throws IOException;

  /**
   * Writes the remaining metadata, forces the data and then the header to stable storage, and makes
   * the image complete. Called at most once; no {@link #write} may follow.
   *
   * @throws IOException if the file cannot be written or synced; the image is then not complete
   */
  void finish() throws IOException;

  /** Closes the file. Without a successful {@link #finish} the file is left incomplete. */
  @Override
  void close() throws IOException;
}
