package io.granule.engine.internal.ops;

import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.spi.DiskImage;
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
 * What a backup may read for a disk: a backup run by root (or by a process whose capabilities let
 * it read every file, see {@link Privilege}) hands whoever can restore the snapshot everything it
 * read, so it reads nothing the users who choose what the image names could not have read. A root
 * backup of a user's qcow2 whose header named /root/secret as its backing file (or a VMDK
 * descriptor naming it as an extent), or of a link of that user's to it, stored root's file in the
 * user's disk.
 *
 * <ul>
 *   <li>The disk's path is resolved as restore targets are ({@link SafePath}): a link another user
 *       owns, or any link in a directory another user can change, is refused.
 *   <li>The image's readers ({@link #readers}) are everyone who can change what it names: the
 *       owners of the image and of the directories above it (other than root and this process's
 *       user), a group that can write one of them, everyone if anyone can. The image and every file
 *       behind it (its backing chain, its extents) are opened as one identity standing for all of
 *       them ({@link FileCredentials}): the kernel decides, ACLs included, on the very files
 *       opened, whatever links are swapped meanwhile.
 *   <li>Where identities cannot be switched (no native library, or a capable non-root process
 *       without CAP_SETUID/CAP_SETGID), the files the image names are checked by name after the
 *       open: readable by that identity by mode bits, every directory above searchable.
 * </ul>
 *
 * A backup by an unprivileged user, or of an image root alone can change, reads only what its user
 * can read anyway.
 */
public final class SourceAccess {
  /**
   * The stand-in user and group for "a group" or "everyone": 65535, {@code (uint16_t) -1}, which no
   * account may have (systemd reserves it: 16-bit system calls read it as "no change"), so that no
   * file belongs to it. The overflow id 65534 was used before, and files of {@code nobody}'s with
   * mode 0600 (NFS root_squash, daemons) were read for a group's members (audit10 F-N). Where
   * /etc/passwd or /etc/group lists 65535, a backup that would need the stand-in is refused.
   */
  static final int STAND_IN = 65535;

  private SourceAccess() {}

  /**
   * Who may choose what an image reads, as one identity: {@code who} names them in messages, as
   * "uid 1001, the image's owner" does.
   */
  record Readers(FileCredentials.Identity identity, String who, String them, String fix) {}

