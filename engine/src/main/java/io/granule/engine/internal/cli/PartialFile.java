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
  private final Path lockPath;
  private final FileChannel channel;

  private final Object key;

  private PartialFile(Path target, Path lockPath, FileChannel channel, Object key) {
    this.target = target;
    this.partial = partialOf(target);
    this.lockPath = lockPath;
    this.channel = channel;
    this.key = key;
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
    Path partial = partialOf(target);
    Path lockPath = partial.resolveSibling(partial.getFileName() + ".lock");
    // All of it under one monitor: this process must never open a second descriptor of a lock
    // file it holds (closing it would drop the lock: POSIX locks belong to the process), which a
    // second restore to the same file under another name (a symbolic link) would otherwise do.
    synchronized (HELD) {
      for (int attempt = 0; attempt < 10; attempt++) {
        Object held = fileKey(lockPath);
        if (held != null && HELD.containsKey(held)) {
          throw busy(partial, lockPath);
        }
        FileChannel ch =
            FileChannel.open(lockPath, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock lock;
        try {
          lock = ch.tryLock();
        } catch (OverlappingFileLockException e) {
          // held by this process but not registered: never close this descriptor (see above)
          throw busy(partial, lockPath);
        } catch (IOException | RuntimeException e) {
          ch.close();
          throw e;
        }
        if (lock == null) {
          ch.close();
          throw busy(partial, lockPath);
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
          return new PartialFile(target, lockPath, ch, key);
        }
        ch.close(); // locked a file deleted meanwhile by the holder that released it: again
      }
    }
    throw new CommandException(
        ExitCodes.TARGET, "unable to lock '" + lockPath + "': it keeps changing; try again");
  }

  /** The lock files this process holds, by file key (device and inode). */
  private static final java.util.Map<Object, Path> HELD = new java.util.HashMap<>();

  private static Object fileKey(Path p) throws IOException {
    try {
      return Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
    } catch (NoSuchFileException gone) {
      return null;
    }
  }

  private static CommandException busy(Path partial, Path lockPath) {
    return new CommandException(
        ExitCodes.TARGET,
        "another restore is writing '"
            + partial
            + "' (it holds "
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
      name = path.toRealPath().toString();
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
   * Renames the complete FILE.partial to the target: over it if {@code replace} (it existed and
   * --force said so), else only if nothing has taken the name meanwhile. Java has no {@code
   * rename(2)} that refuses to replace, so a hard link makes the name (atomic, and refused if the
   * name exists) and the partial name is then removed; where the file system has no hard links, a
   * check and a rename (a window of a few microseconds). If the name was taken, the restored data
   * stays at FILE.partial and the error says so: neither file is lost. The directory is synced, so
   * the new name outlives a crash.
   */
  void publish(boolean replace) throws IOException {
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
    if (replace) {
      Files.move(
          partial, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
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
    Path dir = target.toAbsolutePath().getParent();
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
    synchronized (HELD) {
      try {
        Files.deleteIfExists(lockPath);
      } finally {
        HELD.remove(key);
        channel.close();
      }
    }
  }
}
