package io.granule.engine.internal.cli;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * A restore's new file: written as {@code FILE.partial}, renamed to {@code FILE} when complete, by
 * one restore at a time.
 *
 * <p>The writer holds an exclusive lock on {@code FILE.partial.lock} from before it first touches
 * FILE.partial until the file is renamed or deleted, so two restores to one new target (two jobs,
 * two commands) never write, delete or publish each other's file: the second fails at once (exit
 * code 7). The lock file is deleted on release. A taker checks that the file it locked is still the
 * one of that name, without opening it again (closing any descriptor of a file drops the process's
 * POSIX locks on it): the inode of the path against those of the process's descriptors naming it
 * ({@code /proc/self/fd}), so a file a releasing holder just deleted is never locked in vain.
 */
final class PartialFile implements AutoCloseable {
  private final Path target;
  private final Path partial;
  private final Path lockPath; // as file operations name it (through the held directory)
  private final Path lockShown; // as messages name it
  private final FileChannel channel;
  // the target's directory held open, or null: FILE, FILE.partial and the lock file are reached
  // through it (/proc/self/fd/N/NAME), never by their names, which a directory swapped above them
  // since would lead elsewhere
  private final io.granule.engine.internal.ops.DirectoryHandle dir;
  // FILE.partial as the descriptor that created it (or, made by an image writer, pinned) holds it:
  // its identity, locks and publishing come from this descriptor, not from the name
  private io.granule.engine.internal.ops.DirectoryHandle.NewFile made;

  private final Object key;
  private java.util.Map<String, Object> partialIdentity; // FILE.partial as this restore made it
  private java.util.Map<String, Object> lockedIdentity; // what an in-place take locked
  // identity locks this restore also holds: FILE.partial once created (a --force restore naming
  // it writes it in place), the existing FILE it renames over
  private final java.util.List<PartialFile> identities = new java.util.ArrayList<>();
  private OfdLock fileLock; // an in-place target's own lock, where it could be taken

  private PartialFile(
      Path target,
      Path partial,
      Path lockPath,
      Path lockShown,
      FileChannel channel,
      Object key,
      io.granule.engine.internal.ops.DirectoryHandle dir) {
    this.target = target;
    this.partial = partial;
    this.lockPath = lockPath;
    this.lockShown = lockShown;
    this.channel = channel;
    this.key = key;
    this.dir = dir != null && dir.held() ? dir : null;
  }

  /** Test seam: runs right after FILE.partial was created (by name: as file operations name it). */
  static volatile java.util.function.Consumer<Path> afterCreate;

  /** Entry {@code shown}'s name, as file operations must name it: through the held directory. */
  private Path via(Path shown) {
    return dir == null ? shown : dir.entry(shown.getFileName().toString());
  }

  /** {@code FILE.partial}. */
  static Path partialOf(Path target) {
    return target.resolveSibling(target.getFileName() + ".partial");
  }

  /** FILE.partial, to write. */
  Path path() {
    return partial;
  }

  /**
   * Takes FILE.partial of {@code target} for this restore.
   *
   * @throws CommandException (exit code 7) if another restore is writing it
   */
  static PartialFile take(Path target) throws IOException {
    return take(target, null);
  }

  /**
   * As {@link #take(Path)}, {@code target} being an entry of directory {@code dir}, held open (as
   * resolved when the restore started): the lock file, FILE.partial and FILE are made, locked,
   * renamed and deleted through it, never by name (a link swapped for the directory meanwhile would
   * lead to another directory, root's). {@code dir} must stay open until this is closed.
   */
  static PartialFile take(Path target, io.granule.engine.internal.ops.DirectoryHandle dir)
      throws IOException {
    Path partial = partialOf(target);
    Path lockShown = partial.resolveSibling(partial.getFileName() + ".lock");
    boolean held = dir != null && dir.held();
    Path lockPath = held ? dir.entry(lockShown.getFileName().toString()) : lockShown;
    Path targetVia = held ? dir.entry(target.getFileName().toString()) : target;
    PartialFile taken = take(target, partial, lockPath, lockShown, "'" + partial + "'", dir);
    if (Files.isRegularFile(targetVia, LinkOption.NOFOLLOW_LINKS)) {
      // the file a --force restore renames over: a restore writing it in place must not run
      // meanwhile (its data would go to the replaced file)
      try {
        taken.identities.add(takeInPlace(targetVia, target, false));
      } catch (IOException | RuntimeException e) {
        taken.close();
        throw e;
      }
    }
    return taken;
  }

  /**
   * Takes an existing target written in place (a file with --force, a block device) for this
   * restore: the lock is on the file itself, whatever its name (a hard or symbolic link, a device
   * node under another path), through a lock file named after its identity in a directory shared by
   * this host's restores ({@code /run/granule/targets}, else the temporary directory). Nothing is
   * published: {@link #path} is null.
   *
   * @throws CommandException (exit code 7) if another restore is writing it
   */
  static PartialFile takeInPlace(Path target) throws IOException {
    return takeInPlace(target, target, false);
  }