  /**
   * Refuses {@code disk} if a link on the way to it is another user's choice.
   *
   * @throws SourceUnreadableException (exit code 6) naming the link
   */
  public static void checkPath(Path disk) throws IOException {
    if (!DirectoryHandle.ENABLED || !Privilege.readsAnyFile()) {
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

  /** Opens an image: {@link io.granule.engine.internal.image.ImageInspector#open}, usually. */
  @FunctionalInterface
  public interface Opener<T extends DiskImage> {
    T open() throws IOException;
  }

  /**
   * Opens {@code disk} with {@code opener} as its {@link #readers} (see the class comment), and
   * checks the files it reads by name where that cannot be done.
   *
   * @throws SourceUnreadableException (exit code 6) naming a file the readers cannot read
   */
  public static <T extends DiskImage> T open(Path disk, Opener<T> opener) throws IOException {
    Readers readers;
    try {
      readers = Privilege.readsAnyFile() ? readers(disk) : null;
    } catch (java.nio.file.NoSuchFileException e) {
      // said here, not by opening it by name after all: made meanwhile (a link), it would be
      // opened with this process's rights
      throw new io.granule.engine.internal.image.ImageException(
          "unable to open disk image '" + disk + "': no such file");
    } catch (java.nio.file.FileSystemException e) {
      throw new io.granule.engine.internal.image.ImageException(
          "unable to open disk image '"
              + disk
              + "': "
              + (e.getReason() == null ? e.getClass().getSimpleName() : e.getReason()),
          e);
    }
    if (readers == null) {
      return opener.open();
    }
    if (FileCredentials.unavailableReason() == null) {
      try {
        return FileCredentials.call(readers.identity(), opener::open);
      } catch (IOException | RuntimeException e) {
        Path denied = denied(e);
        if (denied == null) {
          throw e;
        }
        throw refusal(disk, denied, readers, "cannot be read");
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    }
    T img = opener.open();
    try {
      check(disk, img.files(), readers);
      return img;
    } catch (IOException | RuntimeException e) {
      img.close();
      throw e;
    }
  }

  /**
   * Why changed-block tracking ({@code --cbt}) must leave {@code disk} alone, or null if it may
   * track it: tracking runs {@code qemu-img bitmap} on the image as the identity that opened it,
   * and where identities cannot be switched ({@link FileCredentials#unavailableReason}) an image
   * others can change was opened with this process's rights, so qemu-img would modify it as this
   * process (root) on a name those users can swap (audit10 F-B).
   */
  public static String untrackable(Path disk) {
    return untrackable(disk, FileCredentials.unavailableReason());
  }

  static String untrackable(Path disk, String cannotSwitch) {
    if (cannotSwitch == null || !Privilege.readsAnyFile()) {
      return null;
    }
    Readers readers;
    try {
      readers = readers(disk);
    } catch (IOException e) {
      return "its writers cannot be told (" + e.getMessage() + ")";
    }
    return readers == null
        ? null
        : readers.who()
            + " can change it, and qemu-img would modify it as this process: identities cannot be"
            + " switched here ("
            + cannotSwitch
            + ")";
  }

  /**
   * The file an access was denied to, from an open's exception (its causes, or its messages where a
   * plugin kept only the words); {@code Path.of("")} if the words say so without a path, null if it
   * was not a denial.
   */
  static Path denied(Throwable e) {
    for (Throwable c = e; c != null; c = c.getCause()) {
      if (c instanceof java.nio.file.AccessDeniedException a && a.getFile() != null) {
        return Path.of(a.getFile());
      }
    }
    for (Throwable c = e; c != null; c = c.getCause()) {
      String m = c.getMessage();
      if (m == null) {
        continue;
      }
      int at = m.indexOf("AccessDeniedException: ");
      if (at >= 0) {
        String rest = m.substring(at + "AccessDeniedException: ".length());
        int end = rest.indexOf(' ');
        return Path.of(end < 0 ? rest : rest.substring(0, end));
      }
      if (m.contains("Permission denied")) {
        return Path.of("");
      }
    }
    return null;
  }

  private static SourceUnreadableException refusal(
      Path disk, Path file, Readers readers, String why) {
    String what =
        file.toString().isEmpty()
            ? "a file '" + disk + "' reads (the image, a backing file or an extent)"
            : file.equals(disk)
                ? "'" + disk + "'"
                : "'" + file + "', a file '" + disk + "' reads (a backing file or an extent),";
    return new SourceUnreadableException(
        what
            + " "
            + why
            + " by "
            + readers.who()
            + ": a backup of it would hand "
            + readers.them()
            + " data "
            + (readers.them().equals("him") ? "he cannot" : "they cannot")
            + " read. "
            + readers.fix());
  }

  /**
   * Refuses {@code files} (those an image of {@code disk} reads besides {@code disk} itself) that
   * {@code disk}'s readers could not read, by name (see the class comment).
   *
   * @throws SourceUnreadableException (exit code 6) naming the file and the readers
   */
  public static void checkFiles(Path disk, List<Path> files) throws IOException {
    if (!Privilege.readsAnyFile() || files.size() <= 1) {
      return;
    }
    Readers readers = readers(disk);
    if (readers != null) {
      check(disk, files, readers);
    }
  }

  private static void check(Path disk, List<Path> files, Readers readers) throws IOException {
    FileCredentials.Identity id = readers.identity();
    Set<Integer> groups = new HashSet<>();
    groups.add(id.gid());
    for (int g : id.groups()) {
      groups.add(g);
    }
    for (Path f : files) {
      if (f.equals(disk)) {
        continue;
      }
      String why = unreadable(f.toAbsolutePath().normalize(), id.uid(), groups);
      if (why != null) {
        throw refusal(disk, f, readers, why);
      }
    }
  }

  /**
   * Who can change what {@code disk} names, as one identity; null if no one but root (and this
   * process's user) can, or if it is not a regular file (a device is root's to read). They are the
   * owners of the image and of every directory above it, a group that can write one of them, and
   * everyone if anyone can (a sticky directory's other entries are not theirs to rename). One user
   * is himself; one group (whose members include every such user) is a user of no group but it;
   * anything more is everyone: the stand-in user and group ({@link #STAND_IN}).
   */
  static Readers readers(Path disk) throws IOException {
    Path real = disk.toRealPath();
    Map<String, Object> top = Files.readAttributes(real, "unix:uid,gid,mode");
    // a device is root's to read, unless someone else chose the way to it (below)
    boolean device = ((Integer) top.get("mode") & 0170000) != 0100000;
    int self = io.granule.engine.internal.net.PeerUser.self();
    Set<Integer> users = new java.util.TreeSet<>();
    Set<Integer> groups = new java.util.TreeSet<>();
    boolean everyone = false;
    List<Path> chain = new java.util.ArrayList<>();
    for (Path p = real; p != null && !device; p = p.getParent()) {
      chain.add(p);
    }
    // and the way as named: whoever can change it chooses where it leads. Judged by where it led
    // alone, a link swapped in at that moment led to root's file, and root opened that as root.
    Path named = disk.toAbsolutePath().normalize();
    for (Path p = named; p != null; p = p.getParent()) {
      Map<String, Object> a;
      try {
        a = Files.readAttributes(p, "unix:uid,gid,mode", LinkOption.NOFOLLOW_LINKS);
      } catch (IOException e) {
        continue; // below a link: judged where it leads (above)
      }
      int uid = (Integer) a.get("uid");
      int mode = (Integer) a.get("mode");
      if (uid != 0 && uid != self) {
        users.add(uid);
      }
      if ((mode & 0170000) == 0120000 || p == named || (mode & 01000) != 0) {
        continue; // a link (its owner counted, its mode means nothing), the disk (judged where
        // the way leads, above), or sticky
      }
      if ((mode & 0020) != 0) {
        groups.add((Integer) a.get("gid"));
      }
      everyone |= (mode & 0002) != 0;
    }
    for (Path p : chain) {
      Map<String, Object> a =
          p == real ? top : Files.readAttributes(p, "unix:uid,gid,mode", LinkOption.NOFOLLOW_LINKS);
      int uid = (Integer) a.get("uid");
      int mode = (Integer) a.get("mode");
      if (uid != 0 && uid != self) {
        users.add(uid);
      }
      if (p != real && (mode & 01000) != 0) {
        continue; // sticky: only the owners of its entries (counted) rename them
      }
      if ((mode & 0020) != 0) {
        groups.add((Integer) a.get("gid"));
      }
      everyone |= (mode & 0002) != 0;
    }
    String fixAll = "Make the image and the directories above it writable by root alone";
    if (!everyone && groups.isEmpty() && users.size() == 1) {
      int u = users.iterator().next();
      Set<Integer> his = groupsOf(u);
      int[] g = his.stream().mapToInt(Integer::intValue).toArray();
      boolean owner = u == (Integer) top.get("uid");
      return new Readers(
          new FileCredentials.Identity(u, primaryGroupOf(u), g),
          "uid " + u + (owner ? ", the image's owner" : ", who owns a directory above the image"),
          "him",
          "Back it up as that user, or let him read it");
    }
    if (!everyone && users.isEmpty() && groups.isEmpty()) {
      return null;
    }
    standInUnlisted();
    if (!everyone && groups.size() == 1) {
      int g = groups.iterator().next();
      if (users.stream().allMatch(u -> groupsOf(u).contains(g))) {
        return new Readers(
            new FileCredentials.Identity(STAND_IN, g, new int[] {g}),
            "group " + g + " alone, which can write the image or a directory above it",
            "its members",
            fixAll + ", or let the group read it");
      }
    }
    return new Readers(
        new FileCredentials.Identity(STAND_IN, STAND_IN, new int[0]),
        "everyone, and "
            + (everyone
                ? "everyone"
                : "uids " + users + (groups.isEmpty() ? "" : " and groups " + groups))
            + " can write the image or a directory above it",
        "them",
        fixAll + ", or let everyone read it");
  }

  /**
   * Refuses if the stand-in user or group is an account here: its files would pass for a group or
   * for everyone.
   */
  private static void standInUnlisted() throws IOException {
    for (String db : List.of("/etc/passwd", "/etc/group")) {
      try {
        for (String line : Files.readAllLines(Path.of(db), StandardCharsets.UTF_8)) {
          String[] f = line.split(":", -1);
          if (f.length > 2 && f[2].equals(Integer.toString(STAND_IN))) {
            throw new SourceUnreadableException(
                db
                    + " lists id "
                    + STAND_IN
                    + " ('"
                    + f[0]
                    + "'), which a root backup opens a disk as when a group or everyone can"
                    + " change it (an id no file may belong to): remove that entry, or make the"
                    + " image and the files it reads writable by root or one user alone");
          }
        }
      } catch (java.nio.file.NoSuchFileException e) {
        // no such database: nothing listed
      }
    }
  }

  /** {@code uid}'s primary group from /etc/passwd, or the stand-in group. */
  static int primaryGroupOf(int uid) {
    try {
      for (String line : Files.readAllLines(Path.of("/etc/passwd"), StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 3 && f[2].equals(Integer.toString(uid))) {
          return Integer.parseInt(f[3]);
        }
      }
    } catch (IOException | NumberFormatException e) {
      // below
    }
    return STAND_IN;
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
