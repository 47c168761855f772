package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code O_DIRECT} file I/O from Java: the open option (from {@code jdk.unsupported}), the
 * alignment a file system wants, and aligned direct buffers. Direct writes skip the page cache: no
 * copy into it, no pages to allocate for it (on virtual machines the dearest part of a buffered
 * write) and no evicting the host's own cached data for bytes that a backup will not read again.
 */
public final class DirectIo {
  private static final Logger LOG = LoggerFactory.getLogger(DirectIo.class);

  /** Alignment of direct I/O at least: a multiple of every logical block size in use. */
  public static final int MIN_ALIGN = 4096;

  private static final OpenOption OPTION = lookup();

  private DirectIo() {}

  /** {@code ExtendedOpenOption.DIRECT}, or null where this JVM has none. */
  public static OpenOption option() {
    return OPTION;
  }

  private static OpenOption lookup() {
    try {
      Class<?> c =
          Class.forName(
              "com.sun.nio.file.ExtendedOpenOption", true, ClassLoader.getPlatformClassLoader());
      for (Object o : c.getEnumConstants()) {
        if (((Enum<?>) o).name().equals("DIRECT")) {
          return (OpenOption) o;
        }
      }
    } catch (ReflectiveOperationException | LinkageError e) {
      LOG.debug("no O_DIRECT: {}", e.toString());
    }
    return null;
  }

  /**
   * The alignment of direct I/O on the file system holding {@code path} (an existing file or
   * directory): its block size, at least {@link #MIN_ALIGN}; 0 if it is not a power of two.
   */
  public static int alignment(Path path) {
    int align;
    try {
      long block = Files.getFileStore(path).getBlockSize();
      align = (int) Math.max(MIN_ALIGN, Math.min(block, 1 << 30));
    } catch (IOException | UnsupportedOperationException e) {
      align = MIN_ALIGN;
    }
    return Integer.bitCount(align) == 1 ? align : 0;
  }

  /**
   * Whether {@code path} (an existing file or directory) lives in memory (tmpfs, ramfs): its pages
   * are always cached, so reading ahead or allocating ahead there only costs. False if unknown.
   */
  public static boolean inMemory(Path path) {
    try {
      String type = Files.getFileStore(path).type();
      return "tmpfs".equals(type) || "ramfs".equals(type);
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /**
   * A direct buffer whose address is aligned to {@code align} (a power of two), with room for at
   * least {@code length} bytes (its capacity rounded up to the alignment), its limit at {@code
   * length}.
   */
  public static ByteBuffer allocate(int length, int align) {
    int rounded = (int) (((long) length + align - 1) / align * align);
    return ByteBuffer.allocateDirect(rounded + align).alignedSlice(align).limit(length);
  }
}
