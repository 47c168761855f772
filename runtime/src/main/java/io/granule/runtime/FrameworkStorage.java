package io.granule.runtime;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;

/**
 * A private OSGi framework storage directory per process, under the system temporary directory.
 *
 * <p>Named {@code granule-osgi-PID-…}. The owning process holds an exclusive lock on the file
 * {@code .owner} inside for as long as it runs; the kernel drops the lock when the process dies,
 * however it dies. Directories left behind by killed processes are removed at a later start, but
 * only when their lock can be taken (so never under a live process, even one in another PID
 * namespace sharing the same temporary directory) and they are older than a minute.
 */
final class FrameworkStorage implements AutoCloseable {
  private static final String PREFIX = "granule-osgi-";
  private static final String OWNER = ".owner";
  private static final Duration STALE_AFTER = Duration.ofMinutes(1);

  private final Path dir;
  private final FileChannel ownerChannel;
  private final FileLock ownerLock;

  private FrameworkStorage(Path dir, FileChannel ownerChannel, FileLock ownerLock) {
    this.dir = dir;
    this.ownerChannel = ownerChannel;
    this.ownerLock = ownerLock;
  }

  Path dir() {
    return dir;
  }

  static FrameworkStorage create() throws LaunchException {
    Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
    removeStale(tmp);
    try {
      Path dir = Files.createTempDirectory(tmp, PREFIX + ProcessHandle.current().pid() + "-");
      FileChannel ch =
          FileChannel.open(
              dir.resolve(OWNER), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
      return new FrameworkStorage(dir, ch, ch.lock());
    } catch (IOException e) {
      throw new LaunchException(
          "unable to create the runtime's storage in " + tmp + ": " + e + " (check free space)", e);
    }
  }

  /** Releases the lock and deletes the directory. */
  @Override
  public void close() {
    try {
      ownerLock.release();
      ownerChannel.close();
    } catch (IOException e) {
      // the directory is deleted below anyway
    }
    BundleCache.deleteTree(dir);
  }

  private static void removeStale(Path tmp) {
    removeStale(tmp, LaunchOptions.uid());
  }

  /**
   * Removes what killed processes of user {@code uid} left in {@code tmp}: only real directories of
   * that user that no one else can write. In a shared {@code /tmp} another user made a {@code
   * granule-osgi-*} directory of his, and root's start deleted by name in it while he swapped a
   * subdirectory for a link to /etc (audit9 paths F1). Another user's are left to him.
   */
  static void removeStale(Path tmp, long uid) {
    Instant cutoff = Instant.now().minus(STALE_AFTER);
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(tmp, PREFIX + "*")) {
      for (Path p : ds) {
        try {
          java.util.Map<String, Object> a =
              Files.readAttributes(p, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
          int mode = (Integer) a.get("mode");
          if ((Integer) a.get("uid") != uid || (mode & 0170000) != 0040000 || (mode & 0022) != 0) {
            continue; // another user's, a link, or writable by others: not ours to delete
          }
          if (Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS).toInstant().isAfter(cutoff)) {
            continue; // may be starting right now, before it took its lock
          }
          if (unowned(p)) {
            BundleCache.deleteTree(p);
          }
        } catch (IOException ignored) {
          // not ours to judge; leave it
        }
      }
    } catch (IOException ignored) {
      // cleaning up is best effort
    }
  }

  /** Whether nobody holds the directory's owner lock (its process is gone). */
  private static boolean unowned(Path dir) throws IOException {
    Path owner = dir.resolve(OWNER);
    if (!Files.isRegularFile(owner, LinkOption.NOFOLLOW_LINKS)) {
      return false; // written by an older granule, or not ours (a FIFO would hang us): leave it
    }
    try (FileChannel ch =
        FileChannel.open(owner, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
      FileLock l = ch.tryLock();
      if (l == null) {
        return false;
      }
      l.release();
      return true;
    } catch (OverlappingFileLockException e) {
      return false; // this very process holds it
    }
  }
}
