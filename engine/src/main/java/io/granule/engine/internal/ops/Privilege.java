package io.granule.engine.internal.ops;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether this process has root's powers over files: uid 0, or the capabilities that give them (a
 * service run as another user with {@code AmbientCapabilities=CAP_DAC_READ_SEARCH} reads every file
 * as root does). Root's rules apply to such a process too: a backup by it checks its sources as
 * root's does, a restore by it gives restored files their owners and clears set-ID bits.
 */
public final class Privilege {
  static final int CAP_CHOWN = 0;
  static final int CAP_DAC_OVERRIDE = 1;
  static final int CAP_DAC_READ_SEARCH = 2;
  static final int CAP_FOWNER = 3;
  static final int CAP_FSETID = 4;

  private static final long EFFECTIVE = effective(Path.of("/proc/self/status"));

  private Privilege() {}

  /** Whether this process can read files their modes do not let it read (root, or a capability). */
  public static boolean readsAnyFile() {
    return io.granule.engine.internal.net.PeerUser.self() == 0
        || has(EFFECTIVE, CAP_DAC_OVERRIDE)
        || has(EFFECTIVE, CAP_DAC_READ_SEARCH);
  }

  /**
   * Whether this process can give files to other users or keep their set-ID bits (root, or
   * CAP_CHOWN, CAP_FOWNER or CAP_FSETID).
   */
  public static boolean ownsAnyFile() {
    return io.granule.engine.internal.net.PeerUser.self() == 0
        || has(EFFECTIVE, CAP_CHOWN)
        || has(EFFECTIVE, CAP_FOWNER)
        || has(EFFECTIVE, CAP_FSETID);
  }

  /**
   * Whether this process can give files to other users (root, or CAP_CHOWN; not when its
   * capabilities cannot be read: a chown would fail).
   */
  public static boolean chownsFiles() {
    return io.granule.engine.internal.net.PeerUser.self() == 0
        || (EFFECTIVE != -1L && has(EFFECTIVE, CAP_CHOWN));
  }

  static boolean has(long set, int cap) {
    return (set >>> cap & 1) != 0;
  }

  /**
   * The effective capability set ({@code CapEff}) in a {@code /proc/PID/status}; all of them if it
   * cannot be read (root's rules are the stricter ones for a backup's sources).
   */
  static long effective(Path status) {
    try {
      for (String line : Files.readAllLines(status, StandardCharsets.UTF_8)) {
        if (line.startsWith("CapEff:")) {
          return Long.parseUnsignedLong(line.substring(7).trim(), 16);
        }
      }
    } catch (IOException | NumberFormatException e) {
      // below
    }
    return -1L;
  }
}
