package io.granule.engine.internal.ops;

import io.granule.engine.internal.repo.SourceUnreadableException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What a backup may read for a disk: a backup run by root hands whoever can restore the snapshot
 * everything it read, so it reads nothing the disk's owner could not have read. A root backup of a
 * user's qcow2 whose header named /root/secret as its backing file (or a VMDK descriptor naming it
 * as an extent), or of a link of that user's to it, stored root's file in the user's disk.
 *
 * <ul>
 *   <li>The disk's path is resolved as restore targets are ({@link SafePath}): a link another user
 *       owns, or any link in a directory another user can change, is refused.
 *   <li>Every other file the image reads (its backing chain, its extents) must be readable by the
 *       image file's owner: his own, or readable by his group or by everyone, with every directory
 *       above it searchable by him (by mode bits; ACLs are not consulted).
 * </ul>
 *
 * A backup by a non-root user, or of an image root owns, reads only what its user can read anyway.
 */
public final class SourceAccess {
  private SourceAccess() {}

  /**
   * Refuses {@code disk} if a link on the way to it is another user's choice.
   *
   * @throws SourceUnreadableException (exit code 6) naming the link
   */
  public static void checkPath(Path disk) throws IOException {
    if (!DirectoryHandle.ENABLED || io.granule.engine.internal.net.PeerUser.self() != 0) {
      return; // another user reads only what he can read; without the library: by name below
    }
    try (SafePath.Location l = SafePath.locate(disk)) {
      // resolved under the rules: nothing more to hold (the image is opened by its path next)
    } catch (SafePath.ChosenLink e) {
      throw new SourceUnreadableException(
          "backup source '"
              + disk
              + "' refused: "
              + e.describe("", "a backup through it would read what"));
    } catch (java.nio.file.FileSystemException e) {
      // not there, not a directory where one is needed: the opener says so
    }
  }

  /**
   * Refuses {@code files} (those an image of {@code disk} reads besides {@code disk} itself) that
   * {@code disk}'s owner could not read.
   *
   * @throws SourceUnreadableException (exit code 6) naming the file and the owner
   */
  public static void checkFiles(Path disk, List<Path> files) throws IOException {
    if (io.granule.engine.internal.net.PeerUser.self() != 0 || files.size() <= 1) {
      return;
    }
    Map<String, Object> top = Files.readAttributes(disk, "unix:uid,mode");
    int owner = (Integer) top.get("uid");
    if (owner == 0 || ((Integer) top.get("mode") & 0170000) != 0100000) {
      return; // root's image, or a device: root's to read
    }
    Set<Integer> groups = groupsOf(owner);
    for (Path f : files) {
      if (f.equals(disk)) {
        continue;
      }
      String why = unreadable(f.toAbsolutePath().normalize(), owner, groups);
      if (why != null) {
        throw new SourceUnreadableException(
            "'"
                + f
                + "', a file '"
                + disk
                + "' reads (a backing file or an extent), "
                + why
                + " by uid "
                + owner
                + ", the image's owner: a backup of it would hand him data he cannot read."
                + " Back it up as that user, or let him read it");
      }
    }
  }

  /** Why {@code uid} (in {@code groups}) cannot read {@code f}, or null if he can. */
  static String unreadable(Path f, int uid, Set<Integer> groups) throws IOException {
    Path real = f.toRealPath();
    Path at = real.getRoot();
    if (!allowed(at, uid, groups, 0111)) {
      return "is in directory '/', which cannot be searched";
    }
    Path parent = real.getParent();
    for (Path part : parent == null ? List.<Path>of() : parent) {
      at = at.resolve(part);
      if (!allowed(at, uid, groups, 0111)) {
        return "is in directory '" + at + "', which cannot be searched";
      }
    }
    if (!allowed(real, uid, groups, 0444)) {
      return "cannot be read";
    }
    return null;
  }

  /** Whether {@code uid} has the permission {@code bits} (0444 read, 0111 search) on {@code p}. */
  private static boolean allowed(Path p, int uid, Set<Integer> groups, int bits)
      throws IOException {
    Map<String, Object> a = Files.readAttributes(p, "unix:uid,gid,mode", LinkOption.NOFOLLOW_LINKS);
    int mode = (Integer) a.get("mode");
    if ((Integer) a.get("uid") == uid) {
      return (mode & bits & 0700) != 0;
    }
    if (groups.contains((Integer) a.get("gid"))) {
      return (mode & bits & 0070) != 0;
    }
    return (mode & bits & 0007) != 0;
  }

  /** {@code uid}'s groups, from /etc/passwd and /etc/group (none if he is not listed). */
  static Set<Integer> groupsOf(int uid) {
    Set<Integer> groups = new HashSet<>();
    String name = null;
    try {
      for (String line : Files.readAllLines(Path.of("/etc/passwd"), StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 3 && f[2].equals(Integer.toString(uid))) {
          name = f[0];
          groups.add(Integer.parseInt(f[3]));
          break;
        }
      }
      if (name != null) {
        for (String line : Files.readAllLines(Path.of("/etc/group"), StandardCharsets.UTF_8)) {
          String[] f = line.split(":", -1);
          if (f.length > 3 && List.of(f[3].split(",")).contains(name)) {
            groups.add(Integer.parseInt(f[2]));
          }
        }
      }
    } catch (IOException | NumberFormatException e) {
      // fewer groups: fewer files pass, never more
    }
    return groups;
  }
}
