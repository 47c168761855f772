package io.granule.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;

/**
 * Where the run bundles are on disk.
 *
 * <p>The executable jar carries them under {@code bundles/}. On first use they are extracted once
 * into {@code $XDG_CACHE_HOME/granule/runtime-KEY} (KEY names this exact jar), so later starts
 * install them by reference without copying. Extraction goes through a temporary directory and an
 * atomic rename, so concurrent first starts are safe. The system property {@code granule.bundles}
 * names a directory of bundles to use instead (development and tests).
 *
 * <p>Every process holds a shared lock on the file {@code .in-use} of the directory it runs from,
 * for as long as it runs (the kernel drops it however the process ends). At start-up the other
 * {@code runtime-*} directories whose lock can be taken exclusively, those of earlier builds or
 * versions that no process runs from any more, are renamed away under that lock and deleted (a
 * long-running server of the old version keeps its own until a start after it stopped). Directories
 * without {@code .in-use} (extracted by a version before this rule) are left alone.
 */
final class BundleCache {
  private static final java.nio.file.attribute.FileAttribute<?> OWNER_ONLY_DIR =
      java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
  private static final java.nio.file.attribute.FileAttribute<?> OWNER_ONLY =
      java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));

  static final String BUNDLES_PROPERTY = "granule.bundles";
  private static final String PREFIX = "bundles/";
  static final String IN_USE = ".in-use";
  private static final String RUNTIME_PREFIX = "runtime-";
  static final String REMOVING_PREFIX = "removing-";

  /** This process's shared lock on its runtime directory: held until the process ends. */
  private static FileLock inUse;

  private static Path inUseDir;

  private final Path dir;
  private final Path root;

  private BundleCache(Path dir, Path root) {
    this.dir = dir;
    this.root = root;
  }

  /** The user's cache directory the bundles were extracted into; null when run from elsewhere. */
  Path root() {
    return root;
  }

  static BundleCache locate() throws LaunchException {
    String override = System.getProperty(BUNDLES_PROPERTY);
    if (override != null) {
      return new BundleCache(Path.of(override), null);
    }
    Path self;
    try {
      self = Path.of(Launcher.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (URISyntaxException | RuntimeException e) {
      throw new LaunchException("unable to locate the granule jar: " + e.getMessage(), e);
    }
    if (Files.isDirectory(self)) {
      return new BundleCache(self.resolve("bundles"), null);
    }
    Path root = cacheRoot();
    DataDirectory.prepareCache(root, LaunchOptions.uid());
    Path dir = extract(self, root);
    // checked once it exists, as the data directory is: its jars run as this user, and a cache
    // another user can write (root's XDG_CACHE_HOME kept by sudo -E, or under his directory)
    // ran his jar as root
    DataDirectory.checkCode(dir, LaunchOptions.uid());
    return new BundleCache(dir, root);
  }

  /** The bundle jars, sorted by file name. */
  List<Path> bundles() throws LaunchException {
    try (Stream<Path> s = Files.list(dir)) {
      List<Path> jars = s.filter(p -> p.toString().endsWith(".jar")).sorted().toList();
      if (jars.isEmpty()) {
        throw new LaunchException("no bundles in " + dir + ": rebuild granule (./mvnw package)");
      }
      return jars;
    } catch (IOException e) {
      throw new LaunchException("unable to list the bundles in " + dir + ": " + e.getMessage(), e);
    }
  }

  /**
   * The directory under {@code root} holding the bundles of {@code jar}, extracted if it is not
   * there yet, with this process's shared lock on its {@link #IN_USE} file taken; the unused
   * directories of other jars are deleted.
   */
  static Path extract(Path jar, Path root) throws LaunchException {
    try {
      Path target = root.resolve(RUNTIME_PREFIX + key(jar));
      // Twice at most: a directory found can be deleted by another process's clean-up before this
      // one locks it (it was unused then), and is extracted again.
      for (int attempt = 0; ; attempt++) {
        if (Files.isDirectory(target)) {
          if (holds(target)) {
            removeUnused(root, target);
            return target;
          }
          FileLock lock = lockShared(target);
          if (lock != null) {
            keep(lock, target);
            removeUnused(root, target);
            return target;
          }
          if (attempt > 0) {
            throw new IOException(target + " disappears as soon as it is extracted");
          }
        }
        // only this user's, whatever the umask (002 made them group-writable, and the check of
        // the cache then refused what this very code had made: audit K5)
        Files.createDirectories(root, OWNER_ONLY_DIR);
        Path tmp = Files.createTempDirectory(root, "extract-");
        try (JarFile jf = new JarFile(jar.toFile())) {
          for (Enumeration<JarEntry> en = jf.entries(); en.hasMoreElements(); ) {
            JarEntry e = en.nextElement();
            String name = e.getName();
            if (name.startsWith(PREFIX)
                && name.endsWith(".jar")
                && name.indexOf('/', PREFIX.length()) < 0) {
              Path out = Files.createFile(tmp.resolve(name.substring(PREFIX.length())), OWNER_ONLY);
              try (InputStream in = jf.getInputStream(e);
                  java.io.OutputStream o = Files.newOutputStream(out)) {
                in.transferTo(o);
              }
            }
          }
        }
        // Locked before it gets its name, so no clean-up ever sees it unlocked.
        FileLock lock = lockShared(tmp);
        try {
          Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
          keep(lock, target);
          removeUnused(root, target);
          return target;
        } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException raced) {
          // another process extracted the same jar first: use its directory
        } catch (IOException e) {
          if (!Files.isDirectory(target)) {
            release(lock);
            deleteTree(tmp);
            throw e;
          }
        }
        release(lock);
        deleteTree(tmp);
      }
    } catch (IOException e) {
      throw new LaunchException(
          "unable to extract the runtime bundles into "
              + root
              + ": "
              + e
              + " (set XDG_CACHE_HOME to a writable directory)",
          e);
    }
  }

  /**
   * A shared lock on {@code dir}'s {@link #IN_USE} file (created if missing), or null if the
   * directory is gone, or was deleted while this waited for the lock (a clean-up deletes a
   * directory while it holds the exclusive lock, so the file then locked is no longer the one at
   * that name).
   */
  private static FileLock lockShared(Path dir) throws IOException {
    Path file = dir.resolve(IN_USE);
    FileChannel ch = null;
    try {
      ch =
          FileChannel.open(
              file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
      Object before = Files.readAttributes(file, BasicFileAttributes.class).fileKey();
      FileLock lock = ch.lock(0, Long.MAX_VALUE, true);
      Object after = Files.readAttributes(file, BasicFileAttributes.class).fileKey();
      if (before == null || !before.equals(after)) {
        ch.close();
        return null;
      }
      return lock;
    } catch (IOException | RuntimeException e) {
      if (ch != null) {
        ch.close();
      }
      if (e instanceof NoSuchFileException) {
        return null; // the directory is gone
      }
      throw e;
    }
  }

  /** Whether this process holds {@code dir}'s lock already. */
  private static synchronized boolean holds(Path dir) {
    return dir.equals(inUseDir) && inUse != null && inUse.isValid();
  }

  /** Keeps {@code lock} on {@code dir} for the life of the process (instead of an earlier one). */
  private static synchronized void keep(FileLock lock, Path dir) {
    if (inUse != null && inUse != lock) {
      release(inUse);
    }
    inUse = lock;
    inUseDir = dir;
  }

  private static void release(FileLock lock) {
    try {
      lock.channel().close();
    } catch (IOException e) {
      // closing drops the lock either way
    }
  }

  /**
   * Deletes the {@code runtime-*} directories under {@code root} other than {@code ours} that no
   * process runs from: their {@link #IN_USE} lock can be taken exclusively. Best effort.
   */
  static void removeUnused(Path root, Path ours) {
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(root, RUNTIME_PREFIX + "*")) {
      for (Path dir : ds) {
        if (dir.equals(ours) || !Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
          continue;
        }
        Path file = dir.resolve(IN_USE);
        if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
          continue; // extracted by an older version: whether it runs is unknown
        }
        Path doomed = null;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
          FileLock lock = ch.tryLock();
          if (lock != null) {
            // Out of the way under the lock first: a process that opens the directory from now on
            // finds nothing, and one waiting for its lock finds the file gone.
            doomed = root.resolve(REMOVING_PREFIX + dir.getFileName());
            Files.move(dir, doomed, StandardCopyOption.ATOMIC_MOVE);
          }
        } catch (IOException | OverlappingFileLockException e) {
          doomed = null; // in use (by this process, too), or not ours to judge: leave it
        }
        if (doomed != null) {
          deleteTree(doomed);
        }
      }
    } catch (IOException e) {
      // cleaning up is best effort
    }
    // What a clean-up interrupted (killed while deleting) left behind.
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(root, REMOVING_PREFIX + "*")) {
      for (Path dir : ds) {
        deleteTree(dir);
      }
    } catch (IOException e) {
      // best effort
    }
  }

  private static Path cacheRoot() {
    String xdg = System.getenv("XDG_CACHE_HOME");
    Path base =
        xdg != null && xdg.startsWith("/") // a relative one is ignored (XDG): the cwd is anyone's
            ? Path.of(xdg)
            : Path.of(System.getProperty("user.home"), ".cache");
    return base.resolve("granule");
  }

  private static String key(Path jar) throws IOException {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      String id =
          jar.toAbsolutePath()
              + "|"
              + Files.size(jar)
              + "|"
              + Files.getLastModifiedTime(jar).toMillis();
      return HexFormat.of().formatHex(md.digest(id.getBytes(StandardCharsets.UTF_8)), 0, 8);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * Deletes {@code dir} and what it holds, best effort: a leftover temporary directory is harmless
   * and cleaned on a later start. Another process deleting the same tree at once (two commands
   * starting together, both cleaning up after a killed one) is not an error.
   */
  static void deleteTree(Path dir) {
    try {
      Files.walkFileTree(
          dir,
          new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
                throws IOException {
              Files.deleteIfExists(file);
              return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) {
              return FileVisitResult.CONTINUE; // gone meanwhile, or unreadable: leave it
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
              try {
                Files.deleteIfExists(d);
              } catch (DirectoryNotEmptyException stillUsed) {
                // something was created in it meanwhile: leave it
              }
              return FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException | UncheckedIOException e) {
      // best effort (see above)
    }
  }
}
