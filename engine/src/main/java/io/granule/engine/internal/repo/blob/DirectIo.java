package io.granule.engine.internal.repo.blob;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.lang.ref.Cleaner;
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
    if (rounded >= HUGE && align <= HUGE) {
      ByteBuffer b = mapHuge(rounded);
      if (b != null) {
        return b.limit(length);
      }
    }
    // exactly the rounded length: where the allocation happens to be aligned already, the aligned
    // slice would hold one alignment more (a test saw capacity 8192 for 1 byte)
    return ByteBuffer.allocateDirect(rounded + align)
        .alignedSlice(align)
        .slice(0, rounded)
        .limit(length);
  }

  /** The size of a transparent huge page on x86-64, and the least buffer worth mapping in them. */
  static final int HUGE = 2 << 20;

  /**
   * Whether buffers of {@link #HUGE} bytes or more are mapped in transparent huge pages ({@code
   * -Dgranule.blob.huge-pages=false} turns it off). Why: a direct read or write pins each page of
   * its buffer for the transfer and unpins it after (the kernel's get_user_pages), and a buffer's
   * first touch faults each page in: in 4 KiB pages that was 0.23 of the 3.3 CPU-seconds of a cold
   * 4 GiB bench restore (perf, 2026-12-07), in 2 MiB pages 512 times fewer pages to pin and fault.
   * The JDK's direct buffers cannot have them: they come from malloc and are zeroed, every page
   * faulted in, before they could be advised.
   */
  private static final boolean HUGE_PAGES =
      !"false".equals(System.getProperty("granule.blob.huge-pages"))
          && NativeLibrary.unavailableReason() == null;

  private static volatile Cleaner cleaner;

  /**
   * A direct buffer of {@code length} bytes at an address aligned to {@link #HUGE}: a slice of an
   * anonymous mapping (zeroed) of {@code length} rounded up to {@link #HUGE}, advised {@code
   * MADV_HUGEPAGE} through {@code libgranule-native}, unmapped once unreachable (it and every slice
   * of it, which hold it); null where that is off or failed (the caller allocates as the JDK does).
   */
  private static ByteBuffer mapHuge(int length) {
    if (!HUGE_PAGES) {
      return null;
    }
    long mapped = ((long) length + HUGE - 1) / HUGE * HUGE;
    ByteBuffer b;
    long address;
    try {
      b = mapHuge0(mapped);
      if (b == null) {
        return null;
      }
      address = address0(b);
    } catch (UnsatisfiedLinkError e) {
      LOG.debug("no huge-page buffers: {}", e.toString());
      return null;
    }
    Cleaner c = cleaner;
    if (c == null) {
      synchronized (DirectIo.class) {
        c = cleaner;
        if (c == null) {
          c = Cleaner.create();
          cleaner = c;
        }
      }
    }
    c.register(b, () -> unmap0(address, mapped));
    return b.slice(0, length);
  }

  private static native ByteBuffer mapHuge0(long length);

  private static native long address0(ByteBuffer buffer);

  private static native int unmap0(long address, long length);
}
