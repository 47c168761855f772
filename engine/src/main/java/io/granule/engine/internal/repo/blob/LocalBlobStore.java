package io.granule.engine.internal.repo.blob;

import io.granule.engine.internal.nativelib.NativeLibrary;
import io.granule.engine.internal.ops.DirectoryHandle;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link BlobStore} over a local directory. Each {@link BlobType} has its own subdirectory; packs
 * are fanned out further into subdirectories named by the first two characters of their name (so
 * that no directory holds more than a few thousand entries).
 *
 * <p>Nothing inside the root is followed through a link (audit14 B H1): the root is held open as
 * named (links on the way to it are the user's choice), each type directory and fan-out directory
 * is opened from its held parent without following a link ({@link DirectoryHandle#subdirectory})
 * and held for the store's life, and every file operation names a blob through its held directory
 * ({@code /proc/self/fd/N/NAME}, {@code O_NOFOLLOW}). Someone who can write the repository and
 * swaps a directory for a link meanwhile changes nothing; a directory that is a link when first
 * opened is refused ({@link RepositoryCorruptedException}). Without {@code libgranule-native} the
 * directories are used by name after a look that does not follow links. {@link #close} (or the
 * store becoming unreachable) closes the held directories.
 *
 * <p>{@link #save} writes a temporary file (name starting with a dot) in the target directory,
 * fsyncs it, renames it atomically over the target and fsyncs the directory. Temporary files left
 * by a crash, and any file whose name is not a valid blob name, are ignored by {@link #list}.
 *
 * <p>Large blobs handed over in a direct buffer at an aligned address (packs: {@link
 * io.granule.engine.internal.repo.pack.PackWriter} assembles them so) are written with {@code
 * O_DIRECT}, all but their unaligned tail, which is written buffered before the fsync. Measured on
 * a 2-core virtual machine writing 832 MiB of packs: 0.8 CPU-seconds instead of 2.4 (buffered
 * writes allocate and copy into page-cache pages), which the backup's hashing and compression need,
 * and the host's page cache keeps what it held. A file system that refuses {@code O_DIRECT} (at
 * open or at the first write) is written buffered from then on. The system property {@code
 * granule.blob.direct=false} turns direct writes off.
 */
public final class LocalBlobStore implements BlobStore, AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LocalBlobStore.class);

  /** Blobs smaller than this are written buffered: one block of the page cache costs nothing. */
  static final int DIRECT_MIN = 1 << 20;

  /**
   * Memory of a local read-ahead ({@link #withDirectReadAhead}; property {@code
   * granule.blob.read-ahead-bytes}, 0 for the page-cache read-ahead): a restore's read-ahead holds
   * ~25 MiB of packs per 96 MiB of the bench image's disk. Measured (cold 4 GiB restore, 3 rounds):
   * 16, 32 and 64 MiB took the same time, 16 MiB with more system time (loads past it) and 64 MiB
   * with 30 MB more RSS than 32.
   */
  static final long READ_AHEAD_BYTES = 32L << 20;

  /** Where {@link #prefetch} sends what it reads. */
  private static final Path DEV_NULL = Path.of("/dev/null");

  private static final java.nio.file.LinkOption NOFOLLOW = java.nio.file.LinkOption.NOFOLLOW_LINKS;

  private final Path root;

  /**
   * The root's absolute path as the user named it: a relative root resolved against the shell's
   * working directory ({@code $PWD}) where that is the process's, links not resolved.
   */
  private final Path named;

  /**
   * Whether the root is reached through any link ({@link #cache}): a cache in the user's own cache
   * directory, not a repository someone else may have put a link to.
   */
  private final boolean followAnyLink;

  private final AtomicLong directBytes = new AtomicLong();
  private final AtomicLong prefetchedBytes = new AtomicLong();
  // null until the first prefetch asks
  private volatile Boolean inMemory;
  private volatile boolean direct =
      DirectIo.option() != null && !"false".equals(System.getProperty("granule.blob.direct"));
  private final boolean directReads =
      DirectIo.option() != null && !"false".equals(System.getProperty("granule.blob.direct-read"));

  /** A store rooted at {@code root}; directories are created on first save. */
  public LocalBlobStore(Path root) {
    this(root, false);
  }

  private LocalBlobStore(Path root, boolean followAnyLink) {
    this.root = root;
    this.named = logicalAbsolute(root);
    this.followAnyLink = followAnyLink;
  }

  /**
   * A store for a cache of this user's at {@code root} (the metadata cache under {@code
   * $XDG_CACHE_HOME}): its path is followed through any link, as the user set it up; nothing inside
   * it is.
   */
  public static LocalBlobStore cache(Path root) {
    return new LocalBlobStore(root, true);
  }

  /**
   * Another user's hold on this repository (see {@link BlobStore#foreign}), or null: he owns its
   * directory or config (not root, not this process's user), a group with other members than this
   * user, or everyone, can write either, or the config has another name. An unencrypted repository
   * of another user's may have been put in place of this user's (see {@code
   * RepoOption.refuseOthersUnencrypted}).
   */
  @Override
  public Foreign foreign() {
    int self = io.granule.engine.internal.net.PeerUser.self();
    if (self < 0) {
      return null; // not Linux: nothing to tell by
    }
    Path dir = heldRoot();
    ConfigSeen config = configRead;
    Map<String, Object> d;
    try {
      // the directory itself: its /proc/self/fd name is a link the process owns (audit15 I1:
      // read without following it, the directory's owner was never seen)
      d = Files.readAttributes(dir, "unix:uid,gid,mode");
      if (config == null) {
        // not read through a held directory (no libgranule-native): by name, as it is now
        Path c = dir.resolve("config");
        config = configSeen(Files.readAttributes(c, "unix:uid,gid,mode,nlink", NOFOLLOW), c, self);
      }
    } catch (IOException | RuntimeException e) {
      return null; // not there: the open says so
    }
    // "/proc/self/fd/N/.": the held directory itself, not the link that names it (its ACL)
    Foreign held =
        foreignDirectory(dir.toString().startsWith("/proc/") ? dir.resolve(".") : dir, d, self);
    if (held != null && held.uid() >= 0) {
      // another user's directory: trusting him (GRANULE_UNENCRYPTED_OWNERS) covers what he holds,
      // not a config a third user owns or can write, nor a second name (audit L6: all passed)
      int owner = held.uid();
      if (config.uid() != 0 && config.uid() != self && config.uid() != owner) {
        return new Foreign(
            -1, held.why() + ", and its config to uid " + config.uid() + ", a third user", false);
      }
      if (config.links() > 1) {
        return new Foreign(-1, held.why() + ", and its config has another name", true);
      }
      if (config.writers() != null) {
        return new Foreign(
            -1, held.why() + ", and " + config.writers() + " can write its config", false);
      }
      return held;
    }
    // What no one user's trust covers comes first (audit L6: a config of another user's, returned
    // first, let GRANULE_UNENCRYPTED_OWNERS cover a directory a group could write).
    if (held != null) {
      return held;
    }
    // the config's owner, names and mode as the file read had them, not a second look by name,
    // which another config swapped in meanwhile passed (audit J2)
    if (config.uid() != 0 && config.uid() != self && config.links() == 1) {
      return config.writers() == null
          ? new Foreign(config.uid(), "it belongs to uid " + config.uid() + ", another user", false)
          : new Foreign(
              -1,
              "its config belongs to uid "
                  + config.uid()
                  + ", another user, and "
                  + config.writers()
                  + " can write it",
              false);
    }
    if (config.links() > 1) {
      // granule's config has one name; another is a hard link someone made to a file of root's
      // (or this user's) he can write, to pass for it (audit15 I1)
      return new Foreign(
          -1,
          "its config has another name (a hard link someone else may have made to a file he can"
              + " write)",
          true);
    }
    return config.writers() == null
        ? null
        : new Foreign(-1, config.writers() + " can write its config", false);
  }

  /**
   * Another user's hold on directory {@code dir} (named, links followed: {@code init} checked the
   * way), where {@code init} would make an unencrypted repository that every later command refused;
   * or null. See {@link #foreign}.
   */
  public static Foreign foreignDirectory(Path dir) throws IOException {
    int self = io.granule.engine.internal.net.PeerUser.self();
    if (self < 0) {
      return null; // not Linux: nothing to tell by
    }
    return foreignDirectory(dir, Files.readAttributes(dir, "unix:uid,gid,mode"), self);
  }

  /**
   * The directory's part of {@link #foreign}: another user owns it, or others can write it (root's
   * or this user's: a group's member moved one of a group-shared repository's directories into
   * place and wrote his config into one of its files, audit J1).
   */
  private static Foreign foreignDirectory(Path at, Map<String, Object> d, int self) {
    int owner = ((Number) d.get("uid")).intValue();
    if (owner != 0 && owner != self) {
      // who else can write it, besides him (his own group is his): trusting him does not cover a
      // third user who can (audit L6)
      String third = othersWriting(at, d, owner);
      if (third != null) {
        return new Foreign(
            -1,
            "it belongs to uid " + owner + ", another user, and " + third + " can write it",
            false);
      }
      return new Foreign(owner, "it belongs to uid " + owner + ", another user", false);
    }
    String writable = othersWriting(at, d, self);
    return writable == null ? null : new Foreign(-1, writable + " can write its directory", false);
  }

  /**
   * Who besides this user can write {@code at} (attributes {@code a}: gid, mode), its ACL's entries
   * counted (audit K3: an ACL let another user write, and the mode bits did not show it), or null.
   */
  private static String othersWriting(Path at, Map<String, Object> a, int self) {
    return io.granule.engine.internal.ops.SourceAccess.othersWriting(
        at, ((Number) a.get("gid")).intValue(), ((Number) a.get("mode")).intValue(), self);
  }

  /**
   * The config as read: its owner, its number of names, and who else can write it (null: no one).
   */
  private record ConfigSeen(int uid, int links, String writers) {}

  /** {@link ConfigSeen} of config {@code at} with attributes {@code a} (uid, gid, mode, nlink). */
  private static ConfigSeen configSeen(Map<String, Object> a, Path at, int self) {
    return new ConfigSeen(
        ((Number) a.get("uid")).intValue(),
        ((Number) a.get("nlink")).intValue(),
        othersWriting(at, a, self));
  }

  /**
   * {@code p} made absolute as the user's shell names it: against {@code $PWD} where that is an
   * absolute path to the process's working directory, which is that directory's real path (links
   * resolved). A user who had {@code cd} through a link someone put in place of his repository,
   * then named it {@code .}, opened the link's target by its real path, and no link was seen
   * (audit15 F2).
   */
  public static Path logicalAbsolute(Path p) {
    return logicalAbsolute(p, System.getenv("PWD"));
  }

  /** {@link #logicalAbsolute(Path)} with {@code pwd} for {@code $PWD}. */
  static Path logicalAbsolute(Path p, String pwd) {
    if (p.isAbsolute()) {
      return p.normalize();
    }
    if (pwd != null && pwd.startsWith("/")) {
      try {
        Path base = Path.of(pwd);
        if (Files.isSameFile(base, Path.of("").toAbsolutePath())) {
          return base.resolve(p).normalize(); // ".." as the shell's cd takes it
        }
      } catch (IOException | java.nio.file.InvalidPathException e) {
        // not a name of the working directory: the real path
      }
    }
    return p.toAbsolutePath().normalize();
  }

  /** The root directory. */
  public Path root() {
    return root;
  }

  @Override
  public long deleteLeftovers(java.time.Duration olderThan) throws IOException {
    long cutoff = System.currentTimeMillis() - olderThan.toMillis();
    long freed = 0;
    try {
      for (BlobType t : BlobType.values()) {
        if (t == BlobType.LOCK) {
          continue; // lock takers write there while a prune holds its lock
        }
        Dir dir = typeDir(t, false);
        if (dir == null) {
          continue;
        }
        freed += deleteLeftovers(dir.handle(), cutoff);
        if (t == BlobType.PACK) {
          for (String fan : fanNames(dir.handle())) {
            Dir f = fanDir(fan, false);
            if (f != null) {
              freed += deleteLeftovers(f.handle(), cutoff);
            }
          }
        }
      }
      return freed;
    } finally {
      java.lang.ref.Reference.reachabilityFence(this);
    }
  }

  /** Deletes the temporary files older than {@code cutoff} in {@code dir}; the bytes freed. */
  private static long deleteLeftovers(DirectoryHandle dir, long cutoff) throws IOException {
    long freed = 0;
    List<String> old = new ArrayList<>();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir.self())) {
      for (Path f : files) {
        if (f.getFileName().toString().startsWith(".tmp-")) {
          old.add(f.getFileName().toString());
        }
      }
    }
    for (String n : old) {
      Path f = dir.entry(n);
      try {
        BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class, NOFOLLOW);
        if (a.isRegularFile() && a.lastModifiedTime().toMillis() < cutoff) {
          Files.delete(f);
          freed += a.size();
        }
      } catch (NoSuchFileException gone) {
        // removed meanwhile
      }
    }
    return freed;
  }

  /**
   * The file that holds {@code name}, by name (for messages and tests: the store itself reaches it
   * through its held directories).
   */
  public Path path(BlobName name) {
    Path dir = root.resolve(name.type().directory());
    if (name.type() == BlobType.PACK) {
      dir = dir.resolve(name.name().substring(0, 2));
    }
    return dir.resolve(name.name()).normalize();
  }

  // ---- the held directories ----

  /**
   * A directory of blobs, held open, and the held directory it is in (null for the root: its parent
   * is reached by name, as the user named the root).
   */
  private record Dir(DirectoryHandle handle, DirectoryHandle parent) {}

  /**
   * The directories this store holds open, closed by {@link #close} or, once the store is
   * unreachable, by the cleaner. Handles are never closed while the store is in use: one replaced
   * (its directory was removed) is kept in {@link #retired} until then, since another thread may
   * still be naming a file through its descriptor's number.
   */
  private static final class Held implements Runnable {
    final Object lock = new Object();
    volatile Dir root;
    final java.util.concurrent.atomic.AtomicReferenceArray<Dir> types =
        new java.util.concurrent.atomic.AtomicReferenceArray<>(BlobType.values().length);
    final java.util.concurrent.ConcurrentHashMap<String, Dir> fans =
        new java.util.concurrent.ConcurrentHashMap<>();
    final List<DirectoryHandle> retired = new ArrayList<>();

    /** Blob directories whose entry in their parent this store has synced since they existed. */
    final java.util.Set<Path> synced = java.util.concurrent.ConcurrentHashMap.newKeySet();

    volatile boolean closed;

    /** Drops every held directory (kept open until the store closes): they are looked up again. */
    void forget() {
      synchronized (lock) {
        Dir r = root;
        if (r != null) {
          retired.add(r.handle());
          root = null;
        }
        for (int i = 0; i < types.length(); i++) {
          Dir d = types.getAndSet(i, null);
          if (d != null) {
            retired.add(d.handle());
          }
        }
        for (Dir d : fans.values()) {
          retired.add(d.handle());
        }
        fans.clear();
        synced.clear();
      }
    }

    @Override
    public void run() {
      synchronized (lock) {
        closed = true;
        forget();
        for (DirectoryHandle h : retired) {
          try {
            h.close();
          } catch (IOException e) {
            LOG.debug("unable to close {}: {}", h.shown(), e.toString());
          }
        }
        retired.clear();
      }
    }
  }

  private static final java.lang.ref.Cleaner CLEANER = java.lang.ref.Cleaner.create();

  private final Held held = new Held();
  private final java.lang.ref.Cleaner.Cleanable cleanable = CLEANER.register(this, held);

  /** Closes the directories this store holds open; it must not be used afterwards. */
  @Override
  public void close() {
    cleanable.clean();
  }

  private void requireOpen() throws IOException {
    if (held.closed) {
      throw new java.nio.channels.ClosedChannelException();
    }
  }

  /** The root directory, held open; null if there is none and {@code create} is false. */
  private Dir rootDir(boolean create) throws IOException {
    Dir d = held.root;
    if (d != null) {
      return d;
    }
    synchronized (held.lock) {
      requireOpen();
      d = held.root;
      if (d != null) {
        return d;
      }
      DirectoryHandle h;
      try {
        try {
          h = openRoot();
        } catch (NoSuchFileException e) {
          if (!create) {
            return null;
          }
          if (followAnyLink) {
            Files.createDirectories(root); // the user's own cache: links and all
          } else {
            makeDirectories(named);
          }
          h = openRoot();
        }
      } catch (io.granule.engine.internal.ops.SafePath.ChosenLink e) {
        throw refused(e);
      }
      d = new Dir(h, null);
      if (h.held()) {
        held.root = d;
      }
      return d;
    }
  }

  /**
   * {@code root} made absolute as the store names it ({@link #logicalAbsolute}), once no link on
   * the way to it (or to the deepest directory of it that exists) is another user's or in a
   * directory others can write (see {@link #openRoot}).
   *
   * @throws RepositoryCorruptedException naming such a link
   */
  public static Path requireOwnWay(Path root) {
    Path named = logicalAbsolute(root);
    try {
      io.granule.engine.internal.ops.SafePath.locate(named).close();
    } catch (io.granule.engine.internal.ops.SafePath.ChosenLink e) {
      throw refused(e);
    } catch (IOException e) {
      // not resolvable: the init says why when it makes the directory
    }
    return named;
  }

  /**
   * Makes directory {@code dir} and those missing above it: the way to the deepest that exists by
   * the rule of {@link #requireOwnWay} (no link another user owns or could have put there), then
   * each missing one in the one above it, held open, and opened without following a link. Made by
   * name after that check, a link swapped in meanwhile got empty directories made where it led
   * (audit15 I6). Without libgranule-native, by name.
   *
   * @throws RepositoryCorruptedException naming such a link
   * @throws java.nio.file.FileAlreadyExistsException if something else than a directory is there
   */
  public static void makeDirectories(Path dir) throws IOException {
    Path named = logicalAbsolute(dir);
    if (!io.granule.engine.internal.ops.DirectoryHandle.heldAvailable()) {
      Files.createDirectories(named);
      return;
    }
    io.granule.engine.internal.ops.SafePath.Location loc;
    try {
      loc = io.granule.engine.internal.ops.SafePath.locate(named);
    } catch (io.granule.engine.internal.ops.SafePath.ChosenLink e) {
      throw refused(e);
    }
    List<io.granule.engine.internal.ops.DirectoryHandle> opened = new ArrayList<>();
    try (loc) {
      if (loc.rest().isEmpty() || (loc.exists() && loc.isDirectory())) {
        return;
      }
      if (loc.exists()) {
        throw new java.nio.file.FileAlreadyExistsException(
            named.toString(), null, "not a directory");
      }
      io.granule.engine.internal.ops.DirectoryHandle d = loc.dir();
      for (String name : loc.rest().split("/")) {
        if (name.isEmpty()) {
          continue;
        }
        d.makeDirectory(name); // false: made meanwhile; opened below as a directory, or refused
        io.granule.engine.internal.ops.DirectoryHandle c = d.subdirectory(name);
        if (c == null) {
          throw new NoSuchFileException(
              d.shown().resolve(name).toString(), null, "removed meanwhile");
        }
        opened.add(c);
        d = c;
      }
    } finally {
      for (io.granule.engine.internal.ops.DirectoryHandle h : opened) {
        h.close();
      }
    }
  }

  /** The refusal of a repository reached through link {@code e} names. */
  private static RepositoryCorruptedException refused(
      io.granule.engine.internal.ops.SafePath.ChosenLink e) {
    return new RepositoryCorruptedException(
        e.describe("repository ", "the repository opened through it would be the one"));
  }

  private DirectoryHandle openRoot() throws IOException {
    return followAnyLink
        ? DirectoryHandle.openFollowing(named)
        : io.granule.engine.internal.ops.SafePath.openDirectory(named);
  }

  /**
   * The directory of blobs of type {@code t} (the root for the config), held open; null if there is
   * none and {@code create} is false.
   *
   * @throws RepositoryCorruptedException if it is a symbolic link or not a directory
   */
  private Dir typeDir(BlobType t, boolean create) throws IOException {
    if (t == BlobType.CONFIG) {
      return rootDir(create);
    }
    Dir d = held.types.get(t.ordinal());
    if (d != null) {
      return d;
    }
    Dir r = rootDir(create);
    if (r == null) {
      return null;
    }
    synchronized (held.lock) {
      requireOpen();
      d = held.types.get(t.ordinal());
      if (d != null) {
        return d;
      }
      DirectoryHandle h = child(r.handle(), t.directory(), create);
      if (h == null) {
        return null;
      }
      d = new Dir(h, r.handle());
      if (h.held()) {
        held.types.set(t.ordinal(), d);
      }
      return d;
    }
  }

  /** Fan-out directory {@code fan} of the packs, held open; null as {@link #typeDir}. */
  private Dir fanDir(String fan, boolean create) throws IOException {
    Dir d = held.fans.get(fan);
    if (d != null) {
      return d;
    }
    Dir data = typeDir(BlobType.PACK, create);
    if (data == null) {
      return null;
    }
    synchronized (held.lock) {
      requireOpen();
      d = held.fans.get(fan);
      if (d != null) {
        return d;
      }
      DirectoryHandle h = child(data.handle(), fan, create);
      if (h == null) {
        return null;
      }
      d = new Dir(h, data.handle());
      if (h.held()) {
        held.fans.put(fan, d);
      }
      return d;
    }
  }

  /**
   * Directory {@code name} of {@code parent}, opened from it without following a link, made there
   * first if missing and {@code create}; null if missing otherwise.
   */
  private DirectoryHandle child(DirectoryHandle parent, String name, boolean create)
      throws IOException {
    try {
      DirectoryHandle h = parent.subdirectory(name);
      if (h == null && create) {
        parent.makeDirectory(name);
        h = parent.subdirectory(name);
        if (h == null) {
          throw new NoSuchFileException(parent.shown().resolve(name).toString());
        }
      }
      return h;
    } catch (java.nio.file.NotDirectoryException e) {
      throw replaced(parent.shown().resolve(name), parent);
    }
  }

  /** The refusal of repository directory {@code dir}, a link or no directory, in {@code parent}. */
  private RepositoryCorruptedException replaced(Path dir, DirectoryHandle parent) {
    boolean link;
    try {
      link =
          Files.readAttributes(
                  parent.entry(dir.getFileName().toString()), BasicFileAttributes.class, NOFOLLOW)
              .isSymbolicLink();
    } catch (IOException | RuntimeException e) {
      link = false;
    }
    return new RepositoryCorruptedException(
        "repository directory '"
            + dir
            + "' is "
            + (link ? "a symbolic link" : "not a directory")
            + ": someone who can write the repository at '"
            + root
            + "' replaced it. Granule follows no link inside a repository, so nothing was read,"
            + " written or deleted through it; put the repository's own directory back (or"
            + " remove the "
            + (link ? "link" : "file")
            + " if the repository never had one), and make the repository writable only by the"
            + " users who back up into it");
  }

  /** The held directory of blob {@code name} (its fan-out directory for a pack), or null. */
  private Dir dirOf(BlobName name, boolean create) throws IOException {
    requireOpen();
    return name.type() == BlobType.PACK
        ? fanDir(name.name().substring(0, 2), create)
        : typeDir(name.type(), create);
  }

  /** How the store names blob {@code name} in file operations (its held directory's entry). */
  private Path at(BlobName name) throws IOException {
    Dir d = dirOf(name, false);
    if (d == null) {
      throw new NoSuchFileException(path(name).toString());
    }
    return d.handle().entry(name.name());
  }

  /**
   * Whether a held directory on the way to {@code name} was removed since it was opened (someone
   * deleted the directory, or the cache directory was cleared, and it may exist anew): then every
   * held directory is dropped, to be looked up again.
   */
  private boolean forgetIfRemoved(BlobName name) {
    Dir r = held.root;
    Dir t = name.type() == BlobType.CONFIG ? null : held.types.get(name.type().ordinal());
    Dir f = name.type() == BlobType.PACK ? held.fans.get(name.name().substring(0, 2)) : null;
    if ((r != null && r.handle().removed())
        || (t != null && t.handle().removed())
        || (f != null && f.handle().removed())) {
      held.forget();
      return true;
    }
    return false;
  }

  /**
   * {@code e} naming the blob as the user knows it ({@link #path}), not the held directory's {@code
   * /proc/self/fd} entry.
   */
  private IOException shown(BlobName name, java.nio.file.FileSystemException e) {
    if (e.getFile() == null || !e.getFile().startsWith("/proc/self/fd/")) {
      return e; // named already (a source file of a save, say)
    }
    String file = path(name).toString();
    java.nio.file.FileSystemException s;
    if (e instanceof NoSuchFileException) {
      s = new NoSuchFileException(file, null, e.getReason());
    } else if (e instanceof java.nio.file.AccessDeniedException) {
      s = new java.nio.file.AccessDeniedException(file, null, e.getReason());
    } else if (e instanceof java.nio.file.FileAlreadyExistsException) {
      s = new java.nio.file.FileAlreadyExistsException(file, null, e.getReason());
    } else {
      s = new java.nio.file.FileSystemException(file, null, e.getReason());
    }
    s.initCause(e);
    return s;
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    save(name, ByteBuffer.wrap(data));
  }

  @Override
  public void save(BlobName name, ByteBuffer data) throws IOException {
    save(name, data, () -> {});
  }

  @Override
  public void save(BlobName name, ByteBuffer data, Runnable released) throws IOException {
    save(
        name,
        (tmp, ch) -> {
          ByteBuffer buf = data.duplicate();
          long pos = writeDirect(tmp, buf);
          while (buf.hasRemaining()) {
            pos += ch.write(buf, pos);
          }
          released.run();
        });
  }

  /** Copies the file's bytes through the kernel (copy_file_range): none pass through memory. */
  @Override
  public void save(BlobName name, FileChannel file, long length) throws IOException {
    save(
        name,
        (tmp, ch) -> {
          long pos = 0;
          while (pos < length) {
            long n = file.transferTo(pos, length - pos, ch);
            if (n <= 0 && file.size() <= pos) {
              throw new java.io.EOFException(
                  "file ends " + (length - pos) + " bytes short of blob " + name);
            }
            pos += n;
          }
        });
  }

  /** Fills a new temporary file of a blob. */
  private interface Filler {
    void fill(Path tmp, FileChannel ch) throws IOException;
  }

  /**
   * Saves a blob atomically and durably: filled into a temporary file beside it, synced, renamed
   * into place, its directory synced. All of it through the held directory: a link put in place of
   * a directory of the repository is refused, never written through.
   */
  private void save(BlobName name, Filler filler) throws IOException {
    save(name, filler, true);
  }

  /**
   * Saves {@code name} only if no blob of that name exists, atomically: the synced temporary file
   * is linked to the name, which fails if the name exists, so of two saves at once exactly one
   * succeeds (init's config: two inits of one directory both reported success, audit14 B L1).
   *
   * @throws java.nio.file.FileAlreadyExistsException if there is one
   */
  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    save(
        name,
        (tmp, ch) -> {
          ByteBuffer buf = ByteBuffer.wrap(data);
          long pos = 0;
          while (buf.hasRemaining()) {
            pos += ch.write(buf, pos);
          }
        },
        false);
  }

  private void save(BlobName name, Filler filler, boolean replace) throws IOException {
    try {
      throughHeld(
          name,
          () -> {
            save(name, dirOf(name, true), filler, replace);
            return null;
          });
    } catch (java.nio.file.FileAlreadyExistsException e) {
      throw new java.nio.file.FileAlreadyExistsException(path(name).toString());
    }
  }

  /** A file operation on a blob through its held directories. */
  private interface HeldOperation<T> {
    T run() throws IOException;
  }

  /**
   * Runs {@code op} on blob {@code name}; once more if it found no file because a held directory on
   * the way was removed meanwhile (a cache cleared, a fan-out directory pruned and made anew): then
   * in the directory there now. A file system error names the blob as the user knows it ({@link
   * #shown}).
   */
  private <T> T throughHeld(BlobName name, HeldOperation<T> op) throws IOException {
    try {
      try {
        return op.run();
      } catch (NoSuchFileException e) {
        if (!forgetIfRemoved(name)) {
          throw e;
        }
      }
      return op.run();
    } catch (java.nio.file.FileSystemException e) {
      throw shown(name, e);
    } finally {
      java.lang.ref.Reference.reachabilityFence(this);
    }
  }

  private void save(BlobName name, Dir dir, Filler filler, boolean replace) throws IOException {
    DirectoryHandle d = dir.handle();
    Path target = d.entry(name.name());
    // The directory's own entry is synced (its parent synced after it exists) by the first save
    // into it of this store, not only by the save that made it: another thread's save could make
    // it and still be writing its blob when this one's is renamed in and counted durable.
    boolean created = !held.synced.contains(d.shown());
    Path tmp =
        d.entry(
            ".tmp-" + name.name() + "-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
    try {
      try (FileChannel ch =
          FileChannel.open(
              tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, NOFOLLOW)) {
        filler.fill(tmp, ch);
        ch.force(true);
      }
      if (replace) {
        Files.move(
            tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } else {
        Files.createLink(target, tmp); // link(2): fails if the name exists
        Files.delete(tmp);
      }
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(tmp);
      throw e;
    }
    // The blob is in place (committed, if it is a snapshot): an interrupt (a cancelled job) must
    // not make the save look failed now, so the directory syncs ignore it and it is kept.
    boolean interrupted = Thread.interrupted();
    try {
      interrupted |= fsyncDirectoryUninterruptibly(d.self());
      if (created) {
        Path parent =
            dir.parent() != null
                ? dir.parent().self()
                : root.toAbsolutePath().getParent(); // "repo" (relative) has one too
        if (parent != null) {
          interrupted |= fsyncDirectoryUninterruptibly(parent);
        }
        held.synced.add(d.shown());
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Syncs {@code dir}, again if an interrupt closed the channel; whether one came. */
  private static boolean fsyncDirectoryUninterruptibly(Path dir) throws IOException {
    boolean interrupted = false;
    while (true) {
      try {
        fsyncDirectory(dir);
        return interrupted;
      } catch (java.nio.channels.ClosedByInterruptException e) {
        interrupted = true;
        Thread.interrupted();
      }
    }
  }

  /**
   * Writes the aligned head of {@code buf} to the new file {@code tmp} with {@code O_DIRECT}, where
   * it can; advances {@code buf} past what it wrote and returns its length (0: nothing written).
   */
  private long writeDirect(Path tmp, ByteBuffer buf) throws IOException {
    if (!direct || !buf.isDirect() || buf.remaining() < DIRECT_MIN) {
      return 0;
    }
    int align = DirectIo.alignment(tmp);
    if (align == 0 || buf.alignmentOffset(buf.position(), align) != 0) {
      return 0;
    }
    int aligned = buf.remaining() - buf.remaining() % align;
    ByteBuffer head = buf.duplicate();
    head.limit(head.position() + aligned);
    long pos = 0;
    try (FileChannel d =
        FileChannel.open(tmp, StandardOpenOption.WRITE, NOFOLLOW, DirectIo.option())) {
      while (head.hasRemaining()) {
        pos += d.write(head, pos);
      }
    } catch (IOException | UnsupportedOperationException e) {
      // Refused at open (tmpfs before Linux 6.6, some FUSE and network file systems) or at the
      // first write: this store writes buffered from now on; the caller rewrites from offset 0.
      if (direct) {
        direct = false;
        LOG.debug("{} refuses direct writes ({}); writing buffered", root, e.toString());
      }
      return 0;
    }
    buf.position(buf.position() + aligned);
    directBytes.addAndGet(pos);
    return pos;
  }

  /** Bytes this store has written with {@code O_DIRECT}. */
  long directBytes() {
    return directBytes.get();
  }

  private static void fsyncDirectory(Path dir) throws IOException {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    }
  }

  @Override
  public byte[] load(BlobName name) throws IOException {
    return throughHeld(name, () -> loadWhole(name));
  }

  private BlobNotRegularException notRegular(BlobName name) {
    // a FIFO would block the read forever (a repository's config or a pack replaced by one); a
    // link is not followed
    return new BlobNotRegularException(
        "blob "
            + name
            + " in "
            + root
            + " is not a regular file (someone who can write the"
            + " repository put it there: remove it)");
  }

  /**
   * The owner, link count and other writers of the config file as last read through the held root
   * ({@link #loadConfigHeld}), or null: what {@link #foreign} judges, so that no other file can be
   * swapped in between the read and the judgement.
   */
  private volatile ConfigSeen configRead;

  private byte[] loadWhole(BlobName name) throws IOException {
    if (name.type() == BlobType.CONFIG) {
      Dir d = dirOf(name, false);
      if (d != null && d.handle().held()) {
        return loadConfigHeld(d.handle(), name);
      }
    }
    try (FileChannel ch = openRegular(name, false)) {
      BlobStore.requireLoadable(name, ch.size(), root.toString());
      return readAll(name, ch);
    }
  }

  /**
   * Blob {@code name} opened to read, only if it is a regular file (a FIFO would block the open or
   * the read forever: a repository's config or a pack replaced by one; a link is not followed).
   * Where its directory is held, the entry is pinned there ({@code O_PATH}, which a FIFO does not
   * block), and stat'ed and opened through that one descriptor: a FIFO swapped in after a check by
   * name blocked the open. With {@code O_DIRECT} if {@code direct} and the file system takes it.
   */
  private FileChannel openRegular(BlobName name, boolean direct) throws IOException {
    Dir d = dirOf(name, false);
    if (d == null) {
      throw new NoSuchFileException(path(name).toString());
    }
    if (!d.handle().held()) {
      // one look: a blob deleted between two (a lock released) was taken for "not a regular file"
      Path p = at(name);
      if (!Files.readAttributes(p, BasicFileAttributes.class, NOFOLLOW).isRegularFile()) {
        throw notRegular(name);
      }
      return openRead(p, direct, NOFOLLOW);
    }
    try (DirectoryHandle.NewFile f = d.handle().pin(name.name())) {
      if (!Files.readAttributes(f.self(), BasicFileAttributes.class).isRegularFile()) {
        throw notRegular(name); // what the pin holds: a link is not followed (O_NOFOLLOW)
      }
      return openRead(f.self(), direct);
    }
  }

  /** {@code p} opened to read, with {@code O_DIRECT} if {@code direct} and it is taken. */
  private static FileChannel openRead(Path p, boolean direct, java.nio.file.OpenOption... more)
      throws IOException {
    java.util.Set<java.nio.file.OpenOption> opts = new java.util.HashSet<>();
    opts.add(StandardOpenOption.READ);
    opts.addAll(List.of(more));
    if (direct) {
      try {
        java.util.Set<java.nio.file.OpenOption> d = new java.util.HashSet<>(opts);
        d.add(DirectIo.option());
        return FileChannel.open(p, d);
      } catch (NoSuchFileException e) {
        throw e; // gone: not a reason to read buffered
      } catch (UnsupportedOperationException | java.nio.file.FileSystemException e) {
        // O_DIRECT refused (EINVAL): buffered
      }
    }
    return FileChannel.open(p, opts);
  }

  /**
   * The config, read from the file held by an {@code O_PATH} descriptor taken in its held directory
   * (not through a link), whose owner, link count and writers are kept in {@link #configRead}:
   * opened and stat'ed through {@code /proc/self/fd/N}, both are that one file's.
   */
  private byte[] loadConfigHeld(DirectoryHandle dir, BlobName name) throws IOException {
    try (DirectoryHandle.NewFile f = dir.pin(name.name())) {
      Map<String, Object> a = Files.readAttributes(f.self(), "unix:uid,gid,mode,nlink,size");
      if ((((Number) a.get("mode")).intValue() & 0170000) != 0100000) {
        throw notRegular(name);
      }
      BlobStore.requireLoadable(name, ((Number) a.get("size")).longValue(), root.toString());
      byte[] b;
      try (FileChannel ch = FileChannel.open(f.self(), StandardOpenOption.READ)) {
        b = readAll(name, ch);
      }
      // its ACL by its name in the held directory (the descriptor held is O_PATH, which has no
      // extended attributes), if that name still leads to the file read; else no one is trusted
      Path named = dir.entry(name.name());
      ConfigSeen seen = configSeen(a, named, io.granule.engine.internal.net.PeerUser.self());
      Object key = Files.readAttributes(f.self(), BasicFileAttributes.class).fileKey();
      if (key == null
          || !key.equals(
              Files.readAttributes(named, BasicFileAttributes.class, NOFOLLOW).fileKey())) {
        seen = new ConfigSeen(seen.uid(), seen.links(), "someone (it was replaced as it was read)");
      }
      configRead = seen;
      return b;
    }
  }

  /** What {@code ch} holds now, read to its end (a blob that grew or shrank meanwhile too). */
  private byte[] readAll(BlobName name, FileChannel ch) throws IOException {
    long size = ch.size();
    BlobStore.requireLoadable(name, size, root.toString());
    byte[] b = new byte[(int) size];
    ByteBuffer buf = ByteBuffer.wrap(b);
    while (buf.hasRemaining()) {
      if (ch.read(buf) < 0) {
        return java.util.Arrays.copyOf(b, buf.position()); // shrunk meanwhile
      }
    }
    ByteBuffer more = ByteBuffer.allocate(1);
    if (ch.read(more) < 0) {
      return b;
    }
    // grown meanwhile: what is there now
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    out.write(b);
    out.write(more.array());
    out.write(java.nio.channels.Channels.newInputStream(ch).readAllBytes());
    return out.toByteArray();
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    if (length < 0) {
      throw new IllegalArgumentException(
          "invalid range of blob " + name + ": offset=" + offset + " length=" + length);
    }
    ByteBuffer buf = ByteBuffer.allocate(length);
    load(name, offset, buf);
    return buf.array();
  }

  @Override
  public void load(BlobName name, long offset, ByteBuffer dst) throws IOException {
    int length = dst.remaining();
    if (offset < 0) {
      throw new IllegalArgumentException(
          "invalid range of blob " + name + ": offset=" + offset + " length=" + length);
    }
    try (FileChannel ch = open(name)) {
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = ch.read(dst, pos);
        if (n < 0 && ch.size() >= offset + length) {
          throw new ShortReadException(
              "blob "
                  + name
                  + " in "
                  + root
                  + " read ended at "
                  + pos
                  + " though its size is "
                  + ch.size()
                  + ": the storage answers unreliably (range requested: offset="
                  + offset
                  + " length="
                  + length
                  + ")");
        }
        if (n < 0) {
          throw new EOFException(
              "blob "
                  + name
                  + " in "
                  + root
                  + " ends at "
                  + ch.size()
                  + ", before the range requested: offset="
                  + offset
                  + " length="
                  + length);
        }
        pos += n;
      }
    }
  }

  /**
   * Reads the range into the page cache, on the calling thread: one large sequential read instead
   * of the many small ones of the loads that follow, each of which would otherwise wait for the
   * disk. The range is sent to {@code /dev/null} ({@link FileChannel#transferTo}: {@code
   * sendfile(2)}, which splices the file's pages without copying them, and waits for them as a read
   * does). Reading it into a scratch buffer cost a copy of every byte (0.6 CPU-s of a cold 4 GiB
   * restore, as much as the writers' own reads); asking the kernel with {@code
   * posix_fadvise(WILLNEED)} saves the copy too but returns at once, which queues up to 96 MiB of
   * reads ahead of the ones the writers wait for (measured slower, see docs/design.md).
   */
  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    if (offset < 0 || length <= 0 || inMemory()) {
      return;
    }
    try (FileChannel ch = open(name);
        FileChannel sink = FileChannel.open(DEV_NULL, StandardOpenOption.WRITE)) {
      long end = Math.min(offset + length, ch.size());
      long pos = offset;
      while (pos < end) {
        long n = ch.transferTo(pos, end - pos, sink);
        if (n <= 0) {
          break;
        }
        pos += n;
        prefetchedBytes.addAndGet(n);
      }
    } catch (IOException | RuntimeException e) {
      LOG.debug("prefetch of {} [{}, +{}) dropped: {}", name, offset, length, e.toString());
    }
  }

  /**
   * Blob {@code name} opened to read through its held directory (not through a link); once more if
   * that directory was removed meanwhile.
   */
  private FileChannel open(BlobName name) throws IOException {
    return open(name, false);
  }

  /**
   * Blob {@code name} opened to read through its held directory (not through a link), with {@code
   * O_DIRECT} if {@code direct} and the file system takes it, else buffered; once more if that
   * directory was removed meanwhile.
   */
  private FileChannel open(BlobName name, boolean direct) throws IOException {
    return throughHeld(name, () -> openRegular(name, direct));
  }

  /**
   * This store with restores' read-ahead into memory of its own: each hinted range is read with
   * {@code O_DIRECT} by a {@link PrefetchingBlobStore} ({@link #READ_AHEAD_BYTES}, 4 reads at a
   * time) and the loads inside it are served from there, past the page cache. This store itself
   * where direct reads are off ({@code -Dgranule.blob.direct-read=false}) or cannot work (no {@code
   * O_DIRECT}, a file system in memory, a block size that is no power of two): its {@link
   * #prefetch} then reads ranges into the page cache.
   */
  public BlobStore withDirectReadAhead() {
    if (!directReads || inMemory()) {
      return this;
    }
    int align = Files.isDirectory(root) ? DirectIo.alignment(root) : DirectIo.MIN_ALIGN;
    if (align == 0) {
      return this;
    }
    long budget = Long.getLong("granule.blob.read-ahead-bytes", READ_AHEAD_BYTES);
    if (budget <= 0) {
      return this;
    }
    return new PrefetchingBlobStore(
        this,
        budget,
        PrefetchingBlobStore.DEFAULT_MAX_RANGE,
        PrefetchingBlobStore.DEFAULT_THREADS,
        (name, offset, dst) -> readDirect(name, offset, dst, align),
        align);
  }

  /**
   * Reads {@code dst.remaining()} bytes of {@code name} from {@code offset} with {@code O_DIRECT}
   * (offset, length and address aligned to {@code align}), fewer where the blob ends; returns how
   * many. Reads buffered where the file system refuses {@code O_DIRECT} at open.
   */
  int readDirect(BlobName name, long offset, ByteBuffer dst, int align) throws IOException {
    int start = dst.position();
    try (FileChannel ch = open(name, true)) {
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = ch.read(dst, pos);
        if (n < 0) {
          break;
        }
        pos += n;
        if (n % align != 0) {
          break; // the end of the file: a direct read may not go on from an unaligned offset
        }
      }
    }
    return dst.position() - start;
  }

  /** Bytes {@link #prefetch} has read. */
  long prefetchedBytes() {
    return prefetchedBytes.get();
  }

  /**
   * Whether the store lives in memory (tmpfs, ramfs): its files are always in the page cache, and a
   * prefetch would only copy them for nothing (0.3 CPU-s in a restore of a 4 GiB image).
   */
  private boolean inMemory() {
    Boolean m = inMemory;
    if (m == null) {
      m = DirectIo.inMemory(root);
      inMemory = m;
    }
    return m;
  }

  @Override
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    try {
      return throughHeld(
          name,
          () -> {
            Dir d = dirOf(name, false);
            if (d == null) {
              return Optional.empty();
            }
            BasicFileAttributes a =
                Files.readAttributes(
                    d.handle().entry(name.name()), BasicFileAttributes.class, NOFOLLOW);
            return Optional.of(new BlobInfo(name, a.size(), a.lastModifiedTime().toInstant()));
          });
    } catch (NoSuchFileException e) {
      return Optional.empty();
    }
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    try {
      requireOpen();
      List<BlobName> names = new ArrayList<>();
      Dir dir = typeDir(type, false);
      if (dir == null) {
        return names;
      }
      if (dir.handle().removed()) {
        held.forget(); // removed since it was opened: the one there now, if any
        dir = typeDir(type, false);
        if (dir == null) {
          return names;
        }
      }
      if (type == BlobType.CONFIG) {
        try {
          if (Files.readAttributes(
                  dir.handle().entry(BlobName.CONFIG.name()), BasicFileAttributes.class, NOFOLLOW)
              .isRegularFile()) {
            names.add(BlobName.CONFIG);
          }
        } catch (NoSuchFileException e) {
          // none
        }
        return names;
      }
      if (type == BlobType.PACK) {
        for (String fan : fanNames(dir.handle())) {
          Dir f = fanDir(fan, false);
          if (f == null) {
            // nothing removes a fan-out directory: its packs left out unsaid were taken for
            // missing (audit N3)
            throw new IOException(
                "directory "
                    + dir.handle().shown().resolve(fan)
                    + " listed, then not found: the storage lists unreliably");
          }
          collect(type, f.handle(), names);
        }
      } else {
        collect(type, dir.handle(), names);
      }
      return names;
    } finally {
      java.lang.ref.Reference.reachabilityFence(this);
    }
  }

  /**
   * The fan-out directories in {@code data}: entries named as one (two characters a blob name may
   * start with) that are directories; other files are ignored.
   *
   * @throws RepositoryCorruptedException if one is a symbolic link
   */
  private List<String> fanNames(DirectoryHandle data) throws IOException {
    List<String> fans = new ArrayList<>();
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(data.self())) {
      for (Path e : entries) {
        String n = e.getFileName().toString();
        if (n.length() != 2 || !BlobName.isValid(n + n)) {
          continue;
        }
        BasicFileAttributes a;
        try {
          a = Files.readAttributes(e, BasicFileAttributes.class, NOFOLLOW);
        } catch (NoSuchFileException gone) {
          fans.add(n); // listed: no fan-out directory is removed, its opening says (audit N3)
          continue;
        }
        if (a.isSymbolicLink()) {
          throw replaced(data.shown().resolve(n), data);
        }
        if (a.isDirectory()) {
          fans.add(n);
        }
      }
    }
    java.util.Collections.sort(fans);
    return fans;
  }

  private static void collect(BlobType type, DirectoryHandle dir, List<BlobName> names)
      throws IOException {
    // Every name the directory lists that is a file (a regular one; for locks, any but a directory
    // or a link), and every one gone by the time it is looked at: a listing says what the
    // directory held when read, as an object store's does, and its readers already take "listed,
    // then gone" for a blob deleted meanwhile. A refresh replaces its lock blob (new saved, old
    // deleted); a listing that dropped the old one as gone showed no lock at all, and its taker
    // never learned it should list again. A pack that readdir showed and stat never found was
    // dropped from every listing of a repair, taken for missing, and its entries dropped; the
    // next repair deleted it with its intact chunks (audit N3). Listed, it stops the repair as
    // "listed, then not found". Links are no blobs: they are not followed, nor listed.
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir.self())) {
      for (Path f : files) {
        String n = f.getFileName().toString();
        if (!BlobName.isValid(n)) {
          continue;
        }
        boolean blob;
        try {
          BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class, NOFOLLOW);
          blob =
              type == BlobType.LOCK ? !a.isDirectory() && !a.isSymbolicLink() : a.isRegularFile();
        } catch (NoSuchFileException gone) {
          blob = true;
        }
        if (blob) {
          names.add(new BlobName(type, n));
        }
      }
    }
  }

  @Override
  public void delete(BlobName name) throws IOException {
    try {
      for (int attempt = 0; ; attempt++) {
        Dir d = dirOf(name, false);
        if (d == null) {
          return;
        }
        try {
          // unlink: a link at the name is removed itself, never what it points to
          if (!Files.deleteIfExists(d.handle().entry(name.name()))
              && attempt == 0
              && forgetIfRemoved(name)) {
            continue;
          }
          return;
        } catch (java.nio.file.FileSystemException e) {
          throw shown(name, e);
        }
      }
    } finally {
      java.lang.ref.Reference.reachabilityFence(this);
    }
  }

  @Override
  public String location() {
    return root.toString();
  }

  /** The real path of the directory (links resolved), else its absolute normalized path. */
  @Override
  public String place() {
    Path held = heldRoot();
    try {
      // the directory held, whatever its name leads to now
      return held == named ? root.toRealPath().toString() : Files.readSymbolicLink(held).toString();
    } catch (IOException e) {
      return named.normalize().toString();
    }
  }

  /**
   * The name of the directory held ({@code /proc/self/fd/N}), or the root as named where it is not
   * held or not there.
   */
  private Path heldRoot() {
    try {
      Dir d = rootDir(false);
      if (d != null && d.handle().held()) {
        return d.handle().self();
      }
    } catch (IOException | RepositoryCorruptedException e) {
      // as named: it says so when used
    }
    return named;
  }

  /** What the directory is: its device and inode numbers and birth time (see {@link #identity}). */
  @Override
  public Optional<String> placeIdentity() {
    return identity(heldRoot());
  }

  /**
   * {@code dev=D,ino=I,born=S.N} of directory {@code dir} (links followed): its device and inode
   * numbers, the same however it is reached (a bind mount too) while its file system is mounted,
   * and the birth time of that inode, which a directory made later with the same inode number (the
   * old one deleted) does not share. {@code dev=D,ino=I} where the birth time is not known (a file
   * system that does not keep it, a kernel before statx, no libgranule-native: the JDK cannot read
   * it); empty if the directory cannot be looked at.
   */
  public static Optional<String> identity(Path dir) {
    if (NativeLibrary.unavailableReason() == null) {
      long[] out = new long[4];
      int r = birth0((dir.toAbsolutePath() + "\0").getBytes(StandardCharsets.UTF_8), out);
      if (r == 1) {
        return Optional.of(
            "dev="
                + out[0]
                + ",ino="
                + out[1]
                + ",born="
                + out[2]
                + "."
                + String.format(Locale.ROOT, "%09d", out[3]));
      }
      if (r == 0) {
        return Optional.of("dev=" + out[0] + ",ino=" + out[1]);
      }
      // statx refused (ENOSYS in a sandbox, ...): what the JDK tells
    }
    try {
      java.util.Map<String, Object> a = Files.readAttributes(dir, "unix:dev,ino");
      return Optional.of("dev=" + a.get("dev") + ",ino=" + a.get("ino"));
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return Optional.empty();
    }
  }

  /**
   * ext2/3/4's statfs magic: a file system whose f_fsid comes from its UUID (btrfs's differs per
   * subvolume and its st_dev is not mountinfo's, audit14 E; XFS's comes from the device).
   */
  private static final java.util.Set<Long> FSID_FROM_UUID = java.util.Set.of(0xEF53L);

  @Override
  public Optional<String> placeInFileSystem() {
    Path held = heldRoot();
    return held == named ? fileSystemPlace(root) : fileSystemPlaceHeld(held);
  }

  /** The directory's absolute path as named, links not resolved. */
  @Override
  public Optional<String> placeAsNamed() {
    return Optional.of(named.normalize().toString());
  }

  /**
   * Where directory {@code dir} is inside its file system, whatever it is mounted at: {@code
   * fsid=F,path=P}, F the file system's statfs f_fsid, P the directory's path from the file
   * system's root (mountinfo's root of the mount it is under, then its real path below the mount
   * point). Only for ext2/3/4, whose f_fsid comes from its UUID (XFS's comes from the device it is
   * mounted from, btrfs's differs per subvolume, tmpfs has none); empty elsewhere, without
   * libgranule-native, or if it cannot be told. A repository directory someone made anew in place
   * of the one pinned (new inode and birth time), on its file system mounted at another path, is
   * found by it (audit14 C3).
   */
  public static Optional<String> fileSystemPlace(Path dir) {
    if (NativeLibrary.unavailableReason() != null || !DirectoryHandle.heldAvailable()) {
      return Optional.empty();
    }
    try (DirectoryHandle d = DirectoryHandle.openFollowing(dir)) {
      return fileSystemPlaceHeld(d.self());
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  /**
   * {@link #fileSystemPlace} of the directory held as {@code self} ({@code /proc/self/fd/N}): its
   * file system's statfs, the mount it is reached through by that mount's id ({@code
   * /proc/self/fdinfo/N}: the last of the longest mount points that prefix its path was the wrong
   * one for a hidden or moved mount, audit15 F4), and its path below that mount's point as the
   * kernel names the descriptor.
   */
  private static Optional<String> fileSystemPlaceHeld(Path self) {
    if (NativeLibrary.unavailableReason() != null) {
      return Optional.empty();
    }
    try {
      long[] out = new long[3];
      if (fsid0((self + "\0").getBytes(StandardCharsets.UTF_8), out) != 0
          || !FSID_FROM_UUID.contains(out[0])
          || (out[1] == 0 && out[2] == 0)) {
        return Optional.empty();
      }
      OptionalLong mountId = io.granule.engine.internal.image.MountInfo.mountIdOfDescriptor(self);
      if (mountId.isEmpty()) {
        return Optional.empty();
      }
      String real = Files.readSymbolicLink(self).toString();
      String id = Long.toString(mountId.getAsLong());
      // decoded leniently: one mount point that is not UTF-8 anywhere made the whole read fail
      // (audit14 E)
      for (String line :
          io.granule.engine.internal.image.MountInfo.lines(
              io.granule.engine.internal.image.MountInfo.SELF)) {
        String[] f = line.split(" ");
        if (f.length < 5 || !f[0].equals(id)) {
          continue;
        }
        String point = io.granule.engine.internal.image.BlockDeviceClaim.unescape(f[4]);
        String mountRoot = io.granule.engine.internal.image.BlockDeviceClaim.unescape(f[3]);
        String below;
        if (real.equals(point)) {
          below = "";
        } else if (point.equals("/")) {
          below = real;
        } else if (real.startsWith(point + "/")) {
          below = real.substring(point.length());
        } else {
          return Optional.empty(); // named otherwise than its mount: cannot be told
        }
        String inner = (mountRoot.equals("/") ? "" : mountRoot) + below;
        return Optional.of(
            String.format(Locale.ROOT, "fsid=%08x%08x,path=", out[1], out[2])
                + (inner.isEmpty() ? "/" : inner));
      }
      return Optional.empty();
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  /** statfs of the NUL-terminated {@code path} into {@code out}: f_type, f_fsid; 0 or -errno. */
  private static native int fsid0(byte[] path, long[] out);

  /**
   * statx of the NUL-terminated {@code path} (links followed) into {@code out}: st_dev, inode
   * number, birth time seconds and nanoseconds; 1 if the birth time is known, 0 if not, or -errno.
   */
  private static native int birth0(byte[] path, long[] out);
}
