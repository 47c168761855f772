package io.granule.engine.spi;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A read-only view of one filesystem inside a volume, read in place through a {@link DiskImage}
 * without mounting it.
 *
 * <p>Implementations are safe for concurrent use from several threads. They trust nothing they
 * read: a damaged or hostile volume makes a method throw an {@link IOException} whose message names
 * the structure and its byte offset, never loop forever, allocate memory out of proportion to the
 * volume's size, or read outside the volume.
 *
 * <p>A hostile volume may still present a directory tree with cycles (a directory that contains
 * itself or an ancestor): callers that walk a tree keep the {@link FileNode#id() ids} of the
 * directories on their path and refuse to descend into one twice.
 *
 * <p>Every method that takes a {@link FileNode} accepts only nodes this filesystem returned.
 */
@ConsumerType
public interface FileSystem extends Closeable {

  /** The root directory. */
  FileNode root() throws IOException;

  /**
   * The object at {@code path}: names separated by {@code '/'}, resolved from the root ({@code ""}
   * and {@code "/"} are the root). Symbolic links are not followed, neither in the middle of the
   * path nor at its end; {@code "."} and {@code ".."} components are refused.
   *
   * @throws java.nio.file.NoSuchFileException if a component does not exist
   * @throws java.nio.file.NotDirectoryException if a component before the last is not a directory
   * @throws IOException if the path is refused or the filesystem is damaged
   */
  FileNode lookup(String path) throws IOException;

  /**
   * The entries of directory {@code dir}, without {@code "."} and {@code ".."}, in the order the
   * filesystem stores them. Each name appears once.
   *
   * @throws java.nio.file.NotDirectoryException if {@code dir} is not a directory
   */
  List<DirectoryEntry> list(FileNode dir) throws IOException;

  /**
   * Reads bytes of regular file {@code file} starting at {@code position} into {@code dst}: as many
   * as fit, up to the end of the file. Holes (unallocated ranges) read as zeros.
   *
   * @return the number of bytes read, or -1 if {@code position} is at or past the end of the file
   * @throws IOException if {@code file} is not a regular file or its data cannot be located
   */
  int read(FileNode file, long position, ByteBuffer dst) throws IOException;

  /**
   * The target of symbolic link {@code link}, exactly as stored (it may be absolute, relative or
   * point outside the filesystem; it is never followed).
   */
  String readLink(FileNode link) throws IOException;

  /**
   * The byte ranges of regular file {@code file} that hold data, sorted and not overlapping, with
   * offsets relative to the start of the file and clipped to its size; the rest are holes that read
   * as zeros. Preallocated but unwritten ranges count as holes. A reader that cannot tell returns
   * the whole file, which is always correct.
   */
  List<Extent> allocation(FileNode file) throws IOException;
}