  /**
   * As {@link #takeInPlace(Path)}, the file at {@code at}, named {@code target} in messages: if
   * {@code heldFile}, {@code at} is a descriptor's {@code /proc/self/fd/N}, followed to the file
   * the descriptor holds (its identity, not that of whatever has its name now).
   */
  private static PartialFile takeInPlace(Path at, Path target, boolean heldFile)
      throws IOException {
    java.util.Map<String, Object> a;
    try {
      // the target itself (callers resolve links): a link planted later is not followed
      a =
          heldFile
              ? Files.readAttributes(at, "unix:dev,ino,rdev,mode")
              : Files.readAttributes(at, "unix:dev,ino,rdev,mode", LinkOption.NOFOLLOW_LINKS);
    } catch (NoSuchFileException e) {
      throw new CommandException(
          ExitCodes.TARGET,
          "restore target '" + target + "' disappeared before it could be locked: restore again");
    }
    int type = ((Integer) a.get("mode")) & 0170000;
    Path dir = sharedLockDirectory();
    Path lockFile = dir.resolve(identityLockName(a));
    PartialFile taken = take(target, null, lockFile, lockFile, "'" + target + "'", null);
    taken.lockedIdentity = java.util.Map.of("dev", a.get("dev"), "ino", a.get("ino"));
    if (type == 0100000) {
      // the lock files above are per user where /run/granule cannot be written; this lock, on
      // the file itself, is every user's
      try {
        taken.fileLock = heldFile ? OfdLock.lockHeld(at, target) : OfdLock.lock(at, target);
      } catch (OfdLock.HeldException e) {
        taken.close();
        throw new CommandException(
            ExitCodes.TARGET, e.getMessage() + ": wait for it to finish, or restore elsewhere");
      } catch (OfdLock.ReadersException e) {
        if (!rootWide(dir)) {
          // perhaps root's backup (whose lock file is in /run/granule, not seen from here)
          taken.close();
          throw new CommandException(
              ExitCodes.TARGET,
              e.getMessage() + ": wait for the backup to finish, or restore elsewhere");
        }
        // root's backups hold the lock file just taken: a reader of another user cannot keep
        // root from restoring (anyone who may read the file could take a read lock), nor can a
        // backup of another user, which would read a mix of two disks: say so
        org.slf4j.LoggerFactory.getLogger(PartialFile.class)
            .warn(
                "{}; restoring over it anyway (a backup of it by another user would hold a mix of"
                    + " the old and the restored disk)",
                e.getMessage());
      }
    }
    return taken;
  }

  /** The lock file name of the file or device with these attributes (dev, ino, rdev, mode). */
  private static String identityLockName(java.util.Map<String, Object> a) {
    int type = ((Integer) a.get("mode")) & 0170000;
    return (type == 0060000
            ? "blk-" + Long.toHexString((Long) a.get("rdev")) // the device, whatever its node
            : "file-" + Long.toHexString((Long) a.get("dev")) + "-" + a.get("ino"))
        + ".lock";
  }

  /** Whether lock files in {@code dir} are seen by every root process here (/run/granule). */
  private static boolean rootWide(Path dir) {
    return dir.startsWith(Path.of("/run")) && io.granule.engine.internal.net.PeerUser.self() == 0;
  }

  /**
   * Locks {@code disk} (links followed), a file or block device a backup is about to read, against
   * restores writing it in place meanwhile: the backup would store a mix of the old and the
   * restored disk. A shared lock on the file {@link #takeInPlace} locks exclusively (many backups
   * may read one disk at once), and, for a regular file, a read lock on the file itself that
   * restores of every user see. Anything else (a pipe) is not locked.
   *
   * @return what releases the locks
   * @throws CommandException (exit code 6) if a restore is writing it
   */
  static java.io.Closeable lockForReading(Path disk) throws IOException {
    Path real = disk.toRealPath();
    java.util.Map<String, Object> a = Files.readAttributes(real, "unix:dev,ino,rdev,mode");
    int type = ((Integer) a.get("mode")) & 0170000;
    if (type != 0100000 && type != 0060000) {
      return () -> {};
    }
    java.io.Closeable device = lockOne(disk, real, a, type);
    // a loop device's bytes are its backing file's: a restore writing that file in place (or
    // the device, which locks the file too) would make this backup a mix of two disks
    Path backing =
        type == 0060000
            ? io.granule.engine.internal.image.BlockDeviceClaim.loopBackingFile(real)
            : null;
    if (backing == null || !Files.isRegularFile(backing)) {
      return device;
    }
    java.io.Closeable file;
    try {
      file = lockForReading(backing);
    } catch (IOException | RuntimeException e) {
      device.close();
      throw e;
    }
    return () -> {
      try {
        file.close();
      } finally {
        device.close();
      }
    };
  }

