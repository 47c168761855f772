package io.granule.engine.spi;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.blob.DirectIo;
import java.nio.file.OpenOption;
import java.nio.file.Path;

/**
 * What the engine offers plugins that read and write files past the page cache ({@code O_DIRECT}):
 * a backup of a VM disk that is not cached (a running VM's disk usually is not: hypervisors write
 * past the cache) reads it straight from the disk into its buffers, with no page cache to fill and
 * none of the host's cached data evicted for bytes read once; a restore writes an image the same
 * way. Direct I/O needs offsets, lengths and buffer addresses aligned to the file system's block
 * (4096 bytes covers the usual ones); the engine's read and restore buffers are.
 *
 * @since 1.3
 */
public final class PageCache {
  private PageCache() {}

  /** The {@code O_DIRECT} open option of this JVM ({@code ExtendedOpenOption.DIRECT}), or null. */
  public static OpenOption directOption() {
    return DirectIo.option();
  }

  /**
   * The alignment of direct I/O on the file system holding {@code path} (an existing file or
   * directory): its block size, at least 4096; 0 if that is not a power of two (then do not use
   * direct I/O there).
   */
  public static int alignment(Path path) {
    return DirectIo.alignment(path);
  }

  /**
   * Whether less than half of what regular file {@code file} takes on disk is in the page cache
   * (Linux 6.5's cachestat(2), through the engine's native library): then its large reads are
   * better made with {@link #directOption()}. False where that cannot be found out, or if the
   * system property {@code granule.image.direct-read} is {@code never}; true if it is {@code
   * always}.
   */
  public static boolean mostlyUncached(Path file) {
    return RawDiskImage.shouldReadDirect(file);
  }
}
