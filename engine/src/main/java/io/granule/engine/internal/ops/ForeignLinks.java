package io.granule.engine.internal.ops;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;

/**
 * Refuses a restore target reached through a symbolic link that another user owns: a user who owns
 * {@code /home/u/restored} makes it a link to {@code /etc/cron.d}, and root's restore there writes
 * root-owned files where that user chose. Links owned by root or by the restoring user are followed
 * ({@code /dev/disk/by-id} names, an operator's own links), as the kernel's {@code
 * protected_symlinks} does in sticky directories.
 */
public final class ForeignLinks {
  private ForeignLinks() {}

  /**
   * Checks every component of {@code target} that exists, following links owned by root or by this
   * process's user.
   *
   * @throws IOException naming the first link another user owns
   */
  public static void refuse(Path target) throws IOException {
    SafePath.locate(target).close();
  }

  /** As {@link #refuse}, by name (where libgranule-native is missing). */
  static void refuseByName(Path target) throws IOException {
    int self = uid(Path.of("/proc/self"), true);
    if (self < 0) {
      return; // not Linux: nothing to tell by
    }
    Path abs = target.toAbsolutePath();
    Path at = abs.getRoot();
    for (Path name : abs) {
      Path next = at.resolve(name.toString());
      if (!Files.exists(next, LinkOption.NOFOLLOW_LINKS)) {
        return; // made by the restore itself from here on
      }
      if (Files.isSymbolicLink(next)) {
        int owner = uid(next, false);
        if (owner != 0 && owner != self) {
          throw SafePath.foreign(target, next.toString(), owner);
        }
        next = next.toRealPath();
      }
      at = next;
    }
  }

  private static int uid(Path p, boolean follow) throws IOException {
    try {
      return (Integer)
          (follow
              ? Files.getAttribute(p, "unix:uid")
              : Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS));
    } catch (UnsupportedOperationException e) {
      return -1;
    }
  }
}
