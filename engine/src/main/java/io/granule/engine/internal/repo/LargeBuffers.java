package io.granule.engine.internal.repo;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Buffers whose size grows with a disk (a fixed index holds 32 bytes per chunk position: 64 MiB per
 * TiB of disk at 512 KiB chunks): small ones on the heap, large ones in a memory-mapped temporary
 * file that is deleted as soon as it is mapped, so that they take no Java heap and the kernel can
 * page them out (file-backed memory, like the chunk index). The file is in {@code granule.tmpdir},
 * else {@code java.io.tmpdir}; its space is freed when the buffer is collected.
 */
public final class LargeBuffers {
  /** Buffers up to this size stay on the heap. */
  public static final int HEAP_MAX = 8 << 20;

  /** The largest buffer (a Java buffer's limit, less a page). */
  public static final long MAX = Integer.MAX_VALUE - 4096;

  private LargeBuffers() {}

  /**
   * A zero-filled buffer of {@code bytes}, position 0 and limit {@code bytes}, big-endian.
   *
   * @throws IllegalArgumentException if {@code bytes} is over {@link #MAX}
   * @throws RepositoryException if the temporary file cannot be made (no space)
   */
  public static ByteBuffer allocate(long bytes, String what) {
    if (bytes < 0 || bytes > MAX) {
      throw new NoRoomException(
          what + " would take " + bytes + " bytes, more than a buffer holds (" + MAX + ")", null);
    }
    if (bytes <= HEAP_MAX) {
      return ByteBuffer.allocate((int) bytes);
    }
    Path dir = Path.of(System.getProperty("granule.tmpdir", System.getProperty("java.io.tmpdir")));
    Path file = null;
    try {
      // The mapping reserves no blocks: a file system that fills up later would fail a write
      // into it with a memory fault, not an I/O error, so look at the free space first.
      long free = Files.getFileStore(dir).getUsableSpace();
      if (free < bytes + (64 << 20)) {
        throw new IOException(
            "only " + (free >> 20) + " MiB free there, " + ((bytes >> 20) + 64) + " MiB needed");
      }
      file = Files.createTempFile(dir, ".granule-", ".tmp");
      try (FileChannel ch =
          FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
        return ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes);
      } finally {
        Files.deleteIfExists(file);
      }
    } catch (IOException e) {
      throw new NoRoomException(
          "unable to make room for "
              + what
              + " ("
              + (bytes >> 20)
              + " MiB) in "
              + dir
              + ": "
              + e.getMessage()
              + " (free space there, or point GRANULE_JAVA_OPTS=-Dgranule.tmpdir=DIR elsewhere)",
          e);
    }
  }

  /**
   * No room for a large buffer (temporary space, or its size): a local condition, never damage in
   * the repository (verify and prune let it through instead of naming a blob).
   */
  public static final class NoRoomException extends RepositoryException {
    NoRoomException(String message, Throwable cause) {
      super(message, cause);
    }
  }
}
