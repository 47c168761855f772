package io.granule.engine.internal.cli;

import io.granule.engine.internal.image.BlockDeviceClaim;
import io.granule.engine.internal.image.LeasedDiskImageWriter;
import io.granule.engine.internal.image.RawFormat;
import io.granule.engine.internal.ops.DirectoryHandle;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.backup.RestoreListener;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Restoring one disk of a snapshot to a file or block device: what {@code granule restore disk} and
 * {@code POST /api/restores/disk} do. {@link #prepare} checks the target before any repository is
 * opened; {@link #run} writes it. A new file is written as FILE.partial and renamed once complete
 * and synced, so a failed restore never leaves a file that looks whole; a file that exists (with
 * {@code force} only) is replaced the same way, keeping its owner and mode, so a failed restore
 * leaves it as it was. A block device, and a raw file with {@code inPlace}, are written in place: a
 * failure then leaves them part restored (the message says so). Failures are {@link
 * CommandException}s with their exit code, or the repository's own exceptions.
 */
public final class DiskRestore {
  /** The extensions that choose a format when none is given. */
  private static final Map<String, String> EXTENSIONS =
      Map.of(".qcow2", "qcow2", ".vmdk", "vmdk", ".vhdx", "vhdx");

  private final PluginLeases<DiskImageFormat> formats;
  private final Path to;
  private final String format;
  private final String why;
  private final boolean exists;
  private final boolean device; // an existing target that was a block device when prepared
  // an existing raw file written in place (--in-place) rather than replaced by FILE.partial
  private boolean inPlace;
  // set once an in-place restore has written its target: a failure then left it part restored
  private volatile boolean touched;
  // the target directory's device and inode as resolved when the restore ran (SafePath), or null
  private Object dirIdentity;

  private DiskRestore(
      PluginLeases<DiskImageFormat> formats, Path to, String format, String why, boolean exists) {
    this(formats, to, format, why, exists, exists && isBlockDevice(to));
  }

  private DiskRestore(
      PluginLeases<DiskImageFormat> formats,
      Path to,
      String format,
      String why,
      boolean exists,
      boolean device) {
    this.formats = formats;
    this.to = to;
    this.format = format;
    this.why = why;
    this.exists = exists;
    this.device = device;
  }

  /**
   * Checks the target {@code to} and chooses its format: {@code format} if given, else by the
   * extension, else raw. An existing target needs {@code force}; a directory is refused, and so is
   * an image format for a block device.
   */
  public static DiskRestore prepare(
      PluginLeases<DiskImageFormat> formats, Path to, boolean force, String format) {
    return prepare(formats, to, force, format, false);
  }

  /**
   * As {@link #prepare(PluginLeases, Path, boolean, String)}; {@code inPlace} writes an existing
   * raw file in place (no room needed for a second copy; a failure leaves it part restored) rather
   * than replacing it once the restored copy is complete.
   */
  public static DiskRestore prepare(
      PluginLeases<DiskImageFormat> formats,
      Path to,
      boolean force,
      String format,
      boolean inPlace) {
    try {
      io.granule.engine.internal.ops.ForeignLinks.refuse(to);
    } catch (IOException e) {
      throw new CommandException(ExitCodes.TARGET, e.getMessage(), e);
    }
    boolean exists = Files.exists(to, LinkOption.NOFOLLOW_LINKS);
    if (exists && Files.isDirectory(to)) {
      throw new CommandException(
          ExitCodes.TARGET, "restore target '" + to + "' is a directory: name a file");
    }
    if (exists && !force) {
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '" + to + "' exists: add --force to overwrite it, or choose another");
    }
    String chosen = format == null ? null : format.toLowerCase(Locale.ROOT);
    String why = "from --format";
    if (chosen == null) {
      String name = to.getFileName() == null ? "" : to.getFileName().toString();
      String lower = name.toLowerCase(Locale.ROOT);
      chosen = RawFormat.NAME;
      why = "the default";
      for (Map.Entry<String, String> e : EXTENSIONS.entrySet()) {
        if (lower.endsWith(e.getKey())) {
          chosen = e.getValue();
          why = "from the extension " + e.getKey();
        }
      }
    }
    boolean device = exists && !Files.isRegularFile(to);
    if (device && !isBlockDevice(to)) {
      // a FIFO would block the restore forever in open(2), a character device swallow it
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '"
              + to
              + "' is "
              + java.util.Objects.requireNonNullElse(
                  io.granule.engine.internal.image.ImageInspector.describeType(to),
                  "not a regular file") // null: changed as it was looked at
              + ", not a file or a block device: name a file or a block device");
    }
    if (device && !chosen.equals(RawFormat.NAME)) {
      throw new CommandException(
          ExitCodes.USAGE,
          "restore target '"
              + to
              + "' is a block device, which is written raw: drop --format "
              + chosen
              + ", or restore to a file");
    }
    if (!exists) {
      requireNotADeviceDirectory(to);
    }
    if (exists) {
      resolve(to); // a link to nothing is refused now
    }
    if (inPlace && !chosen.equals(RawFormat.NAME)) {
      throw new CommandException(
          ExitCodes.USAGE,
          "--in-place writes a raw disk over an existing file or device; a "
              + chosen
              + " image ("
              + why
              + ") is always written as '"
              + to
              + ".partial' and renamed: drop --in-place");
    }
    DiskRestore prepared = new DiskRestore(formats, to, chosen, why, exists);
    prepared.inPlace = inPlace && exists;
    return prepared;
  }

  /**
   * What a failed {@link #run} may have left, for the error output: a block device, or a file
   * written with {@code inPlace}, once writing began, may hold part of the restored disk; null if
   * the target was left as it was (a new or replaced file).
   */
  public String partRestoredNote() {
    if (!touched) {
      return null;
    }
    return "'"
        + to
        + "' was being written in place: it may now hold part of the restored disk and part of"
        + " what was there before; restore it again"
        + (device ? "" : " (without --in-place a failed restore leaves the file as it was)");
  }

  /**
   * Where an existing target's links lead (a /dev/disk/by-id name, an image behind a link): the
   * writers open that without following links again, so a link planted later is not followed.
   * Resolved when the restore runs, not when it was prepared (a server's job may wait for hours,
   * and disks can be renumbered meanwhile).
   */
  private static Path resolve(Path to) {
    try {
      return to.toRealPath();
    } catch (IOException e) {
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '"
              + to
              + "' is a symbolic link to nothing, or gone ("
              + e.getMessage()
              + "): remove it or name a file");
    }
  }

  /**
   * Refuses a new file in a device directory ({@code /dev}, devtmpfs): a device path that does not
   * exist (a partition node not created yet) would become a regular file in memory there.
   */
  private static void requireNotADeviceDirectory(Path to) {
    Path dir = to.toAbsolutePath().getParent();
    try {
      if (dir != null && "devtmpfs".equals(Files.getFileStore(dir).type())) {
        throw new CommandException(
            ExitCodes.TARGET,
            "restore target '"
                + to
                + "' does not exist, and "
                + dir
                + " holds devices, not files: name an existing device (is a partition's node"
                + " not created yet? see partx, udevadm settle)");
      }
    } catch (IOException e) {
      // a directory that does not exist: the restore fails on its own, naming it
    }
  }

  /**
   * Whether {@code p} is the lock file of a restore this process runs: code that opens files users
   * name (a server inspecting or backing up a file) must leave it alone, since closing any
   * descriptor of it drops the restore's lock.
   */
  public static boolean isRestoreLock(Path p) {
    return PartialFile.isHeld(p);
  }

  /** Whether {@code p} (links followed) is a block device. */
  static boolean isBlockDevice(Path p) {
    try {
      return (((Integer) Files.getAttribute(p, "unix:mode")) & 0170000) == 0060000;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /**
   * Refuses (exit code 7) a target inside the local repository {@code r} reads from: writing over
   * its own config, packs or indexes would destroy it. Inside is by identity, not by name: the
   * repository's directory reached through a bind mount or a link, a hard link of one of its files,
   * the block device its file system is on.
   */
  static void requireOutsideRepository(Repository r, Path target) {
    String location = r.store().location();
    if (location.startsWith("s3:")) {
      return;
    }
    Path root;
    Object rootKey;
    try {
      root = Path.of(location).toRealPath();
      rootKey = Files.readAttributes(root, "unix:dev,ino");
    } catch (IOException | RuntimeException e) {
      return; // not a local directory we can look at
    }
    Path abs = target.toAbsolutePath();
    Path real;
    try {
      real = abs.toRealPath();
    } catch (IOException e) {
      Path dir = abs.getParent();
      try {
        real = dir == null ? abs : dir.toRealPath().resolve(abs.getFileName());
      } catch (IOException | RuntimeException e2) {
        return; // a directory that does not exist: the restore fails on its own
      }
    }
    boolean inside =
        real.startsWith(root)
            || isInRepository(root, rootKey, real)
            || holdsRepository(root, real)
            || loopOverRepositoryFile(root, rootKey, real);
    if (inside) {
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '"
              + target
              + "' is inside the repository at '"
              + root
              + "' it restores from"
              + (real.startsWith(root)
                  ? ""
                  : " (through another name: a mount, a link or its device)")
              + ": name a file outside it");
    }
  }

  /**
   * Whether {@code target} is a loop device (or a partition of one) whose backing file is one of
   * the repository's files: writing it writes that file.
   */
  private static boolean loopOverRepositoryFile(Path root, Object rootKey, Path target) {
    if (!isBlockDevice(target)) {
      return false;
    }
    var partition = BlockDeviceClaim.partitionOf(target);
    Path loop = partition == null ? target : partition.getKey();
    Path file = BlockDeviceClaim.loopBackingFile(loop);
    try {
      return file != null
          && Files.exists(file)
          && (file.toRealPath().startsWith(root)
              || isInRepository(root, rootKey, file.toRealPath()));
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /**
   * Whether {@code target} or a directory above it is the repository's directory or one of its
   * directories or files, by identity: reached through a bind mount (of the repository, one of its
   * directories, or one file), a link or a hard link. Only what is on the repository's file system
   * is compared; the repository is walked only then.
   */
  private static boolean isInRepository(Path root, Object rootKey, Path target) {
    Object rootDev = ((Map<?, ?>) rootKey).get("dev");
    java.util.Set<Object> candidates = new java.util.HashSet<>();
    for (Path p = target; p != null; p = p.getParent()) {
      try {
        if (rootDev.equals(Files.getAttribute(p, "unix:dev"))) {
          candidates.add(
              Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class).fileKey());
        }
      } catch (IOException | RuntimeException e) {
        // not there yet
      }
    }
    candidates.remove(null);
    if (candidates.isEmpty()) {
      return false;
    }
    boolean[] found = {false};
    try {
      Files.walkFileTree(
          root,
          new java.nio.file.SimpleFileVisitor<>() {
            @Override
            public java.nio.file.FileVisitResult preVisitDirectory(
                Path dir, java.nio.file.attribute.BasicFileAttributes attrs) {
              return visit(attrs);
            }

            @Override
            public java.nio.file.FileVisitResult visitFile(
                Path file, java.nio.file.attribute.BasicFileAttributes attrs) {
              return visit(attrs);
            }

            @Override
            public java.nio.file.FileVisitResult visitFileFailed(Path file, IOException e) {
              return java.nio.file.FileVisitResult.CONTINUE;
            }

            private java.nio.file.FileVisitResult visit(
                java.nio.file.attribute.BasicFileAttributes attrs) {
              if (candidates.contains(attrs.fileKey())) {
                found[0] = true;
                return java.nio.file.FileVisitResult.TERMINATE;
              }
              return java.nio.file.FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException | RuntimeException e) {
      return found[0];
    }
    return found[0];
  }

  /** Whether {@code device} is the block device the repository's file system is on. */
  private static boolean holdsRepository(Path root, Path device) {
    try {
      if (!isBlockDevice(device)) {
        return false;
      }
      return Files.getAttribute(device, "unix:rdev").equals(Files.getAttribute(root, "unix:dev"));
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /** The format the target is written in. */
  public String format() {
    return format;
  }

  /**
   * The disk of {@code snap} named {@code diskName}, or its only disk when the name is null; a
   * snapshot of several disks needs the name.
   */
  public static String diskName(Manifest snap, String diskName) {
    if (diskName != null) {
      return diskName;
    }
    if (snap.disks().size() != 1) {
      throw new CommandException(
          ExitCodes.USAGE,
          "snapshot "
              + snap.id().substring(0, 12)
              + " has "
              + snap.disks().size()
              + " disks: name one as SNAP:DISK ("
              + String.join(", ", snap.disks().stream().map(Manifest.DiskEntry::name).toList())
              + ")");
    }
    return snap.disks().get(0).name();
  }

  /**
   * Restores disk {@code diskName} of {@code snap} to the target, reporting progress to {@code
   * progress} and what it chose (an image format) to {@code info}.
   */
  public RestoreResult run(
      Repository r, Manifest snap, String diskName, RestoreListener progress, Consumer<String> info)
      throws IOException {
    // resolved now (a server's job may have waited), once, component by component from a held
    // directory, links of other users refused: checked by name at prepare and resolved by name
    // here, the path could be flipped between the two to lead to a file of root's
    Path real;
    boolean blockDevice;
    Object identity;
    try (io.granule.engine.internal.ops.SafePath.Location at =
        io.granule.engine.internal.ops.SafePath.locate(to)) {
      if (exists && !at.exists()) {
        throw new CommandException(
            ExitCodes.TARGET,
            "restore target '"
                + to
                + "' is a symbolic link to nothing, or gone: remove it or name a file");
      }
      if (at.name() == null) {
        throw new CommandException(
            ExitCodes.TARGET,
            "the directory of restore target '"
                + to
                + "' is missing, or the target is a directory: create it, or name a file");
      }
      real = at.real();
      blockDevice = at.exists() && (at.mode() & 0170000) == 0060000;
      identity = at.dir().held() ? Files.readAttributes(at.dir().self(), "unix:dev,ino") : null;
    } catch (java.nio.file.FileSystemException e) {
      throw new CommandException(ExitCodes.TARGET, e.getMessage(), e);
    }
    if (!exists) {
      // a new file: written through its directory as resolved (another one there now is refused)
      dirIdentity = identity;
      return runChecked(r, snap, diskName, progress, info);
    }
    if (blockDevice != device) {
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '"
              + to
              + "' changed since the restore was prepared (it "
              + (device ? "was" : "was not")
              + " a block device): check it and restore again");
    }
    DiskRestore resolved = new DiskRestore(formats, real, format, why, true, device);
    resolved.dirIdentity = identity;
    resolved.inPlace = inPlace;
    try {
      return resolved.runChecked(r, snap, diskName, progress, info);
    } finally {
      touched = resolved.touched;
    }
  }

  /**
   * Locks a disk (a file or block device) a backup is about to read against restores writing it in
   * place meanwhile (see {@link PartialFile#lockForReading}).
   *
   * @return what releases the lock
   * @throws CommandException (exit code 6) if a restore is writing it
   */
  public static java.io.Closeable lockForReading(Path disk) throws IOException {
    return PartialFile.lockForReading(disk);
  }

  private RestoreResult runChecked(
      Repository r, Manifest snap, String diskName, RestoreListener progress, Consumer<String> info)
      throws IOException {
    String missing = io.granule.engine.internal.nativelib.NativeLibrary.unavailableReason();
    if (missing != null) {
      org.slf4j.LoggerFactory.getLogger(DiskRestore.class)
          .warn(
              "libgranule-native is not loaded ({}): the restore target's device claim, the lock"
                  + " on the file itself and its held directory fall back to checks by name",
              missing);
    }
    requireOutsideRepository(r, to);
    return format.equals(RawFormat.NAME)
        ? restoreRaw(r, snap, diskName, progress, info)
        : restoreImage(r, snap, diskName, progress, info);
  }

  /**
   * Writes the disk raw: a device, or an existing file with {@code inPlace}, in place; a new file
   * as FILE.partial, renamed to FILE once complete and synced (deleted on failure); an existing
   * file the same way, renamed over it keeping its owner and mode.
   */
  private RestoreResult restoreRaw(
      Repository r, Manifest snap, String diskName, RestoreListener progress, Consumer<String> info)
      throws IOException {
    if (exists && device) {
      // a block device is written in place, by one restore at a time whatever node names it,
      // and only while nothing has it mounted
      // a loop device writes its backing file: a backup reading that file (or the device) must
      // not see a mix of two disks, nor another restore write it meanwhile
      Path backing = io.granule.engine.internal.image.BlockDeviceClaim.loopBackingFile(to);
      try (PartialFile held = PartialFile.takeInPlace(to);
          PartialFile behind =
              backing != null && Files.isRegularFile(backing)
                  ? PartialFile.takeInPlace(backing.toRealPath())
                  : null;
          Claims claims = Claims.of(to)) {
        touched = true; // from here a failure may leave it part restored
        return r.restoreDisk(snap, diskName, to, progress);
      }
    }
    try (DirectoryHandle dir = pinDirectory()) {
      String name = to.getFileName().toString();
      if (exists && inPlace) {
        // an existing file (--in-place) is written in place, by one restore at a time whatever
        // name each gives it, and only while no loop device it backs is in use
        try (PartialFile held = PartialFile.takeInPlace(to);
            Claims claims = Claims.of(to)) {
          Path pinned = dir.entry(name);
          try (DirectoryHandle.NewFile file = dir.held() ? dir.pin(name) : null) {
            // written through the file held open, checked once: a file renamed over the name
            // later is not reopened by name
            Path target = file == null ? pinned : file.self();
            requireSame(target, held.lockedIdentity());
            requireOwnOrPlacedByUs(dir, name, target);
            touched = true; // from here a failure may leave it part restored
            RestoreResult res =
                named(target, () -> r.restoreDisk(snap, diskName, target, progress));
            if (!held.lockedIdentity().equals(PartialFile.identityOf(pinned))) {
              throw new CommandException(
                  ExitCodes.TARGET,
                  "restore target '"
                      + to
                      + "' was replaced while the restore wrote it: the disk was restored into"
                      + " the file that was there when it started, which that name no longer"
                      + " leads to (the file now there was not touched); check who writes that"
                      + " directory, and restore again");
            }
            return res;
          }
        }
      }
      // an existing file is replaced only once the restored copy is complete: by one restore at
      // a time whatever name each gives it, and only while no loop device it backs is in use
      // (FILE.partial's lock also keeps in-place restores of that file away meanwhile)
      try (Claims claims = exists ? Claims.of(to) : null;
          PartialFile held = PartialFile.take(to, dir)) {
        Path pinned = dir.entry(held.path().getFileName().toString());
        Replaced replaced =
            exists ? Replaced.of(to, dir, name, PartialFile.identityOf(dir.entry(name))) : null;
        RestoreResult res;
        try {
          // an earlier restore's leftover goes (a new file stays sparse); written through the
          // descriptor that created it: a file renamed over its name later is never written
          Path target = held.create();
          if (!dir.held()) {
            requireSame(target, held.partialIdentity());
          }
          res = named(target, () -> r.restoreDisk(snap, diskName, target, progress));
          if (replaced != null) {
            replaced.keepOwnerAndMode(dir, pinned, held, info);
          }
        } catch (RuntimeException | IOException e) {
          held.discard();
          throw e;
        }
        if (replaced != null) {
          replaced.requireStillThere(dir, held);
        }
        publish(held, pinned, exists);
        return res;
      }
    }
  }

  /**
   * Refuses to write in place {@code file} (the target named {@code name}, held or pinned in {@code
   * dir}) where others than root and the restoring user can write its directory, unless it is
   * root's or the restoring user's, no one else's to read (no group or other bits, no ACL), and has
   * no other name: there the name may lead to any file they could rename or link in (audit14 F2:
   * gu1 swapped his own 0644 file in under the name in a group-writable directory, root's restore
   * wrote the disk into it and he read it; C1: a root 0644 file he renamed over it, or a hard link
   * to a root:gshared 0660 file, the same). In a directory only they can write, the file there is
   * the one meant, whoever owns it.
   */
  private void requireOwnOrPlacedByUs(DirectoryHandle dir, String name, Path file)
      throws IOException {
    String others = Replaced.othersWrite(dir);
    if (others == null) {
      return;
    }
    Map<String, Object> a =
        Files.readAttributes(
            file,
            "unix:uid,mode,nlink",
            dir.held() ? new LinkOption[0] : new LinkOption[] {LinkOption.NOFOLLOW_LINKS});
    int owner = (Integer) a.get("uid");
    int mode = (Integer) a.get("mode");
    int links = (Integer) a.get("nlink");
    String why = null;
    if (owner != 0 && owner != io.granule.engine.internal.net.PeerUser.self()) {
      why = "it is uid " + owner + "'s file";
    } else if ((mode & 077) != 0) {
      why = String.format(Locale.ROOT, "others may read or write it (mode %04o)", mode & 07777);
    } else if (io.granule.engine.internal.ops.PosixAcl.present(dir.entry(name))) {
      why = "an ACL lets others at it";
    } else if (links > 1) {
      why = "it has " + (links - 1) + " other name(s) (hard links)";
    }
    if (why != null) {
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '"
              + to
              + "' is not written in place: "
              + others
              + " can write its directory, so the name may lead to a file put there in place of"
              + " the one meant, and "
              + why
              + "; nothing was written. Restore without --in-place (the restored copy replaces"
              + " it and stays yours, 0600), or into a directory only you can write");
    }
  }

  /**
   * The existing file a restore replaces: its identity, owner and mode as checked and locked when
   * the restore started. The restored copy takes its owner and mode (a VM's disk stays its
   * hypervisor user's) where only root or the restoring user can write the directory, and replaces
   * it only if the name still leads to it. Where others can write the directory, the file there may
   * be theirs, put in place of the one meant (audit13 M2: gu1 swapped root's 0600 disk image for
   * his own 0666 file, and root's restored disk became his): the copy stays the restoring user's,
   * 0600, and the output says so.
   */
  private static final class Replaced {
    private final Path to;
    private final String name;
    private final Map<String, Object> identity;
    private final int uid;
    private final int gid;
    private final int mode;
    private final String othersWrite; // who else can write the directory, or null
    private final boolean acl; // it has an access ACL (its mode's group bits are the ACL's mask)
    private final int links; // its names (hard links): the others keep the old disk

    private Replaced(
        Path to,
        String name,
        Map<String, Object> identity,
        int uid,
        int gid,
        int mode,
        String othersWrite,
        boolean acl,
        int links) {
      this.to = to;
      this.name = name;
      this.identity = identity;
      this.uid = uid;
      this.gid = gid;
      this.mode = mode;
      this.othersWrite = othersWrite;
      this.acl = acl;
      this.links = links;
    }

    /**
     * Who besides root and this process's user can write directory {@code dir} (its owner, its
     * group, everyone: by mode bits, whose group bits are an ACL's mask), or null if no one.
     */
    private static String othersWrite(DirectoryHandle dir) throws IOException {
      // the held directory itself (/proc/self/fd/N followed), not the link naming it
      Map<String, Object> d =
          Files.readAttributes(dir.held() ? dir.self() : dir.shown(), "unix:uid,gid,mode");
      int me = io.granule.engine.internal.net.PeerUser.self();
      int owner = (Integer) d.get("uid");
      int mode = (Integer) d.get("mode");
      if (owner != 0 && owner != me) {
        return "its owner (uid " + owner + ")";
      }
      if ((mode & 0002) != 0) {
        return "everyone";
      }
      if ((mode & 0020) != 0) {
        return "group " + d.get("gid") + " (or users an ACL names)";
      }
      return null;
    }

    /** The file {@code name} in {@code dir}, which must be the one {@code locked}. */
    static Replaced of(Path to, DirectoryHandle dir, String name, Map<String, Object> locked)
        throws IOException {
      Map<String, Object> a =
          Files.readAttributes(
              dir.entry(name), "unix:dev,ino,uid,gid,mode,nlink", LinkOption.NOFOLLOW_LINKS);
      Map<String, Object> identity = Map.of("dev", a.get("dev"), "ino", a.get("ino"));
      if (locked == null || !locked.equals(identity)) {
        throw notTheFileChecked(to);
      }
      return new Replaced(
          to,
          name,
          identity,
          (Integer) a.get("uid"),
          (Integer) a.get("gid"),
          (Integer) a.get("mode"),
          othersWrite(dir),
          io.granule.engine.internal.ops.PosixAcl.present(dir.entry(name)),
          (Integer) a.get("nlink"));
    }

    /**
     * Gives the restored copy (FILE.partial, {@code pinned} in {@code dir}) the replaced file's
     * owner, group and permission bits (not set-id bits), through the file held open.
     */
    void keepOwnerAndMode(DirectoryHandle dir, Path pinned, PartialFile held, Consumer<String> info)
        throws IOException {
      if (links > 1) {
        info.accept(
            String.format(
                Locale.ROOT,
                "'%s' has %d other name(s) (hard links): they keep the old disk; restore with"
                    + " --in-place to write it under every name",
                to,
                links - 1));
      }
      int me = io.granule.engine.internal.net.PeerUser.self();
      if (othersWrite == null && me != 0 && uid != me) {
        // only root gives a file away: the restored copy stays this user's (it wrote the old
        // file, which its owner let it do)
        info.accept(
            String.format(
                Locale.ROOT,
                "the restored disk is yours alone (0600), not given the owner (uid %d) of the"
                    + " file it replaces: only root can give a file to another user",
                uid));
        return;
      }
      if (othersWrite != null) {
        if (uid != me || (mode & 0777) != 0600) {
          info.accept(
              String.format(
                  Locale.ROOT,
                  "the restored disk is yours alone (0600), not given the owner (uid %d, gid %d)"
                      + " and mode (%04o) of the file it replaces: %s can write '%s', so that"
                      + " file may not be the one you meant; chown and chmod it if it is",
                  uid,
                  gid,
                  mode & 0777,
                  othersWrite,
                  to.toAbsolutePath().getParent()));
        }
        return;
      }
      if (acl) {
        // its mode's group bits are the ACL's mask: as plain bits they would let the owning group
        // read and write what the ACL kept from it (audit13 H1); the ACL itself is not copied
        info.accept(
            String.format(
                Locale.ROOT,
                "the restored disk keeps the owner (uid %d, gid %d) of the file it replaces, but"
                    + " not its access ACL: it is 0600; set the ACL again (getfacl of a copy,"
                    + " setfacl)",
                uid,
                gid));
      }
      int kept = acl ? 0600 : mode & 0777;
      if (!dir.held()) {
        apply(pinned, kept);
        return;
      }
      try (DirectoryHandle.NewFile file = dir.pin(pinned.getFileName().toString())) {
        Map<String, Object> found = PartialFile.identityOfHeld(file.self());
        if (!java.util.Objects.equals(found, held.partialIdentity())) {
          throw new CommandException(
              ExitCodes.TARGET,
              "'"
                  + held.path()
                  + "' was replaced while the restore wrote it: check who writes that directory,"
                  + " and restore again ('"
                  + to
                  + "' was left as it was)");
        }
        apply(file.self(), kept);
      }
    }

    private void apply(Path file, int permissions) throws IOException {
      // an ACL inherited from the directory's default one would get these group bits as its mask,
      // widening its named entries (audit13 core H1, second case): the mode alone decides
      DirectoryHandle.dropInheritedAcl(file, false);
      Files.setAttribute(file, "unix:uid", uid);
      Files.setAttribute(file, "unix:gid", gid);
      Files.setAttribute(file, "unix:mode", permissions);
    }

    /**
     * Fails (exit code 7), keeping the restored disk at FILE.partial, if FILE is no longer the file
     * this restore set out to replace (someone who can write its directory renamed another file,
     * another VM's disk, over it meanwhile): that one is not replaced.
     */
    void requireStillThere(DirectoryHandle dir, PartialFile held) throws IOException {
      if (!identity.equals(PartialFile.identityOf(dir.entry(name)))) {
        throw new CommandException(
            ExitCodes.TARGET,
            "restore target '"
                + to
                + "' was replaced or removed while the restore ran: the file now there was not"
                + " touched; the restored disk is at '"
                + held.path()
                + "': check who writes that directory, then rename it yourself or restore again");
      }
    }
  }

  /**
   * Publishes FILE.partial as FILE; if that fails because FILE.partial or its directory was moved
   * or replaced meanwhile, the file this restore wrote (still reached through the held directory)
   * is deleted rather than left as a disk-sized leftover nobody would look for.
   */
  private static void publish(PartialFile held, Path pinned, boolean replace) throws IOException {
    try {
      held.publish(replace);
    } catch (IOException | RuntimeException e) {
      try {
        Map<String, Object> ours = held.partialIdentity();
        if (ours != null
            && ours.equals(PartialFile.identityOf(pinned))
            && !ours.equals(PartialFile.identityOf(held.path()))) {
          // kept where its name still leads to it (FILE created meanwhile: the restored disk
          // stays at FILE.partial, as the message says); deleted where nobody would find it
          Files.deleteIfExists(pinned);
        }
      } catch (IOException | RuntimeException cleanup) {
        e.addSuppressed(cleanup);
      }
      throw e;
    }
  }

  /**
   * The target's directory, held open for the whole restore: the files of a restore to a file are
   * written through it ({@code /proc/self/fd/N/NAME}), and must be the ones locked and checked by
   * name. Someone who can write a directory above the target and swaps it for a link once the
   * checks are done cannot make the restore write another file (another VM's disk).
   */
  private DirectoryHandle pinDirectory() throws IOException {
    Path dir = to.toAbsolutePath().getParent();
    Path real;
    Object identity;
    try {
      real = dir.toRealPath();
      // the directory resolved when the restore started, not whatever the name leads to now
      identity = dirIdentity != null ? dirIdentity : Files.readAttributes(real, "unix:dev,ino");
    } catch (IOException e) {
      throw new CommandException(
          ExitCodes.TARGET,
          "the directory of restore target '"
              + to
              + "' is missing or cannot be read ("
              + e.getMessage()
              + "): create it, or name a file elsewhere");
    }
    return DirectoryHandle.open(real, dir, identity);
  }

  /**
   * Makes the image file a writer created (with the default mode, 0644 under the usual umask) the
   * owner's alone, as a raw FILE.partial is made: a disk holds everything on it. Through the file
   * held open, checked to be the one this restore created.
   */
  private void ownerOnly(DirectoryHandle dir, Path pinned, PartialFile held) throws IOException {
    java.util.Set<java.nio.file.attribute.PosixFilePermission> mode =
        java.nio.file.attribute.PosixFilePermissions.fromString("rw-------");
    if (!dir.held()) {
      Files.setPosixFilePermissions(pinned, mode);
      return;
    }
    try (DirectoryHandle.NewFile file = dir.pin(pinned.getFileName().toString())) {
      requireSame(file.self(), held.partialIdentity());
      Files.setPosixFilePermissions(file.self(), mode);
    }
  }

  /**
   * Fails (exit code 7) unless {@code pinned} (an entry of the held directory) is the file locked
   * and checked under the target's name.
   */
  private void requireSame(Path pinned, Map<String, Object> locked) throws IOException {
    Map<String, Object> found =
        DirectoryHandle.isHeldFile(pinned)
            ? PartialFile.identityOfHeld(pinned)
            : PartialFile.identityOf(pinned);
    if (locked == null || !locked.equals(found)) {
      throw notTheFileChecked(to);
    }
  }

  /** The target {@code to} is no longer the file checked and locked (exit code 7). */
  private static CommandException notTheFileChecked(Path to) {
    return new CommandException(
        ExitCodes.TARGET,
        "restore target '"
            + to
            + "' is no longer the file that was checked and locked (it, or a directory above"
            + " it, was moved or replaced as the restore started): check who writes those"
            + " directories, and restore again");
  }

  /** Work on a pinned path, its messages naming the target's own path instead. */
  private RestoreResult named(Path pinned, IoWork work) throws IOException {
    boolean file = DirectoryHandle.isHeldFile(pinned);
    String via = (file ? pinned : pinned.getParent()).toString();
    String shown = (file ? to.toAbsolutePath() : to.toAbsolutePath().getParent()).toString();
    try {
      return work.run();
    } catch (io.granule.engine.internal.repo.RestoreTargetException e) {
      String m = e.getMessage();
      if (m != null && m.contains(via)) {
        throw new io.granule.engine.internal.repo.RestoreTargetException(
            m.replace(via, shown), e.getCause());
      }
      throw e;
    }
  }

  @FunctionalInterface
  private interface IoWork {
    RestoreResult run() throws IOException;
  }

  /**
   * The exclusive claims a restore in place holds: on a block device target, the device; on a file,
   * every loop device it backs (writing the file writes them).
   */
  private static final class Claims implements AutoCloseable {
    private final List<BlockDeviceClaim> held = new ArrayList<>();

    static Claims of(Path target) throws IOException {
      Claims c = new Claims();
      try {
        if (isBlockDevice(target)) {
          c.held.add(claim(target, target));
          c.stackedOn(target, target, 0);
          // another loop device over the same file, and the device a loop device is stacked
          // on (and so on down), are the same bytes, perhaps mounted
          Path dev = target;
          var partition = BlockDeviceClaim.partitionOf(target);
          if (partition != null) {
            // a partition of a loop device: the same partition of another loop device over the
            // same file (the whole of it where its partitions are not scanned), and what the
            // disk is stacked on, show its bytes
            Path whole = partition.getKey();
            for (Path sibling : BlockDeviceClaim.loopSiblings(whole)) {
              Path same = Path.of(sibling + "p" + partition.getValue());
              c.held.add(claim(Files.exists(same) ? same : sibling, target));
            }
            dev = BlockDeviceClaim.loopBackingDevice(whole);
            if (dev != null) {
              c.held.add(claim(dev, target));
            }
          }
          for (int depth = 0; dev != null && depth < 8; depth++) {
            for (Path sibling : BlockDeviceClaim.loopSiblings(dev)) {
              c.held.add(claim(sibling, target));
            }
            dev = BlockDeviceClaim.loopBackingDevice(dev);
            if (dev != null) {
              c.held.add(claim(dev, target));
            }
          }
        } else {
          for (Path loop : BlockDeviceClaim.loopDevicesBackedBy(target)) {
            c.held.add(claim(loop, target));
            c.stackedOn(loop, target, 0);
          }
        }
      } catch (IOException | RuntimeException e) {
        c.close();
        throw e;
      }
      return c;
    }

    /** Claims the loop devices stacked on {@code dev}, and those stacked on them. */
    private void stackedOn(Path dev, Path target, int depth) throws IOException {
      if (depth >= 8) {
        return;
      }
      for (Path loop : BlockDeviceClaim.loopsStackedOn(dev)) {
        held.add(claim(loop, target));
        stackedOn(loop, target, depth + 1);
      }
    }

    private static BlockDeviceClaim claim(Path device, Path target) throws IOException {
      try {
        return BlockDeviceClaim.claim(device);
      } catch (BlockDeviceClaim.DeviceBusyException e) {
        throw new CommandException(
            ExitCodes.TARGET,
            "restore target '"
                + target
                + "': "
                + (device.equals(target)
                    ? ""
                    : (isBlockDevice(target)
                            ? "it shows the same bytes as " + device
                            : "it backs " + device)
                        + ", and ")
                + e.getMessage());
      }
    }

    @Override
    public void close() throws IOException {
      for (BlockDeviceClaim c : held) {
        c.close();
      }
    }
  }

  /**
   * Writes the disk as an image to FILE.partial through the format's plugin, holding a lease on it
   * throughout, and renames it to FILE once the writer has finished.
   */
  private RestoreResult restoreImage(
      Repository r, Manifest snap, String diskName, RestoreListener progress, Consumer<String> info)
      throws IOException {
    Lease<DiskImageFormat> lease = formats.acquire(format);
    if (!lease.get().canCreate()) {
      List<String> writable = writableFormats();
      lease.close();
      throw new CommandException(
          ExitCodes.USAGE,
          "disk image format '"
              + format
              + "' cannot be restored to (formats that can: raw, "
              + String.join(", ", writable)
              + ")");
    }
    long size =
        snap.disks().stream()
            .filter(d -> d.name().equals(diskName))
            .mapToLong(Manifest.DiskEntry::size)
            .findFirst()
            .orElse(-1);
    info.accept(String.format(Locale.ROOT, "writing a %s image (%s) to %s", format, why, to));
    DirectoryHandle dir;
    try {
      dir = pinDirectory();
    } catch (IOException | RuntimeException e) {
      lease.close();
      throw e;
    }
    PartialFile taken;
    try {
      taken = PartialFile.take(to, dir);
    } catch (IOException | RuntimeException e) {
      dir.close();
      lease.close();
      throw e;
    }
    try (DirectoryHandle held0 = dir;
        PartialFile held = taken) {
      Path partial = held.path();
      // created and written through the held directory, so a directory swapped above it
      // changes nothing; the writer's second (direct I/O) open does not follow a link either
      Path pinned = dir.entry(partial.getFileName().toString());
      Files.deleteIfExists(pinned);
      String name = to.getFileName().toString();
      // an existing image is replaced only once the new one is complete, keeping its owner and
      // mode, and only if the name still leads to the file checked now
      Replaced replaced =
          exists ? Replaced.of(to, dir, name, PartialFile.identityOf(dir.entry(name))) : null;
      RestoreResult res;
      try {
        held.beforeCreate();
        try (LeasedDiskImageWriter w =
            LeasedDiskImageWriter.create(
                lease,
                pinned,
                size,
                Map.of(DiskImageWriter.OPTION_FILE_NAME, to.getFileName().toString()))) {
          held.created();
          requireSame(pinned, held.partialIdentity());
          ownerOnly(dir, pinned, held);
          if (replaced != null) {
            replaced.keepOwnerAndMode(dir, pinned, held, info);
          }
          res = r.restoreDisk(snap, diskName, w, partial, progress);
        }
      } catch (IllegalArgumentException e) {
        held.discard();
        throw new CommandException(
            ExitCodes.TARGET,
            "unable to restore to '" + to + "' as " + format + ": " + e.getMessage());
      } catch (RuntimeException | IOException e) {
        held.discard();
        throw e;
      }
      if (replaced != null) {
        replaced.requireStillThere(dir, held);
      }
      publish(held, pinned, exists);
      return res;
    }
  }

  private List<String> writableFormats() {
    List<String> names = new ArrayList<>();
    for (Lease<DiskImageFormat> l : formats.acquireAll()) {
      try (l) {
        if (l.get().canCreate()) {
          names.add(l.name());
        }
      }
    }
    return names.stream().distinct().sorted().toList();
  }
}