  /** {@link #lockForReading} of the file or device itself. */
  private static java.io.Closeable lockOne(
      Path disk, Path real, java.util.Map<String, Object> a, int type) throws IOException {
    Path dir;
    try {
      dir = sharedLockDirectory();
    } catch (IOException | CommandException e) {
      // a backup is not refused for want of a lock directory (a user without a home of their
      // own): it then only holds the lock on the file itself, which restores of every user see
      org.slf4j.LoggerFactory.getLogger(PartialFile.class)
          .warn("'{}' is read without this user's restore lock: {}", disk, e.getMessage());
      dir = null;
    }
    Reading reading = null;
    if (dir != null) {
      try {
        reading = Reading.take(dir.resolve(identityLockName(a)), disk);
      } catch (java.nio.file.FileSystemException e) {
        // the directory cannot hold lock files (read-only, full): as without one, a backup goes
        // on with the lock on the file itself (a restore that busy is refused all the same)
        org.slf4j.LoggerFactory.getLogger(PartialFile.class)
            .warn(
                "'{}' is read without this user's restore lock: {}",
                disk,
                e.getReason() == null ? e.toString() : e.getFile() + ": " + e.getReason());
      }
    }
    OfdLock ofd = null;
    if (type == 0100000) {
      try {
        ofd = OfdLock.lockForReading(real);
      } catch (OfdLock.HeldException e) {
        if (reading != null) {
          reading.close();
        }
        throw new CommandException(
            ExitCodes.SOURCE, e.getMessage() + ": back it up when the restore has finished");
      }
    }
    OfdLock fileLock = ofd;
    Reading identityLock = reading;
    java.util.concurrent.atomic.AtomicBoolean closed =
        new java.util.concurrent.atomic.AtomicBoolean();
    return () -> {
      if (closed.getAndSet(true)) {
        return; // closing twice does nothing
      }
      try {
        if (fileLock != null) {
          fileLock.close();
        }
      } finally {
        if (identityLock != null) {
          identityLock.close();
        }
      }
    };
  }

  /**
   * A shared lock on an identity lock file, held by this process's backups of one disk together:
   * one descriptor and one lock, counted (a second lock by this process on the same file would
   * overlap the first, and closing a second descriptor would drop both).
   */
  private static final class Reading {
    private final Object key;
    private final Path lockPath;
    private final FileChannel channel;
    private final FileLock lock;
    private int count = 1; // guarded by HELD

    private Reading(Object key, Path lockPath, FileChannel channel, FileLock lock) {
      this.key = key;
      this.lockPath = lockPath;
      this.channel = channel;
      this.lock = lock;
    }

