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
import java.util.TreeMap;

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
 *   <li>The image's writers ({@link #writers}) are everyone who can change what it names, judged on
 *       the way the kernel resolves its path, one component at a time: the owners (other than root
 *       and this process's user) of every directory on the way, of every link followed and of the
 *       file, a group that can write one of these directories or the file, everyone if anyone can
 *       (a sticky directory adds only its entries' owners). A block device's node counts as a file
 *       does (its group and other write bits too: a root:disk 0660 device is its group's to write),
 *       and so does what is behind it: a loop device's backing file (as sysfs names it, on its own
 *       way), a partition's whole disk, the devices under a device-mapper or md device ({@code
 *       slaves}), down the stack. A virtual device whose source cannot be told (nbd, ublk, a loop
 *       device whose file was deleted or is out of reach) is everyone's to write (audit10 F-A: a
 *       group-writable device, or the stock root:disk loop device over a user's file, held a qcow2
 *       header naming root's file, and root opened it as root).
 *   <li>An ACL counts as the mode bits do: the users and groups its entries let write (masked), and
 *       the owning group only if its own entry lets it write; an ACL that cannot be read counts
 *       everyone (audit11 R1: a root image with the entry user:gu1:rw- was opened as group 0).
 *   <li>So does the file system every file and directory on the way is on ({@link #filesystem}),
 *       once per file system: a block device's source as behind a device (a loop device's backing
 *       file, a partition's disk, a stacked device's devices, its node's owner and mode but group
 *       disk, root's equal), a FUSE file system's server ({@code user_id=}), nothing for a
 *       kernel-local one (tmpfs, proc …), and everyone for any other (NFS, CIFS, 9p, virtiofs,
 *       overlay, unknown): the owners and modes a file system a user built vouch for nothing
 *       (audit11 F1: root mounted a user's ext4 image and backed up a qcow2 on it that claimed to
 *       be root's, and its header named root's file).
 *   <li>The readers ({@link #readers(Writers)}) are one identity standing for all the writers: one
 *       user is himself; one group whose members include every such user is the stand-in user with
 *       that group alone; anything more is the stand-in user and group ({@link #STAND_IN}). The
 *       image and every file behind it (its backing chain, its extents) are opened as them ({@link
 *       FileCredentials}): the kernel decides, ACLs included, on the very files opened, whatever
 *       links are swapped meanwhile.
 *   <li>The files an image read ({@link DiskImage#files}) are judged too, each on its own way as
 *       the image names it: if one of them can be changed by anyone the identity used does not
 *       stand for, the whole image is opened again as the identity of all their writers together,
 *       until that identity stands for every writer of every file it opened (audit10 F-C: a root
 *       overlay in a root-only directory over a base image in a user's directory was opened wholly
 *       as root, and the user made his base image a link to root's file). What a user could change
 *       at the open he can still change when the files are judged (a directory he can write stays
 *       his, a link he owns stays his), so a swap meanwhile only makes him a writer.
 *   <li>Where identities cannot be switched (no native library, or a capable non-root process
 *       without CAP_SETUID/CAP_SETGID), the files the image names are checked by name after the
 *       open: readable by the readers of all their writers by mode bits, every directory above
 *       searchable.
 * </ul>
 *
 * A backup by an unprivileged user, or of an image and files root alone can change, reads only what
 * its user can read anyway.
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

  private static final String IMAGE = "the image";

  private static final int MAX_LINKS = 40;

  /** How deep devices may be stacked (a loop device over a file on a loop device …). */
  private static final int MAX_STACK = 8;

  /** How often an image is opened again as a narrower identity before the backup gives up. */
  private static final int MAX_REOPENS = 8;

  private SourceAccess() {}

  /**
   * Who may choose what an image reads, as one identity: {@code who} names them in messages, as
   * "uid 1001, the image's owner" does.
   */
  record Readers(FileCredentials.Identity identity, String who, String them, String fix) {}

  /**
   * Who can change what an image reads: users (other than root and this process's user) and groups,
   * each with the first reason found, in words; {@code everyone}, why everyone can, or null.
   */
  static final class Writers {
    final Map<Integer, String> users = new TreeMap<>();
    final Map<Integer, String> groups = new TreeMap<>();
    String everyone;
    private final int self = io.granule.engine.internal.net.PeerUser.self();

    private final Set<Integer> owners = new HashSet<>();

    /** The file systems ({@code st_dev}) whose sources were judged already. */
    private final Set<Long> filesystems = new HashSet<>();

    /** Whether file system {@code dev}'s source is still to be judged (once per judgement). */
    boolean firstOn(long dev) {
      return filesystems.add(dev);
    }

    void user(int uid, String why) {
      if (uid != 0 && uid != self) {
        users.putIfAbsent(uid, why);
      }
    }

    /** A file's owner: named so rather than by a directory of his found on the way to it. */
    void owner(int uid, String why) {
      if (uid != 0 && uid != self && owners.add(uid)) {
        users.put(uid, why);
      }
    }

    void group(int gid, String why) {
      groups.putIfAbsent(gid, why);
    }

    void everyone(String why) {
      if (everyone == null) {
        everyone = why;
      }
    }

    void addAll(Writers o) {
      o.users.forEach(users::putIfAbsent);
      owners.addAll(o.owners);
      filesystems.addAll(o.filesystems);
      o.groups.forEach(groups::putIfAbsent);
      if (o.everyone != null) {
        everyone(o.everyone);
      }
    }

    Writers copy() {
      Writers w = new Writers();
      w.addAll(this);
      return w;
    }

    boolean isEmpty() {
      return users.isEmpty() && groups.isEmpty() && everyone == null;
    }

    /** Whether the readers of these writers stand for {@code o}'s too. */
    boolean covers(Writers o) {
      return everyone != null
          || (o.everyone == null
              && users.keySet().containsAll(o.users.keySet())
              && groups.keySet().containsAll(o.groups.keySet()));
    }
  }

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
   * Opens {@code disk} with {@code opener} as the readers of everyone who can change it and the
   * files it reads (see the class comment), and checks the files it reads by name where that cannot
   * be done.
   *
   * @throws SourceUnreadableException (exit code 6) naming a file the readers cannot read
   */
  public static <T extends DiskImage> T open(Path disk, Opener<T> opener) throws IOException {
    if (!Privilege.readsAnyFile()) {
      return opener.open();
    }
    Writers writers;
    try {
      writers = writers(disk);
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
    boolean switches = FileCredentials.unavailableReason() == null;
    for (int round = 0; ; round++) {
      Readers readers = readers(writers);
      T img = readers == null || !switches ? opener.open() : openAs(disk, opener, readers);
      try {
        Writers all = withFiles(disk, img.files(), writers);
        if (!switches) {
          Readers them = readers(all);
          if (them != null) {
            check(disk, img.files(), them);
          }
          return img;
        }
        if (writers.covers(all)) {
          return img; // every file it opened is one only those it was opened as can change
        }
        if (round >= MAX_REOPENS) {
          throw new SourceUnreadableException(
              "'"
                  + disk
                  + "' refused: the files it reads changed each time it was opened (opened "
                  + (round + 1)
                  + " times, as the readers of who could change them)");
        }
        writers = all; // opened again, as those who can change the files it reads too
      } catch (IOException | RuntimeException e) {
        img.close();
        throw e;
      }
      img.close();
    }
  }

  private static <T extends DiskImage> T openAs(Path disk, Opener<T> opener, Readers readers)
      throws IOException {
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

  /** {@code writers} and the writers of {@code files} (but {@code disk}), each on its way. */
  private static Writers withFiles(Path disk, List<Path> files, Writers writers)
      throws IOException {
    Writers all = writers.copy();
    for (Path f : files) {
      if (f.equals(disk)) {
        continue;
      }
      try {
        walk(f, "'" + f + "', a file the image reads", all, 0);
      } catch (java.nio.file.FileSystemException e) {
        throw new SourceUnreadableException(
            "'"
                + f
                + "', a file '"
                + disk
                + "' reads (a backing file or an extent), changed while it was opened ("
                + (e.getReason() == null ? e.getClass().getSimpleName() : e.getReason())
                + " now): who can change it cannot be told. Try again");
      }
    }
    return all;
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
   * the readers of {@code disk}'s and their writers could not read, by name (see the class
   * comment).
   *
   * @throws SourceUnreadableException (exit code 6) naming the file and the readers
   */
  public static void checkFiles(Path disk, List<Path> files) throws IOException {
    if (!Privilege.readsAnyFile() || files.size() <= 1) {
      return;
    }
    Readers readers = readers(withFiles(disk, files, writers(disk)));
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

  /** Who can change what {@code disk} names (see the class comment). */
  static Writers writers(Path disk) throws IOException {
    Writers w = new Writers();
    walk(disk, IMAGE, w, 0);
    return w;
  }

  /** The readers of who can change what {@code disk} names: {@code readers(writers(disk))}. */
  static Readers readers(Path disk) throws IOException {
    return readers(writers(disk));
  }

  private static Map<String, Object> lstat(Path p) throws IOException {
    return Files.readAttributes(p, "unix:uid,gid,mode,rdev,dev", LinkOption.NOFOLLOW_LINKS);
  }

  /**
   * Adds to {@code w} who can change what {@code path} leads to ({@code role} names it in words):
   * its path resolved as the kernel does, one component at a time, links followed by hand, every
   * directory on the way, every link and the file judged (see the class comment); {@code depth}
   * devices down a stack.
   */
  static void walk(Path path, String role, Writers w, int depth) throws IOException {
    if (depth > MAX_STACK) {
      w.everyone("devices are stacked more than " + MAX_STACK + " deep under " + role);
      return;
    }
    Path abs = path.toAbsolutePath();
    Path root = abs.getRoot();
    java.util.Deque<String> rest = new java.util.ArrayDeque<>();
    for (Path part : abs) {
      rest.add(part.toString());
    }
    Path at = root;
    int links = 0;
    while (!rest.isEmpty()) {
      String name = rest.removeFirst();
      if (name.isEmpty() || name.equals(".")) {
        continue;
      }
      if (name.equals("..")) {
        at = at.getParent() == null ? at : at.getParent();
        continue;
      }
      // whoever can change this directory's entries chooses what the name leads to
      Map<String, Object> d = lstat(at);
      int mode = (Integer) d.get("mode");
      w.user((Integer) d.get("uid"), "who owns a directory above " + role);
      if ((mode & 01000) == 0) { // sticky: only the owners of its entries (counted) rename them
        writable(at, d, role + " or a directory above it", w, -1);
      }
      filesystem(at, d, role, w, depth);
      Path next = at.resolve(name);
      Map<String, Object> e = lstat(next);
      if (((Integer) e.get("mode") & 0170000) == 0120000) {
        // a link: its owner chooses where it leads (its mode means nothing)
        w.user((Integer) e.get("uid"), "who owns a link on the way to " + role);
        if (++links > MAX_LINKS) {
          throw new java.nio.file.FileSystemException(
              path.toString(), null, "Too many levels of symbolic links");
        }
        Path target = Files.readSymbolicLink(next);
        List<String> parts = new java.util.ArrayList<>();
        for (Path part : target) {
          parts.add(part.toString());
        }
        for (int i = parts.size() - 1; i >= 0; i--) {
          rest.addFirst(parts.get(i));
        }
        if (target.isAbsolute()) {
          at = root;
        }
        continue;
      }
      at = next;
    }
    Map<String, Object> f = lstat(at);
    int mode = (Integer) f.get("mode");
    w.owner((Integer) f.get("uid"), role.equals(IMAGE) ? "the image's owner" : "who owns " + role);
    if ((mode & 0170000) != 0040000) {
      writable(at, f, role + " or a directory above it", w, -1);
    }
    filesystem(at, f, role, w, depth);
    if ((mode & 0170000) == 0060000) {
      behindDevice(at, (Long) f.get("rdev"), w, depth);
    }
  }

  /**
   * Counts the group and everyone if {@code a}'s mode lets them write {@code p} (but group {@code
   * ignored}), and the users and groups its access ACL lets write it: where there is one, the
   * mode's group bits are its mask, and the owning group writes only if its own entry does. An ACL
   * that cannot be read or makes no sense lets everyone write.
   */
  private static void writable(Path p, Map<String, Object> a, String what, Writers w, int ignored) {
    int mode = (Integer) a.get("mode");
    int gid = (Integer) a.get("gid");
    PosixAcl acl;
    try {
      acl = PosixAcl.of(p);
    } catch (IOException e) {
      w.everyone("the ACL of '" + p + "' cannot be read (" + e.getMessage() + ")");
      return;
    }
    boolean groupWrites = acl == null ? (mode & 0020) != 0 : acl.owningGroupWrites();
    if (groupWrites && gid != ignored) {
      w.group(gid, "which can write " + what);
    }
    if ((mode & 0002) != 0) {
      w.everyone("everyone can write " + what);
    }
    if (acl != null) {
      for (int u : acl.writingUsers()) {
        w.user(u, "whom an ACL lets write " + what);
      }
      for (int g : acl.writingGroups()) {
        if (g != ignored) {
          w.group(g, "which an ACL lets write " + what);
        }
      }
    }
  }

  /**
   * Adds who can change what is behind block device {@code dev}: a loop device's backing file, a
   * partition's whole disk, a stacked device's devices; a virtual device whose source cannot be
   * told is everyone's.
   */
  private static void behindDevice(Path dev, long rdev, Writers w, int depth) {
    String majMin = io.granule.engine.internal.image.BlockDeviceClaim.majorMinorOf(rdev);
    otherNodes(dev, rdev, w, -1);
    Path sys;
    try {
      sys = Path.of("/sys/dev/block", majMin).toRealPath();
    } catch (IOException e) {
      w.everyone("what is behind '" + dev + "' cannot be told (no /sys/dev/block/" + majMin + ")");
      return;
    }
    behind("'" + dev + "'", sys, false, w, depth);
  }

  /**
   * Adds who can change what is behind the block device sysfs shows at {@code sys} ({@code what}
   * names it, quoted): a loop device's backing file, a partition's whole disk, a stacked device's
   * devices; a virtual device whose source cannot be told is everyone's. {@code mounted}: the
   * device holds a mounted file system, and the devices under it are judged as {@link
   * #mountedDevice} judges it; else by their nodes' way and modes, as a disk named for a backup is.
   */
  private static void behind(String what, Path sys, boolean mounted, Writers w, int depth) {
    String name = sys.getFileName().toString();
    try {
      if (Files.isRegularFile(sys.resolve("partition"))) {
        Path whole = Path.of("/dev", sys.getParent().getFileName().toString());
        String role = "'" + whole + "', the disk " + what + " is a partition of";
        if (mounted) {
          mountedDevice(sys.getParent(), role, w, depth + 1);
        } else {
          walk(whole, role, w, depth + 1);
        }
        return;
      }
      String backing = io.granule.engine.internal.image.BlockDeviceClaim.backingFileName(sys);
      if (backing != null) {
        // sysfs shows a name in the mount namespace that set the loop device up, " (deleted)"
        // added if it was removed: judged only if it leads here to the very file the kernel reads
        // (audit11 F2, F5), before and after its way is walked
        String why = notTheBackingFile(name, backing);
        if (why == null) {
          walk(Path.of(backing), "'" + backing + "', the file behind " + what, w, depth + 1);
          why = notTheBackingFile(name, backing);
        }
        if (why != null) {
          w.everyone(
              "the file behind " + what + ", '" + backing + "', cannot be judged (" + why + ")");
        }
        return;
      }
      List<String> slaves = new java.util.ArrayList<>();
      if (Files.isDirectory(sys.resolve("slaves"))) {
        try (var entries = Files.newDirectoryStream(sys.resolve("slaves"))) {
          for (Path s : entries) {
            slaves.add(s.getFileName().toString());
          }
        }
      }
      for (String s : new java.util.TreeSet<>(slaves)) {
        Path under = Path.of("/dev", s);
        String role = "'" + under + "', a device under " + what;
        if (mounted) {
          mountedDevice(sys.resolve("slaves").resolve(s).toRealPath(), role, w, depth + 1);
        } else {
          walk(under, role, w, depth + 1);
        }
      }
      if (slaves.isEmpty()
          && sys.toString().startsWith("/sys/devices/virtual/")
          && !name.startsWith("loop")
          && !name.startsWith("zram")
          && !name.startsWith("ram")) {
        // nbd, ublk, drbd, a device-mapper device over nothing it names: served by someone
        w.everyone("what is behind " + what + " (" + name + ") cannot be told");
      }
    } catch (IOException | RuntimeException e) {
      w.everyone("what is behind " + what + " (" + name + ") cannot be told (" + e + ")");
    }
  }

  /**
   * Why {@code backing}, the name sysfs shows for the file behind loop device {@code loop} ({@code
   * loop1}), is not here the file the kernel reads through it (by device and inode, as {@code
   * losetup} asks the kernel), or null if it is: the name is one in the mount namespace that set
   * the loop device up (a container's, a service's with BindPaths=), where it may lead to a user's
   * file while here it leads to root's; a removed file's name ends in " (deleted)", and a file of
   * that name may be another.
   */
  private static String notTheBackingFile(String loop, String backing) {
    if (!backing.startsWith("/")) {
      return "no path";
    }
    var kernel = io.granule.engine.internal.image.BlockDeviceClaim.loopDevice(loop);
    if (kernel == null) {
      return "the device and inode of the file the kernel reads cannot be asked (losetup --list"
          + " --json)";
    }
    Map<String, Object> here;
    try {
      here = Files.readAttributes(Path.of(backing), "unix:dev,ino");
    } catch (IOException | RuntimeException e) {
      return "not there in this mount namespace: deleted, or out of reach";
    }
    String devHere =
        io.granule.engine.internal.image.BlockDeviceClaim.majorMinorOf((Long) here.get("dev"));
    long inoHere = ((Number) here.get("ino")).longValue();
    if (!devHere.equals(kernel.backingMajMin()) || inoHere != kernel.backingIno()) {
      return "the name leads here to another file (device "
          + devHere
          + ", inode "
          + inoHere
          + ") than the one the kernel reads (device "
          + kernel.backingMajMin()
          + ", inode "
          + kernel.backingIno()
          + "): the loop device was set up in another mount namespace, or its file was deleted"
          + " or replaced";
    }
    return null;
  }

  /** How many entries of /dev {@link #otherNodes} looks at before it counts everyone. */
  private static final int MAX_DEV_ENTRIES = 100_000;

  /**
   * Adds the writers of the other block device nodes for {@code rdev} under /dev, but group {@code
   * ignored} (audit11 F4: a udev OWNER= rule, or a VM manager, makes a node of a disk a user may
   * write, and he wrote a header through it onto root's 0600 device). The file systems mounted
   * under /dev (shm, pts, mqueue) are not looked at. Nodes elsewhere and open descriptors cannot be
   * found: a device is read as raw unless its format is given for that ({@code
   * ImageInspector#detect}).
   */
  private static void otherNodes(Path dev, long rdev, Writers w, int ignored) {
    Path top = Path.of("/dev");
    Object fs;
    try {
      fs = Files.getAttribute(top, "unix:dev", LinkOption.NOFOLLOW_LINKS);
    } catch (IOException | RuntimeException e) {
      return; // no /dev: no nodes but the one named
    }
    java.util.Deque<Path> dirs = new java.util.ArrayDeque<>(List.of(top));
    int seen = 0;
    String majMin = io.granule.engine.internal.image.BlockDeviceClaim.majorMinorOf(rdev);
    while (!dirs.isEmpty()) {
      Path dir = dirs.removeFirst();
      try (var entries = Files.newDirectoryStream(dir)) {
        for (Path e : entries) {
          if (++seen > MAX_DEV_ENTRIES) {
            w.everyone(
                "/dev holds more than "
                    + MAX_DEV_ENTRIES
                    + " entries: the nodes of '"
                    + dev
                    + "' cannot all be found");
            return;
          }
          Map<String, Object> a;
          try {
            a = Files.readAttributes(e, "unix:uid,gid,mode,rdev,dev", LinkOption.NOFOLLOW_LINKS);
          } catch (IOException | RuntimeException x) {
            continue; // gone meanwhile
          }
          int type = (Integer) a.get("mode") & 0170000;
          if (type == 0040000) {
            if (fs.equals(a.get("dev"))) {
              dirs.add(e);
            }
          } else if (type == 0060000 && ((Long) a.get("rdev")) == rdev) {
            String role = "'" + e + "', a node of device " + majMin + " as '" + dev + "' is";
            w.user((Integer) a.get("uid"), "who owns " + role);
            writable(e, a, role, w, ignored);
          }
        }
      } catch (IOException | RuntimeException x) {
        // a directory not read (gone, denied): its nodes are not counted
      }
    }
  }

  /**
   * Adds who can change the file system on the block device sysfs shows at {@code sys} ({@code
   * what} names it): the owner of its node in /dev and a group or everyone its mode or ACL lets
   * write it, but group disk, and what is behind it ({@link #behind}). Group disk can read and
   * write every disk, as root can (root-equivalent): counted, it would make every file on a
   * root:disk 0660 disk (the usual /dev/sda) its group's, and every root backup of root's images
   * would be read as the stand-in. Its other nodes under /dev count the same way ({@link
   * #otherNodes}).
   */
  private static void mountedDevice(Path sys, String what, Writers w, int depth) {
    if (depth > MAX_STACK) {
      w.everyone("devices are stacked more than " + MAX_STACK + " deep under " + what);
      return;
    }
    Path node = Path.of("/dev", sys.getFileName().toString());
    try {
      Map<String, Object> n = lstat(node);
      if (((Integer) n.get("mode") & 0170000) == 0060000) {
        w.user((Integer) n.get("uid"), "who owns " + what);
        int disk = diskGroup();
        writable(node, n, what, w, disk);
        otherNodes(node, (Long) n.get("rdev"), w, disk);
      }
    } catch (IOException e) {
      // no node of its name in /dev: what is behind it is judged
    }
    behind(what, sys, true, w, depth);
  }

  /** Group disk's id, from /etc/group, or -1. */
  private static int diskGroup() {
    try {
      for (String line : Files.readAllLines(Path.of("/etc/group"), StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 2 && f[0].equals("disk")) {
          return Integer.parseInt(f[2]);
        }
      }
    } catch (IOException | NumberFormatException e) {
      // none: its nodes' group counts as any group does
    }
    return -1;
  }

  /**
   * File systems whose files live in the kernel's memory alone (or are the kernel's): their owners
   * and modes are the only ones to judge.
   */
  private static final Set<String> KERNEL_LOCAL =
      Set.of(
          "tmpfs",
          "ramfs",
          "devtmpfs",
          "proc",
          "sysfs",
          "devpts",
          "cgroup",
          "cgroup2",
          "mqueue",
          "hugetlbfs",
          "securityfs",
          "debugfs",
          "tracefs",
          "configfs",
          "pstore",
          "bpf",
          "efivarfs",
          "binfmt_misc",
          "autofs",
          "rpc_pipefs",
          "nsfs",
          "fusectl",
          "selinuxfs");

  /** A line of /proc/self/mountinfo: where, what kind, from what, its super block's options. */
  record Mount(String majMin, Path point, String type, String source, String options) {}

  /**
   * Adds who can change the file system {@code p} (lstat as {@code a}) is on, once per file system
   * in a judgement (F1, audit11: the owners and modes on a file system a user built vouch for
   * nothing; root mounted his ext4 image and backed up a qcow2 on it claiming to be root's, and his
   * header's backing file, root's, was stored). A block device: {@link #mountedDevice}. Else, by
   * /proc/self/mountinfo: a kernel-local one adds nothing, a FUSE one its server's user ({@code
   * user_id=}; served by root: everyone, as what it serves from cannot be told), one over a block
   * device (btrfs, fuseblk) its devices, and any other (NFS, CIFS, 9p, virtiofs, overlay, unknown)
   * everyone.
   */
  private static void filesystem(Path p, Map<String, Object> a, String role, Writers w, int depth) {
    long dev = (Long) a.get("dev");
    if (!w.firstOn(dev)) {
      return;
    }
    String majMin = io.granule.engine.internal.image.BlockDeviceClaim.majorMinorOf(dev);
    String on = "the file system " + role + " is on";
    if (!majMin.startsWith("0:")) {
      try {
        Path sys = Path.of("/sys/dev/block", majMin).toRealPath();
        mountedDevice(sys, "'/dev/" + sys.getFileName() + "', which holds " + on, w, depth + 1);
      } catch (IOException e) {
        w.everyone("the device of " + on + " cannot be told (no /sys/dev/block/" + majMin + ")");
      }
      return;
    }
    Mount m;
    try {
      m = mountOf(majMin, p);
    } catch (IOException e) {
      w.everyone(on + " cannot be told (/proc/self/mountinfo: " + e.getMessage() + ")");
      return;
    }
    if (m == null) {
      w.everyone(on + " (" + majMin + ") is not in /proc/self/mountinfo");
      return;
    }
    if (KERNEL_LOCAL.contains(m.type())) {
      return;
    }
    String at = "the " + m.type() + " file system at '" + m.point() + "'";
    boolean fuse = m.type().equals("fuse") || m.type().startsWith("fuse.");
    if (fuse || m.type().equals("fuseblk")) {
      Integer server = numericOption(m.options(), "user_id");
      if (server == null) {
        w.everyone("who serves " + at + " cannot be told (no user_id=)");
        return;
      }
      if (server == 0 && fuse) {
        // audit14 F3: root's fuse2fs over a user's ext4 image served his files as root's; what a
        // FUSE server reads, and who can change that, cannot be told (its source is any string)
        w.everyone(
            at
                + " is served by root, from what no one can judge (a FUSE server reads whatever"
                + " it likes, a user's image too)");
        return;
      }
      w.user(server, "who serves " + at + " (" + role + " is on it)");
      if (fuse) {
        return;
      }
    }
    List<Path> devices = sourceDevices(m);
    if (devices == null) {
      w.everyone(at + " (from '" + m.source() + "') is served from where no one can judge");
      return;
    }
    for (Path sys : devices) {
      mountedDevice(
          sys,
          "'/dev/" + sys.getFileName() + "', which holds " + at + " (" + role + " is on it)",
          w,
          depth + 1);
    }
  }

  /**
   * The sysfs directories of the block devices {@code m} is mounted from (a btrfs file system's
   * every device), or null if its source is no block device.
   */
  private static List<Path> sourceDevices(Mount m) {
    if (!m.source().startsWith("/")) {
      return null;
    }
    Path sys;
    try {
      Map<String, Object> a = Files.readAttributes(Path.of(m.source()), "unix:mode,rdev");
      if (((Integer) a.get("mode") & 0170000) != 0060000) {
        return null;
      }
      sys =
          Path.of(
                  "/sys/dev/block",
                  io.granule.engine.internal.image.BlockDeviceClaim.majorMinorOf(
                      (Long) a.get("rdev")))
              .toRealPath();
    } catch (IOException e) {
      return null;
    }
    if (!m.type().equals("btrfs")) {
      return List.of(sys);
    }
    try (var fss = Files.newDirectoryStream(Path.of("/sys/fs/btrfs"))) {
      for (Path fs : fss) {
        if (!Files.isDirectory(fs.resolve("devices"))) {
          continue;
        }
        List<Path> all = new java.util.ArrayList<>();
        try (var devs = Files.newDirectoryStream(fs.resolve("devices"))) {
          for (Path d : devs) {
            all.add(d.toRealPath());
          }
        }
        if (all.contains(sys)) {
          return all;
        }
      }
    } catch (IOException e) {
      return null; // its other devices cannot be told
    }
    return List.of(sys);
  }

  /** The value of option {@code name=} in a mount's comma-separated options, if numeric. */
  private static Integer numericOption(String options, String name) {
    for (String o : options.split(",")) {
      if (o.startsWith(name + "=")) {
        try {
          return Integer.parseInt(o.substring(name.length() + 1));
        } catch (NumberFormatException e) {
          return null;
        }
      }
    }
    return null;
  }

  /**
   * The mount of file system {@code majMin} in /proc/self/mountinfo, or else (a btrfs subvolume has
   * a number of its own) the one with the longest mount point above {@code p}; null if none.
   */
  static Mount mountOf(String majMin, Path p) throws IOException {
    Path abs = p.toAbsolutePath().normalize();
    Mount longest = null;
    for (String line :
        io.granule.engine.internal.image.MountInfo.lines(
            io.granule.engine.internal.image.MountInfo.SELF)) {
      Mount m = mount(line);
      if (m == null) {
        continue;
      }
      if (m.majMin().equals(majMin)) {
        return m;
      }
      if (abs.startsWith(m.point())
          && (longest == null || m.point().getNameCount() >= longest.point().getNameCount())) {
        longest = m; // a later mount on the same point covers an earlier one
      }
    }
    return longest;
  }

  /**
   * One line of /proc/self/mountinfo ({@code ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS] - TYPE
   * SOURCE SUPER_OPTIONS}), or null if it has another form.
   */
  static Mount mount(String line) {
    String[] f = line.split(" ");
    int dash = -1;
    for (int i = 6; i < f.length; i++) {
      if (f[i].equals("-")) {
        dash = i;
        break;
      }
    }
    if (f.length < 6 || dash < 0 || f.length < dash + 4) {
      return null;
    }
    return new Mount(
        f[2], Path.of(unescape(f[4])), unescape(f[dash + 1]), unescape(f[dash + 2]), f[dash + 3]);
  }

  /** A mountinfo field with its octal escapes ({@code \040} for a space …) undone. */
  static String unescape(String field) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < field.length(); i++) {
      char c = field.charAt(i);
      if (c == '\\'
          && i + 3 < field.length()
          && field.substring(i + 1, i + 4).chars().allMatch(d -> d >= '0' && d <= '7')) {
        b.append((char) Integer.parseInt(field.substring(i + 1, i + 4), 8));
        i += 3;
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  /**
   * One identity standing for {@code w}, or null if no one but root (and this process's user) can
   * change anything: one user is himself; one group (whose members include every such user) is the
   * stand-in user of no group but it; anything more is everyone: the stand-in user and group.
   */
  static Readers readers(Writers w) throws IOException {
    if (w.isEmpty()) {
      return null;
    }
    String fixAll =
        "Make the image, the files it reads and the directories above them writable by"
            + " root alone";
    if (w.everyone == null && w.groups.isEmpty() && w.users.size() == 1) {
      var only = w.users.entrySet().iterator().next();
      int u = only.getKey();
      Set<Integer> his = groupsOf(u);
      int[] g = his.stream().mapToInt(Integer::intValue).toArray();
      boolean image =
          only.getValue().equals("the image's owner") || only.getValue().endsWith(" " + IMAGE);
      return new Readers(
          new FileCredentials.Identity(u, primaryGroupOf(u), g),
          "uid " + u + ", " + only.getValue(),
          "him",
          image
              ? "Back it up as that user, or let him read it"
              : "Keep the files the image reads where root alone can change them, or back it up"
                  + " as that user");
    }
    standInUnlisted();
    if (w.everyone == null && w.groups.size() == 1) {
      var only = w.groups.entrySet().iterator().next();
      int g = only.getKey();
      if (w.users.keySet().stream().allMatch(u -> groupsOf(u).contains(g))) {
        return new Readers(
            new FileCredentials.Identity(STAND_IN, g, new int[] {g}),
            "group " + g + " alone, " + only.getValue(),
            "its members",
            fixAll + ", or let the group read it");
      }
    }
    return new Readers(
        new FileCredentials.Identity(STAND_IN, STAND_IN, new int[0]),
        "everyone, and "
            + (w.everyone != null
                ? w.everyone
                : String.join(
                    "; ",
                    java.util.stream.Stream.concat(
                            w.users.entrySet().stream()
                                .map(e -> "uid " + e.getKey() + ", " + e.getValue()),
                            w.groups.entrySet().stream()
                                .map(e -> "group " + e.getKey() + ", " + e.getValue()))
                        .toList())),
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

  /**
   * Who besides user {@code self} (and root) can write {@code p} (not through a link at its last
   * component), of group {@code gid} and mode {@code mode}: everyone, a group with other members
   * ({@link #othersIn}), or a user or such a group an access ACL lets write (where there is one,
   * the mode's group bits are its mask, and the owning group writes only if its own entry does); or
   * null. An ACL that cannot be read counts as letting everyone write.
   */
  public static String othersWriting(Path p, int gid, int mode, int self) {
    if ((mode & 0002) != 0) {
      return "everyone";
    }
    PosixAcl acl;
    try {
      acl = PosixAcl.of(p);
    } catch (IOException e) {
      return "anyone (its ACL cannot be read: " + e.getMessage() + ")";
    }
    boolean groupWrites = acl == null ? (mode & 0020) != 0 : acl.owningGroupWrites();
    if (groupWrites && othersIn(gid, self)) {
      return "group " + gid + ", which has other members,";
    }
    if (acl != null) {
      for (int u : acl.writingUsers()) {
        if (u != self && u != 0) {
          return "uid " + u + " (an ACL entry)";
        }
      }
      for (int g : acl.writingGroups()) {
        if (othersIn(g, self)) {
          return "group " + g + " (an ACL entry), which has other members,";
        }
      }
    }
    return null;
  }

  /**
   * Whether group {@code gid} may have a member other than user {@code self}: it does unless it is
   * his own group, his user private group (the scheme of umask 002; root's group 0 for root): his
   * primary group in /etc/passwd, named as he is in /etc/group, with no other member listed there
   * and no other user's primary group. Root's group 0 is no exception (audit M: with {@code
   * root:x:0:gu1}, a member rewrote a group-writable repository's config and root's backup was
   * stored in the clear); where system users have it as their primary group (RHEL's sync, shutdown,
   * halt), a root repository its group can write is refused (audit L7, said so). Any other group
   * counts as having others, even one /etc/group lists without members: a process also gets groups
   * /etc/group does not show (PAM's pam_group, systemd-userdb, sssd or LDAP, a container's added
   * groups), so an empty member list proves nothing (audit L4: a repository shared with such a
   * group was downgraded by a member, and root's backup stored in the clear).
   */
  public static boolean othersIn(int gid, int self) {
    return othersIn(gid, self, Path.of("/etc/passwd"), Path.of("/etc/group"));
  }

  /** {@link #othersIn(int, int)} with these files for /etc/passwd and /etc/group. */
  static boolean othersIn(int gid, int self, Path passwd, Path group) {
    String selfName = null;
    int selfGroup = -1;
    try {
      for (String line : Files.readAllLines(passwd, StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 3 && f[2].equals(Integer.toString(self))) {
          selfName = f[0];
          selfGroup = Integer.parseInt(f[3]);
        } else if (f.length > 3 && f[3].equals(Integer.toString(gid))) {
          return true;
        }
      }
      if (selfName == null || selfGroup != gid) {
        return true;
      }
      for (String line : Files.readAllLines(group, StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 3 && f[2].equals(Integer.toString(gid))) {
          if (!f[0].equals(selfName)) {
            return true;
          }
          for (String m : f[3].split(",")) {
            if (!m.isEmpty() && !m.equals(selfName)) {
              return true;
            }
          }
          return false;
        }
      }
    } catch (IOException | NumberFormatException e) {
      return true; // not known: as others
    }
    return true; // not listed: its members cannot be told
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
