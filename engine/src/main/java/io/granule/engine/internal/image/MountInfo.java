package io.granule.engine.internal.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

/**
 * The mount table, {@code /proc/self/mountinfo}, read as text. Decoded leniently: a mount point
 * whose name is not UTF-8 (a FUSE mount any user may make) made a strict read fail, which refused
 * {@code --freeze}, a restore's check of mounted devices and the pins' place in a file system
 * (audit14 E, audit15); its bytes become U+FFFD in that line alone. Mount points are escaped in it
 * ({@code \040} for a space): see {@link BlockDeviceClaim#unescape}.
 */
public final class MountInfo {
  /** This process's mount table. */
  public static final Path SELF = Path.of("/proc/self/mountinfo");

  private MountInfo() {}

  /** The whole of mount table {@code file}. */
  public static String read(Path file) throws IOException {
    return new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
  }

  /**
   * The mount id of what descriptor {@code procFd} ({@code /proc/PID/fd/N}) holds: the {@code
   * mnt_id} its {@code fdinfo} gives, the first field of that mount's line in the mount table.
   */
  public static OptionalLong mountIdOfDescriptor(Path procFd) {
    Path info =
        procFd.getParent().resolveSibling("fdinfo").resolve(procFd.getFileName().toString());
    try {
      for (String l : Files.readAllLines(info, StandardCharsets.UTF_8)) {
        if (l.startsWith("mnt_id:")) {
          return OptionalLong.of(Long.parseLong(l.substring(7).trim()));
        }
      }
    } catch (IOException | RuntimeException e) {
      return OptionalLong.empty();
    }
    return OptionalLong.empty();
  }

  /** The lines of mount table {@code file}. */
  public static List<String> lines(Path file) throws IOException {
    return read(file).lines().toList();
  }
}