    static Reading take(Path lockPath, Path disk) throws IOException {
      synchronized (HELD) {
        for (int attempt = 0; attempt < 10; attempt++) {
          Object held = fileKey(lockPath);
          if (held != null && HELD.containsKey(held)) {
            throw restoring(disk, lockPath);
          }
          Reading r = held == null ? null : READING.get(held);
          if (r != null) {
            r.count++;
            return r;
          }
          requireLockFileOrNothing(lockPath, lockPath);
          FileChannel ch = openLockFile(lockPath, lockPath);
          FileLock lock;
          try {
            lock = ch.tryLock(0, Long.MAX_VALUE, true);
          } catch (OverlappingFileLockException e) {
            throw restoring(disk, lockPath); // held by this process, not registered: keep ch
          } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
          }
          if (lock == null) {
            ch.close();
            throw restoring(disk, lockPath);
          }
          Object key;
          try {
            requireLockFileOrNothing(lockPath, lockPath);
            key = lockedIsCurrent(lockPath) ? fileKey(lockPath) : null;
          } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
          }
          if (key != null) {
            Reading taken = new Reading(key, lockPath, ch, lock);
            READING.put(key, taken);
            return taken;
          }
          ch.close(); // a file its last holder deleted meanwhile: again
        }
      }
      throw new CommandException(
          ExitCodes.SOURCE, "unable to lock '" + lockPath + "': it keeps changing; try again");
    }

    private static CommandException restoring(Path disk, Path lockPath) {
      return new CommandException(
          ExitCodes.SOURCE,
          "a restore is writing '"
              + disk
              + "' (it holds "
              + lockPath
              + "): back it up when the restore has finished");
    }

    /** The last of this process's backups of the disk deletes the lock file, if no one holds it. */
    void close() throws IOException {
      synchronized (HELD) {
        if (--count > 0) {
          return;
        }
        READING.remove(key);
        try {
          // other processes' backups may hold it too: delete it only if it can be locked alone
          // (released first: a lock of this process cannot be upgraded in place)
          lock.release();
        } catch (IOException | RuntimeException e) {
          // released with the descriptor below
        }
        try {
          FileLock alone = channel.tryLock();
          if (alone != null && key.equals(fileKey(lockPath))) {
            Files.deleteIfExists(lockPath);
          }
        } catch (IOException | RuntimeException e) {
          // left behind: the next taker locks it as it is
        } finally {
          channel.close();
        }
      }
    }
  }

  private static Path sharedLockDirectory() throws IOException {
    Path dir;
    try {
      dir = lockDirectory();
    } catch (java.nio.file.FileSystemException e) {
      throw new CommandException(
          ExitCodes.TARGET,
          "cannot make the directory where restores lock their targets ("
              + (e.getFile() == null ? "" : e.getFile() + ": ")
              + (e.getReason() == null ? e.toString() : e.getReason())
              + "): it must be writable (/run/granule/targets for root, else ~/.cache/granule/targets)");
    }
    synchronized (HELD) {
      if (!swept) {
        swept = true;
        sweepStale(dir);
      }
    }
    return dir;
  }

  private static boolean swept; // guarded by HELD

  /** Lock files older than this, that nobody holds, are left by processes killed holding them. */
  private static final java.time.Duration STALE = java.time.Duration.ofMinutes(10);

  /**
   * Deletes the lock files of {@code dir} that restores or backups killed while holding them left
   * behind: older than {@link #STALE} and locked by nobody. Safe against a taker that opened one
   * just before: it checks, once it holds the lock, that the file is still the one of that name.
   * Never a file this process holds (opening and closing another descriptor of it would drop the
   * lock).
   */
  static void sweepStale(Path dir) {
    synchronized (HELD) {
      sweepStaleHeld(dir);
    }
  }

  private static void sweepStaleHeld(Path dir) {
    long before = System.currentTimeMillis() - STALE.toMillis();
    try (var entries = Files.newDirectoryStream(dir, "{file,blk}-*.lock")) {
      for (Path f : entries) {
        try {
          var a =
              Files.readAttributes(
                  f, java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
          if (!a.isRegularFile()
              || a.lastModifiedTime().toMillis() > before
              || HELD.containsKey(a.fileKey())
              || READING.containsKey(a.fileKey())) {
            continue;
          }
          try (FileChannel ch =
              FileChannel.open(f, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
            FileLock alone = ch.tryLock();
            if (alone != null && lockedIsCurrent(f)) {
              Files.deleteIfExists(f);
            }
          }
        } catch (IOException | RuntimeException e) {
          // in use, or gone meanwhile: left as it is
        }
      }
    } catch (IOException e) {
      // nothing to tidy
    }
  }

  private static Path lockDirectory() throws IOException {
    Path run = Path.of("/run");
    if (Files.isDirectory(run) && Files.isWritable(run)) {
      Path dir = run.resolve("granule").resolve("targets");
      Files.createDirectories(dir);
      return dir;
    }
    // a user's own, the same for all their processes: in their home, else in the temporary
    // directory, where it must be theirs alone (another user who made it first would hold its
    // lock files, and every restore of this user would be refused as busy)
    Path home = Path.of(System.getProperty("user.home", "/nonexistent"));
    Path dir =
        Files.isDirectory(home) && Files.isWritable(home)
            ? home.resolve(".cache").resolve("granule").resolve("targets")
            : Path.of(System.getProperty("java.io.tmpdir"), "granule-targets-" + userName());
    if (dir.startsWith(home)) {
      Files.createDirectories(dir.getParent());
    }
    try {
      Files.createDirectory(
          dir,
          java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
              java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
    } catch (java.nio.file.FileAlreadyExistsException e) {
      // checked below
    }
    java.util.Map<String, Object> a =
        Files.readAttributes(dir, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
    Object me = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    int mode = (Integer) a.get("mode");
    if ((mode & 0170000) != 0040000 || !a.get("uid").equals(me) || (mode & 0022) != 0) {
      throw new CommandException(
          ExitCodes.TARGET,
          "the restore lock directory '"
              + dir
              + "' is not a directory of this user's alone (another user made it, or it can be"
              + " written by others): remove it, and restore again");
    }
    return dir;
  }

  private static String userName() {
    return System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9_.-]", "_");
  }

  /**
   * Refuses (exit code 7) anything but a regular file at a lock file's name: a FIFO there blocked
   * the restore forever in open(2), a device or socket is nobody's lock.
   */
  private static void requireLockFileOrNothing(Path lockPath, Path shown) {
    if (Files.exists(lockPath, LinkOption.NOFOLLOW_LINKS)
        && !Files.isRegularFile(lockPath, LinkOption.NOFOLLOW_LINKS)
        && !Files.isSymbolicLink(lockPath)) {
      String type = io.granule.engine.internal.image.ImageInspector.describeType(lockPath);
      throw new CommandException(
          ExitCodes.TARGET,
          "'"
              + shown
              + "' is "
              // null: it changed (or went) as it was looked at
              + (type != null ? type : "not a regular file")
              + ", not a restore's lock file: remove it, and restore again");
    }
  }

  /** Lock files are their owner's alone: another user's read lock on one would block restores. */
  private static final java.nio.file.attribute.FileAttribute<?> OWNER_ONLY =
      java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));

  private static FileChannel openLockFile(Path lockPath, Path shown) throws IOException {
    FileChannel ch;
    try {
      // not through a link planted at its name (it would create or lock a file elsewhere); read
      // and write, so a FIFO planted meanwhile does not block the open (refused after locking)
      ch =
          FileChannel.open(
              lockPath,
              java.util.Set.of(
                  StandardOpenOption.CREATE,
                  StandardOpenOption.READ,
                  StandardOpenOption.WRITE,
                  LinkOption.NOFOLLOW_LINKS),
              OWNER_ONLY);
    } catch (IOException e) { // ELOOP under NOFOLLOW_LINKS is a plain IOException
      if (Files.isSymbolicLink(lockPath)) {
        throw new CommandException(
            ExitCodes.TARGET,
            "'" + shown + "' is a symbolic link, not a restore's lock file: remove it");
      }
      throw e;
    }
    try {
      // one an earlier version made readable by all (0644): any user could open it and hold a
      // read lock on it, refusing root's restores; made the owner's alone (from now on)
      var a = Files.readAttributes(lockPath, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
      int mode = (Integer) a.get("mode");
      if ((mode & 0170000) == 0100000
          && (mode & 0077) != 0
          && a.get("uid").equals(Files.getAttribute(Path.of("/proc/self"), "unix:uid"))) {
        Files.setPosixFilePermissions(
            lockPath, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
      }
    } catch (IOException | RuntimeException e) {
      // gone or replaced meanwhile (checked once locked), or not ours: left as it is
    }
    return ch;
  }

  private static PartialFile take(
      Path target,
      Path partial,
      Path lockPath,
      Path lockShown,
      String what,
      io.granule.engine.internal.ops.DirectoryHandle dir)
      throws IOException {
    // All of it under one monitor: this process must never open a second descriptor of a lock
    // file it holds (closing it would drop the lock: POSIX locks belong to the process), which a
    // second restore to the same file under another name (a symbolic link) would otherwise do.
    synchronized (HELD) {
      for (int attempt = 0; attempt < 10; attempt++) {
        Object held = fileKey(lockPath);
        if (held != null && HELD.containsKey(held)) {
          throw busy(what, lockShown);
        }
        if (held != null && READING.containsKey(held)) {
          throw read(what, lockShown);
        }
        requireLockFileOrNothing(lockPath, lockShown);
        FileChannel ch = openLockFile(lockPath, lockShown);
        FileLock lock;
        try {
          lock = ch.tryLock();
        } catch (OverlappingFileLockException e) {
          // held by this process but not registered: never close this descriptor (see above)
          throw busy(what, lockShown);
        } catch (IOException | RuntimeException e) {
          ch.close();
          throw e;
        }
        if (lock == null) {
          boolean readers;
          try {
            // only backups share it: if a shared lock can be had, no restore holds it
            FileLock shared = ch.tryLock(0, Long.MAX_VALUE, true);
            readers = shared != null;
          } catch (IOException | RuntimeException e) {
            readers = false;
          } finally {
            ch.close();
          }
          throw readers ? read(what, lockShown) : busy(what, lockShown);
        }
        try {
          requireLockFileOrNothing(lockPath, lockShown);
        } catch (RuntimeException e) {
          ch.close();
          throw e;
        }
        boolean current;
        Object key;
        try {
          current = lockedIsCurrent(lockPath);
          key = current ? fileKey(lockPath) : null;
        } catch (IOException | RuntimeException e) {
          ch.close();
          throw e;
        }
        if (current && key != null) {
          HELD.put(key, lockPath);
          PartialFile taken = new PartialFile(target, partial, lockPath, lockShown, ch, key, dir);
          if (partial != null) {
            OPEN.add(taken);
            registerExitHook();
          }
          return taken;
        }
        ch.close(); // locked a file deleted meanwhile by the holder that released it: again
      }
    }
    throw new CommandException(
        ExitCodes.TARGET, "unable to lock '" + lockShown + "': it keeps changing; try again");
  }

  /**
   * Whether {@code p} (links followed) is a lock file a restore of this process holds: a server
   * must not open it for anything else (closing that descriptor would drop the restore's lock).
   */
  static boolean isHeld(Path p) {
    synchronized (HELD) {
      try {
        Object k = fileKey(p);
        return k != null && (HELD.containsKey(k) || READING.containsKey(k));
      } catch (IOException e) {
        return false;
      }
    }
  }

  /** The lock files this process holds, by file key (device and inode). */
  private static final java.util.Map<Object, Path> HELD = new java.util.HashMap<>();

  /** The identity lock files this process's backups hold, by file key (guarded by HELD). */
  private static final java.util.Map<Object, Reading> READING = new java.util.HashMap<>();

  /** New-file restores under way in this process (guarded by {@link #HELD}). */
  private static final java.util.Set<PartialFile> OPEN = new java.util.HashSet<>();

  private static boolean exitHookRegistered; // guarded by HELD

  /**
   * Once per process: on exit (Ctrl-C, SIGTERM) the FILE.partial of every restore still under way
   * is deleted, and its lock file: an interrupted restore left a disk-sized FILE.partial behind.
   * Its writers may still be writing: into a file no longer named, harmless to a restore starting
   * next.
   */
  private static void registerExitHook() {
    if (exitHookRegistered) {
      return;
    }
    try {
      Runtime.getRuntime()
          .addShutdownHook(new Thread(PartialFile::abandonAll, "granule-restore-cleanup"));
      exitHookRegistered = true;
    } catch (IllegalStateException shuttingDown) {
      // exiting already: the restore's own failure path deletes it
    }
  }

  private static void abandonAll() {
    // a stopping server lets its running jobs finish first (a command: no wait)
    long deadline =
        System.nanoTime() + io.granule.engine.internal.repo.lock.Lock.exitGrace().toNanos();
    while (System.nanoTime() < deadline) {
      synchronized (HELD) {
        if (OPEN.isEmpty()) {
          return;
        }
      }
      try {
        Thread.sleep(50);
      } catch (InterruptedException e) {
        break;
      }
    }
    synchronized (HELD) {
      for (PartialFile p : OPEN) {
        try {
          Path at = p.via(p.partial);
          if (p.partialIdentity != null && p.partialIdentity.equals(identityOf(at))) {
            Files.deleteIfExists(at);
          }
          if (p.key.equals(fileKey(p.lockPath))) {
            Files.deleteIfExists(p.lockPath);
          }
        } catch (IOException | RuntimeException e) {
          // best effort: the process is exiting
        }
      }
    }
  }

  private static Object fileKey(Path p) throws IOException {
    try {
      return Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
    } catch (NoSuchFileException gone) {
      return null;
    }
  }

  private static CommandException read(String what, Path lockPath) {
    return new CommandException(
        ExitCodes.TARGET,
        "a backup is reading "
            + what
            + " (it holds "
            + lockPath
            + "): wait for it to finish, or restore to another file");
  }

  private static CommandException busy(String what, Path lockPath) {
    return new CommandException(
        ExitCodes.TARGET,
        "another restore is writing "
            + what
            + " (it holds "
            + lockPath
            + "): wait for it to finish, or restore to another file");
  }

  /**
   * Whether {@code path} names a file this process has open (the one just locked), by inode and
   * without opening it. True where {@code /proc/self/fd} cannot tell (not Linux).
   */
  private static boolean lockedIsCurrent(Path path) throws IOException {
    Object current;
    try {
      current = Files.readAttributes(path, "unix:dev,ino");
    } catch (NoSuchFileException gone) {
      return false;
    } catch (UnsupportedOperationException | IllegalArgumentException e) {
      return true;
    }
    Path fds = Path.of("/proc/self/fd");
    if (!Files.isDirectory(fds)) {
      return true;
    }
    String name; // as the kernel names it: symbolic links in the directories resolved
    try {
      Path parent = path.getParent();
      name =
          parent != null && io.granule.engine.internal.ops.DirectoryHandle.isHeldFile(parent)
              // an entry of a held directory: that directory as the kernel names it, not its
              // path resolved again by name
              ? Files.readSymbolicLink(parent).resolve(path.getFileName()).toString()
              : path.toRealPath().toString();
    } catch (NoSuchFileException gone) {
      return false;
    }
    try (var entries = Files.newDirectoryStream(fds)) {
      for (Path fd : entries) {
        try {
          if (Files.readSymbolicLink(fd).toString().equals(name)
              && Files.readAttributes(fd, "unix:dev,ino").equals(current)) {
            return true;
          }
        } catch (IOException e) {
          // closed meanwhile
        }
      }
    }
    return false;
  }

  /**
   * Creates FILE.partial afresh for this restore: an earlier one's leftover is deleted, and the new
   * file is created exclusively, so a symbolic link planted at its name is never written through.
   * {@link #publish} then checks it is still this file.
   *
   * <p>Taken with the target's directory held ({@link #take(Path, DirectoryHandle)}), the file is
   * created through that directory and its descriptor kept open: its identity and locks are the
   * descriptor's, and the path returned ({@code /proc/self/fd/N}) is what the restore writes
   * through, so a file someone renames over the name FILE.partial afterwards is never written,
   * truncated or published (the restore fails at publish, exit code 7). Else FILE.partial by name.
   *
   * @return the path to write FILE.partial through
   */
  Path create() throws IOException {
    if (dir == null) {
      return create(partial);
    }
    String name = partial.getFileName().toString();
    Path at = dir.entry(name);
    Files.deleteIfExists(at);
    io.granule.engine.internal.ops.DirectoryHandle.NewFile file;
    try {
      // O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: the owner's alone (a disk or a dump holds
      // everything on it; chmod it to share it)
      file = dir.create(name);
    } catch (FileAlreadyExistsException e) {
      throw new CommandException(
          ExitCodes.TARGET,
          "'"
              + partial
              + "' was created by someone else as the restore created it: check who writes that"
              + " directory, and restore again");
    }
    made = file;
    var hook = afterCreate;
    if (hook != null) {
      hook.accept(at);
    }
    recordMade();
    return file.self();
  }

  /** Takes FILE.partial's identity and locks from {@link #made}, the descriptor holding it. */
  private void recordMade() throws IOException {
    PartialFile locked = takeInPlace(made.self(), partial, true);
    identities.add(locked);
    partialIdentity = locked.lockedIdentity;
  }

  /**
   * As {@link #create()}, the file made at {@code at}: FILE.partial reached another way (through
   * the target's directory held open).
   */
  Path create(Path at) throws IOException {
    Files.deleteIfExists(at);
    // the owner's alone: a disk or a dump holds everything on it (chmod it to share it)
    Files.createFile(
        at,
        java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
            java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
    created();
    return partial;
  }

  /**
   * Records FILE.partial as this restore's, once something (an image writer) created it. Anything
   * but a regular file there (a link someone renamed over it since) is refused.
   */
  void created() throws IOException {
    if (dir != null) {
      createdHeld();
      return;
    }
    if (!Files.isRegularFile(partial, LinkOption.NOFOLLOW_LINKS)) {
      throw new CommandException(
          ExitCodes.TARGET,
          "'"
              + partial
              + "' was replaced by "
              + (Files.exists(partial, LinkOption.NOFOLLOW_LINKS)
                  ? "something that is not a regular file"
                  : "nothing (it was removed)")
              + " while the restore created it: check who writes that directory, and restore"
              + " again");
    }
    PartialFile locked = takeInPlace(partial);
    identities.add(locked);
    partialIdentity = locked.lockedIdentity;
  }

  /** The descriptors this process has open, by number: their identities (see identityOfHeld). */
  static java.util.Map<String, Object> openDescriptors() {
    java.util.Map<String, Object> fds = new java.util.HashMap<>();
    try (var entries = Files.newDirectoryStream(Path.of("/proc/self/fd"))) {
      for (Path fd : entries) {
        try {
          fds.put(
              fd.getFileName().toString(),
              java.util.List.of(
                  Files.readSymbolicLink(fd).toString(), Files.readAttributes(fd, "unix:dev,ino")));
        } catch (IOException | RuntimeException e) {
          // closed meanwhile
        }
      }
    } catch (IOException e) {
      // not Linux: nothing to compare
    }
    return fds;
  }

  private java.util.Map<String, Object> before; // see beforeCreate

  /**
   * Records the descriptors this process has open before an image writer creates FILE.partial, so
   * {@link #created} can tell the writer's own descriptor of it from a file renamed over its name.
   */
  void beforeCreate() {
    before = dir == null ? null : openDescriptors();
  }

  /**
   * {@link #created} through the held directory: FILE.partial is held (O_PATH, not through a link)
   * and accepted only if it is the file the writer holds open, a descriptor this process opened
   * since {@link #beforeCreate} under that name; a file renamed over the name after the writer
   * created it is not, and fails the restore (exit code 7).
   */
  private void createdHeld() throws IOException {
    String name = partial.getFileName().toString();
    io.granule.engine.internal.ops.DirectoryHandle.NewFile pinned;
    try {
      pinned = dir.pin(name);
    } catch (FileSystemException e) {
      throw replacedAsCreated("nothing, or a link");
    }
    made = pinned;
    java.util.Map<String, Object> a = Files.readAttributes(pinned.self(), "unix:dev,ino,mode");
    if ((((Integer) a.get("mode")) & 0170000) != 0100000) {
      throw replacedAsCreated("something that is not a regular file");
    }
    Object identity = java.util.Map.of("dev", a.get("dev"), "ino", a.get("ino"));
    String expected = Files.readSymbolicLink(dir.self()).resolve(name).toString();
    boolean writers = false;
    if (before != null) {
      for (var e : openDescriptors().entrySet()) {
        java.util.List<?> now = (java.util.List<?>) e.getValue();
        if (!now.equals(before.get(e.getKey()))
            && now.get(0).equals(expected)
            && identity.equals(now.get(1))
            && !e.getKey().equals(pinned.self().getFileName().toString())) {
          writers = true;
          break;
        }
      }
    }
    if (!writers) {
      throw replacedAsCreated("another file");
    }
    recordMade();
  }

  private CommandException replacedAsCreated(String by) {
    return new CommandException(
        ExitCodes.TARGET,
        "'"
            + partial
            + "' was replaced by "
            + by
            + " while the restore created it: check who writes that directory, and restore"
            + " again");
  }

  /**
   * Deletes FILE.partial after a failure: the file this restore made, not one renamed over its name
   * since (which is left as it is). Before anything was created, whatever is at the name.
   */
  void discard() throws IOException {
    Path at = via(partial);
    if (partialIdentity == null) {
      if (made == null) {
        Files.deleteIfExists(at);
      }
      return;
    }
    if (partialIdentity.equals(identityOf(at))) {
      Files.deleteIfExists(at);
    }
  }

  /** FILE.partial's identity (see {@link #identityOf}) as this restore created it, or null. */
  java.util.Map<String, Object> partialIdentity() {
    return partialIdentity;
  }

  /** The identity (see {@link #identityOf}) of the file an in-place take locked, or null. */
  java.util.Map<String, Object> lockedIdentity() {
    return lockedIdentity;
  }

  /** The device and inode of a file held open ({@code /proc/self/fd/N}, followed). */
  static java.util.Map<String, Object> identityOfHeld(Path held) throws IOException {
    java.util.Map<String, Object> a = Files.readAttributes(held, "unix:dev,ino");
    return java.util.Map.of("dev", a.get("dev"), "ino", a.get("ino"));
  }

  /** The device and inode of {@code p} itself (not through a link), or null if it is gone. */
  static java.util.Map<String, Object> identityOf(Path p) throws IOException {
    try {
      java.util.Map<String, Object> a =
          Files.readAttributes(p, "unix:dev,ino", LinkOption.NOFOLLOW_LINKS);
      return java.util.Map.of("dev", a.get("dev"), "ino", a.get("ino"));
    } catch (NoSuchFileException gone) {
      return null;
    }
  }

  /**
   * Fails (exit code 7) unless this restore still holds its lock file under its name and
   * FILE.partial is still the file it created: someone who deleted the lock file (a cleanup of
   * {@code *.lock}) let another restore replace FILE.partial, which must not be published as this
   * restore's.
   */
  private void requireStillOurs() throws IOException {
    // through the held directory, the inode alone tells (held open by this restore, it cannot be
    // reused): the kernel's name of that directory changes if someone renames it meanwhile
    boolean lockOurs = (dir != null || lockedIsCurrent(lockPath)) && key.equals(fileKey(lockPath));
    boolean partialOurs =
        partialIdentity == null || partialIdentity.equals(identityOf(via(partial)));
    if (!lockOurs || !partialOurs) {
      throw new CommandException(
          ExitCodes.TARGET,
          "unable to finish the restore to '"
              + target
              + "': "
              + (lockOurs
                  ? "'" + partial + "' was replaced while the restore ran"
                  : "its lock file '" + lockShown + "' was removed while the restore ran")
              + ", so another restore may have written '"
              + partial
              + "'; nothing was published: restore again");
    }
  }

  /**
   * Renames the complete FILE.partial to the target: over it if {@code replace} (it existed and
   * --force said so), else only if nothing has taken the name meanwhile. Java has no {@code
   * rename(2)} that refuses to replace, so a hard link makes the name (atomic, and refused if the
   * name exists) and the partial name is then removed; where the file system has no hard links, a
   * check and a rename (a window of a few microseconds). If the name was taken, the restored data
   * stays at FILE.partial and the error says so: neither file is lost. The directory is synced, so
   * the new name outlives a crash.
   */
  void publish(boolean replace) throws IOException {
    if (Files.exists(via(partial), LinkOption.NOFOLLOW_LINKS)) {
      requireStillOurs(); // (a partial that is gone is named as such below)
    }
    try {
      rename(replace);
    } catch (NoSuchFileException e) {
      Path dir = target.toAbsolutePath().getParent();
      throw new CommandException(
          ExitCodes.TARGET,
          "unable to finish the restore to '"
              + target
              + "': "
              + (dir != null && Files.isDirectory(dir)
                  ? "'" + partial + "' is gone (deleted while the restore ran?)"
                  : "its directory " + dir + " is gone")
              + "; restore again",
          e);
    }
  }

  private void rename(boolean replace) throws IOException {
    Path partial = via(this.partial);
    Path target = via(this.target);
    if (made != null && partialIdentity != null && !replace) {
      // the file this restore made gets the name, whatever was renamed over FILE.partial since
      try {
        made.link(target, this.target);
      } catch (FileAlreadyExistsException e) {
        throw taken();
      }
      if (partialIdentity.equals(identityOf(partial))) {
        Files.delete(partial);
      }
    } else if (replace) {
      Files.move(
          partial, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      if (made != null && partialIdentity != null && !partialIdentity.equals(identityOf(target))) {
        throw new CommandException(
            ExitCodes.TARGET,
            "unable to finish the restore to '"
                + this.target
                + "': '"
                + this.partial
                + "' was replaced as it was renamed to it, so what is there now is not the"
                + " restored file: check who writes that directory, and restore again");
      }
    } else {
      try {
        Files.createLink(target, partial);
        Files.delete(partial);
      } catch (FileAlreadyExistsException e) {
        throw taken();
      } catch (UnsupportedOperationException | FileSystemException e) {
        if (e instanceof NoSuchFileException gone) {
          throw gone;
        }
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
          throw taken();
        }
        Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE);
      }
    }
    Path dir = this.dir != null ? this.dir.self() : this.target.toAbsolutePath().getParent();
    if (dir != null) {
      try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
        ch.force(true);
      } catch (IOException e) {
        // the rename is done; a directory that cannot be synced (some network file systems) is
        // left to the file system's own write-back
      }
    }
  }

  /** The target's name was taken while the restore ran; the data is complete at FILE.partial. */
  private CommandException taken() {
    return new CommandException(
        ExitCodes.TARGET,
        "restore target '"
            + target
            + "' was created by someone else while the restore ran; the restored data is"
            + " complete at '"
            + partial
            + "': move it where you want it");
  }

  /** Deletes the lock file, then releases the lock. */
  @Override
  public void close() throws IOException {
    for (PartialFile identity : identities) {
      identity.close();
    }
    identities.clear();
    if (fileLock != null) {
      fileLock.close();
      fileLock = null;
    }
    if (made != null) {
      made.close();
      made = null;
    }
    synchronized (HELD) {
      try {
        if (key.equals(fileKey(lockPath))) { // not another restore's, if ours was removed
          Files.deleteIfExists(lockPath);
        }
      } finally {
        HELD.remove(key);
        OPEN.remove(this);
        channel.close();
      }
    }
  }
}
