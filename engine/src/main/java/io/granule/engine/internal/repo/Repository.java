package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.backup.Backup;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.Damage;
import io.granule.engine.internal.repo.backup.DataSubset;
import io.granule.engine.internal.repo.backup.DiskRestorer;
import io.granule.engine.internal.repo.backup.RestoreListener;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.backup.Verifier;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.CachingBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.JitWarmup;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.crypto.KeyInfo;
import io.granule.engine.internal.repo.crypto.KeyRing;
import io.granule.engine.internal.repo.crypto.MasterKey;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexCache;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.lock.Lock;
import io.granule.engine.internal.repo.lock.LockCheckingBlobStore;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.lock.LockManager;
import io.granule.engine.internal.repo.maintenance.ForgetPolicy;
import io.granule.engine.internal.repo.maintenance.Pruner;
import io.granule.engine.internal.repo.maintenance.Repairer;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.DynamicIndex;
import io.granule.engine.internal.repo.snapshot.DynamicIndexReader;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.FixedIndexReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.ManifestReader;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import io.granule.engine.internal.repo.snapshot.SnapshotStream;
import io.granule.engine.internal.repo.store.ChunkReader;
import io.granule.engine.internal.repo.store.UnlistedPacks;
import io.granule.engine.spi.DiskImageWriter;
import java.io.Closeable;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A deduplicating repository: the facade the CLI and the engine call.
 *
 * <p>The first operation that needs chunk locations (a backup, a read of a disk or stream, stats)
 * reads every index blob into an off-heap {@link ChunkIndex} (damaged index blobs are skipped with
 * a warning: their chunks are stored again by the next backup, and verify names them); listing
 * snapshots and the like never load it. Backups and reads may run from several threads; backups are
 * serialized. Between processes, {@link #lock} takes a shared or exclusive repository lock (see
 * {@link LockManager}); taking one reloads the chunk index if index blobs changed meanwhile (a
 * prune ran), and writes through this instance then check that the lock is still held.
 *
 * <p>Errors are the unchecked exceptions of this package: {@link NotARepositoryException}, {@link
 * UnsupportedRepositoryVersionException}, {@link RepositoryCorruptedException}, {@link
 * SnapshotNotFoundException}, {@link AmbiguousSnapshotException}, {@link
 * SourceUnreadableException}, and {@link RepositoryException} for the rest.
 */
public final class Repository implements Closeable {
  private static final Logger LOG = LoggerFactory.getLogger(Repository.class);
  private static final Pattern HEX_PREFIX = Pattern.compile("[0-9a-f]{1,64}");
  private static final long DEFAULT_CACHE_BYTES = 64L << 20;

  private final BlobStore store;
  private final RepositoryConfig config;
  private final BlobCodec codec;
  private final ChunkHasher hasher;
  private final Clock clock;
  private final Path cacheDir;
  private final MasterKey masterKey;

  /** The config blob as read or written (encrypted only: new key blobs seal its digest). */
  private final byte[] configBlob;

  private volatile BlobName keyBlob;
  private volatile ChunkIndex index;
  private volatile ChunkReader reader;

  /**
   * Whether the chunk index must be read again before its next use (index blobs changed, or a
   * failed backup may have put chunks of packs never saved into it).
   */
  private volatile boolean indexStale;

  /** Packs an index blob lists, or found damaged: those the next backup need not look at. */
  private final Set<PackId> knownPacks = new HashSet<>();

  /** The index blobs the chunk index was loaded from. */
  private Set<BlobName> loadedIndexes = Set.of();

  /** Where the chunk index is kept between runs ({@link #keepIndexIn}); null: it is not. */
  private volatile Path indexFile;

  /** Where the chunk index last loaded came from (for tests). */
  private volatile IndexSource lastIndexLoad;

  private final LockManager locks;
  private boolean closed;
  private volatile Set<BlobName> unlockedAt; // see readingWithoutLock

  /** Locks taken through {@link #lock} and not yet released. */
  private final List<Lock> held = new CopyOnWriteArrayList<>();

  /**
   * What this repository made and closes with it: the local store of a repository opened by path
   * and the metadata cache's store, which hold directories open (up to 265 descriptors each: a
   * server opening repositories for every job must not wait for the garbage collector to close
   * them).
   */
  private final List<AutoCloseable> owned = new CopyOnWriteArrayList<>();

  private Repository(
      BlobStore store,
      RepositoryConfig config,
      Clock clock,
      Path cacheDir,
      BlobCodec codec,
      ChunkHasher hasher,
      MasterKey masterKey,
      byte[] configBlob,
      BlobName keyBlob) {
    this.store = store;
    this.config = config;
    this.codec = codec;
    this.hasher = hasher;
    this.clock = clock;
    this.cacheDir = cacheDir;
    this.masterKey = masterKey;
    this.configBlob = configBlob;
    this.keyBlob = keyBlob;
    this.locks = new LockManager(store, codec, clock);
    if (store instanceof CachingBlobStore cache) { // made by cached() for this repository
      owned.add(cache::closeCache);
    }
  }

  /** {@code r}, which from now on closes {@code store} (made for it) when it is closed. */
  private static Repository owning(
      java.util.function.Supplier<Repository> open, LocalBlobStore store) {
    Repository r;
    try {
      r = open.get();
    } catch (RuntimeException | Error e) {
      store.close();
      throw e;
    }
    r.owned.add(store);
    return r;
  }

  /** The chunk index, loaded on first use and again after {@link #indexStale} was set. */
  private ChunkIndex index() {
    ChunkIndex i = index;
    if (i == null || indexStale || i.failed()) {
      synchronized (this) {
        if (index == null || indexStale || index.failed()) {
          loadIndex();
        }
        i = index;
      }
    }
    return i;
  }

  /**
   * Keeps the chunk index between runs in directory {@code dir} (the repository's directory in the
   * user's cache, see {@link RepositoryCache}), so that the next command reads one file instead of
   * every index blob; unless property {@code granule.index.keep} is {@code false}. Call it before
   * the index is first used. Returns this repository.
   */
  public Repository keepIndexIn(Path dir) {
    return keepIndexIn(dir, KEEP_MIN_ENTRIES);
  }

  /**
   * As {@link #keepIndexIn(Path)}, in this repository's directory of the user's cache {@code
   * metadataCache} ({@link RepositoryCache#dir}).
   */
  public Repository keepIndexUnder(Path metadataCache) {
    return keepIndexIn(RepositoryCache.dir(metadataCache, config.repositoryId()));
  }

  /**
   * As {@link #keepIndexIn(Path)}, for an index of at least {@code minEntries} entries (a smaller
   * one is read from its blobs about as fast).
   */
  Repository keepIndexIn(Path dir, long minEntries) {
    if (!"false".equals(System.getProperty("granule.index.keep"))) {
      indexFile = dir.resolve(IndexCache.FILE);
      keepMinEntries = minEntries;
    }
    return this;
  }

  /**
   * The fewest entries an index kept between runs has: 65 536 (two index blobs, ~50 ms to read; 32
   * GiB of distinct data at 512 KiB chunks). A smaller one is not worth a file.
   */
  static final long KEEP_MIN_ENTRIES = 1 << 16;

  private volatile long keepMinEntries = KEEP_MIN_ENTRIES;

  /** Where the chunk index last loaded came from; null if none was (for tests). */
  IndexSource lastIndexLoad() {
    return lastIndexLoad;
  }

  /** Whether the repository's chunk index is loaded (for tests). */
  boolean chunkIndexLoaded() {
    return index != null;
  }

  /** The reader of chunks through the current chunk index. */
  private ChunkReader reader() {
    index();
    return reader;
  }

  /**
   * Creates a repository in directory {@code dir} (created if missing, must be empty otherwise).
   *
   * @throws RepositoryException if {@code dir} holds a repository or other files already
   */
  public static Repository init(Path dir, RepositoryConfig cfg) {
    return init(dir, cfg, null);
  }

  /**
   * Creates a repository in directory {@code dir}, encrypted under {@code password} unless it is
   * null (see {@link #init(BlobStore, RepositoryConfig, Clock, Path, char[], KdfParams)}).
   *
   * @throws RepositoryException if {@code dir} holds a repository or other files already
   */
  public static Repository init(Path dir, RepositoryConfig cfg, char[] password) {
    return init(dir, cfg, password, null);
  }

  /**
   * As {@link #init(Path, RepositoryConfig, char[])}; an encrypted repository is recorded as such
   * in the user's metadata cache {@code metadataCache} unless it is null (see {@link ConfigPin}).
   */
  public static Repository init(
      Path named, RepositoryConfig cfg, char[] password, Path metadataCache) {
    // as the store will name it (".." as the shell takes it, a relative path from $PWD), and
    // refused before anything is made or cleared if a link on the way is someone else's choice
    // (audit15 H4, H5: directories were made where such a link led before the store refused)
    Path dir = LocalBlobStore.requireOwnWay(named);
    try {
      if (Files.isDirectory(dir)) {
        if (!Files.exists(dir.resolve("config"), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
          clearInterruptedInit(dir);
        }
        try (var entries = Files.list(dir)) {
          if (entries.findAny().isPresent()) {
            throw new RepositoryException(
                Files.exists(dir.resolve("config"))
                    ? "a repository already exists at '" + dir + "': use it, or choose another path"
                    : "unable to create a repository at '"
                        + dir
                        + "': the directory is not empty (choose an empty or new directory)");
          }
        }
      }
      LocalBlobStore.makeDirectories(dir);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to create a repository at '" + dir + "': " + e.getMessage(), e);
    }
    LocalBlobStore local = new LocalBlobStore(dir);
    return owning(
        () ->
            init(
                local,
                cfg,
                Clock.systemUTC(),
                defaultCacheDir(),
                password,
                KdfParams.DEFAULT,
                null,
                metadataCache),
        local);
  }

  /**
   * Removes what an {@code init} killed before it saved the config left in {@code dir} (the config
   * is saved last): its key blob in {@code keys/} and the config's temporary file, and nothing
   * else. Such a directory was refused as "not empty" by every later init, and as "config file
   * missing" by every other command, until removed by hand (audit12). Only files this process's
   * user owns are removed, through the directories held open (not by name: someone who can write a
   * directory above, or {@code dir} itself, and swaps {@code keys} or {@code dir} for a link cannot
   * make it delete another repository's files; audit12 recheck N1). A directory holding anything
   * else is left as it is (and refused as not empty).
   */
  private static void clearInterruptedInit(Path dir) throws IOException {
    if (!io.granule.engine.internal.ops.DirectoryHandle.heldAvailable()) {
      return; // by name only: not safe against a swap, so left for the user to remove
    }
    int me = io.granule.engine.internal.net.PeerUser.self();
    List<String> files = new ArrayList<>();
    List<String> keyFiles = new ArrayList<>();
    boolean keysDir = false;
    java.time.Duration youngest = null; // of the key files
    io.granule.engine.internal.ops.DirectoryHandle opened;
    try {
      opened = io.granule.engine.internal.ops.DirectoryHandle.open(dir, dir, null);
    } catch (java.nio.file.FileSystemException e) {
      return; // a link at its last component (held only as it is): nothing is cleared
    }
    try (var held = opened) {
      try (var entries = Files.list(held.self())) {
        for (Path e : (Iterable<Path>) entries::iterator) {
          String name = e.getFileName().toString();
          Map<String, Object> a = leftoverAttributes(held.entry(name));
          if (a == null || (Integer) a.get("uid") != me) {
            return;
          }
          boolean file = ((Integer) a.get("mode") & 0170000) == 0100000;
          boolean directory = ((Integer) a.get("mode") & 0170000) == 0040000;
          if (name.startsWith(".tmp-config-") && file) {
            files.add(name);
          } else if (name.equals(BlobType.KEY.directory()) && directory) {
            keysDir = true;
          } else {
            return;
          }
        }
      }
      if (keysDir) {
        try (var keys =
                held.child(BlobType.KEY.directory(), dir.resolve(BlobType.KEY.directory()));
            var entries = Files.list(keys.self())) {
          for (Path k : (Iterable<Path>) entries::iterator) {
            String kn = k.getFileName().toString();
            Map<String, Object> a = leftoverAttributes(keys.entry(kn));
            if (!(kn.matches("[0-9a-f]{64}") || kn.startsWith(".tmp-"))
                || a == null
                || (Integer) a.get("uid") != me
                || ((Integer) a.get("mode") & 0170000) != 0100000
                || (Long) a.get("size") > KeyRing.MAX_KEY_BLOB) {
              return; // not what an init of this user writes
            }
            java.time.Duration age =
                java.time.Duration.between(
                    ((java.nio.file.attribute.FileTime) a.get("lastModifiedTime")).toInstant(),
                    java.time.Instant.now());
            youngest = youngest == null || age.compareTo(youngest) < 0 ? age : youngest;
            keyFiles.add(kn);
          }
          if (youngest != null && youngest.compareTo(INIT_LEFTOVER_AGE) < 0) {
            // audit14 B L1: a second init removed a running init's key blob, and both reported
            // success over a repository no password opened
            throw new RepositoryException(
                "unable to create a repository at '"
                    + dir
                    + "': it holds a key blob written "
                    + Math.max(0, youngest.toSeconds())
                    + " s ago by an init that has not saved its config yet: another 'granule"
                    + " init' may be creating a repository there; if one was interrupted, run"
                    + " this again in a minute");
          }
          for (String kn : keyFiles) {
            Files.deleteIfExists(keys.entry(kn));
          }
        }
        Files.deleteIfExists(held.entry(BlobType.KEY.directory()));
      }
      for (String f : files) {
        Files.deleteIfExists(held.entry(f));
      }
    }
    if (keysDir || !files.isEmpty()) {
      LoggerFactory.getLogger(Repository.class)
          .warn(
              "removed what an interrupted 'granule init' left in '{}' (a key blob saved before"
                  + " the config, which was never written): {} {}",
              dir,
              keyFiles,
              files);
    }
  }

  /**
   * How old a key blob without a config must be to count as an interrupted init's leftover: an init
   * saves its config a few seconds after its key blob (key derivation, two fsyncs).
   */
  static final java.time.Duration INIT_LEFTOVER_AGE = java.time.Duration.ofSeconds(60);

  /**
   * Owner, mode, size and modification time of {@code p} itself (not through a link), or null if it
   * is gone.
   */
  private static Map<String, Object> leftoverAttributes(Path p) throws IOException {
    try {
      return Files.readAttributes(
          p, "unix:uid,mode,size,lastModifiedTime", java.nio.file.LinkOption.NOFOLLOW_LINKS);
    } catch (java.nio.file.NoSuchFileException e) {
      return null;
    }
  }

  /**
   * Creates a repository in an empty blob store. With a {@code password}, a random {@link
   * MasterKey} is generated and saved wrapped under it (scrypt with {@code kdf}), every record is
   * encrypted with AES-256-GCM and chunk ids are HMAC-SHA-256; with none, everything is stored as
   * it is.
   */
  public static Repository init(
      BlobStore store,
      RepositoryConfig cfg,
      Clock clock,
      Path cacheDir,
      char[] password,
      KdfParams kdf) {
    return init(store, cfg, clock, cacheDir, password, kdf, null);
  }

  /**
   * Like {@link #init(BlobStore, RepositoryConfig, Clock, Path, char[], KdfParams)}, keeping a
   * local copy of the metadata blobs under {@code metadataCache/<repository id>/} (for remote
   * stores; see {@link CachingBlobStore}) unless {@code metadataCache} is null.
   */
  public static Repository init(
      BlobStore store,
      RepositoryConfig cfg,
      Clock clock,
      Path cacheDir,
      char[] password,
      KdfParams kdf,
      Path metadataCache) {
    return init(store, cfg, clock, cacheDir, password, kdf, metadataCache, metadataCache);
  }

  /**
   * As {@link #init(BlobStore, RepositoryConfig, Clock, Path, char[], KdfParams, Path)}, with the
   * {@link ConfigPin} of an encrypted repository kept under {@code pins} unless it is null.
   */
  private static Repository init(
      BlobStore store,
      RepositoryConfig cfg,
      Clock clock,
      Path cacheDir,
      char[] password,
      KdfParams kdf,
      Path metadataCache,
      Path pins) {
    if (password == null) {
      RepositoryConfig c = identify(cfg, clock);
      try {
        checkEmpty(store);
        store.saveNew(BlobName.CONFIG, c.toBytes());
      } catch (java.nio.file.FileAlreadyExistsException e) {
        throw createdMeanwhile(store);
      } catch (IOException e) {
        throw new RepositoryException(
            "unable to create a repository at '" + store.location() + "': " + e.getMessage(), e);
      }
      return unencrypted(cached(store, c, metadataCache), c, clock, cacheDir, BlobCodec.IDENTITY);
    }
    RepositoryConfig c = identify(cfg.withEncryption(), clock);
    MasterKey mk = MasterKey.generate();
    BlobName keyBlob;
    byte[] configBytes;
    try {
      checkEmpty(store);
      // The key first: a config without a key would be a repository nobody can open.
      configBytes = c.toBytes();
      keyBlob = KeyRing.add(store, c.repositoryId(), configBytes, mk, password, kdf, clock);
      try {
        store.saveNew(BlobName.CONFIG, configBytes);
      } catch (java.nio.file.FileAlreadyExistsException e) {
        try {
          store.delete(keyBlob); // its key, of a repository that is not there
        } catch (IOException d) {
          e.addSuppressed(d);
        }
        throw createdMeanwhile(store);
      }
      if (pins != null) {
        ConfigPin.write(ConfigPin.file(pins, c.repositoryId()), c.repositoryId(), configBytes);
        ConfigPin.write(ConfigPin.locationFile(pins, store.place()), c.repositoryId(), configBytes);
        Path inFs = fileSystemPin(pins, store);
        if (inFs != null) {
          ConfigPin.write(inFs, c.repositoryId(), configBytes);
        }
        Path named = namedPin(pins, store);
        if (named != null) {
          ConfigPin.write(named, c.repositoryId(), configBytes);
        }
        writeIdentityPins(pins, store, c.repositoryId(), configBytes);
      }
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to create a repository at '" + store.location() + "': " + e.getMessage(), e);
    }
    return encrypted(cached(store, c, metadataCache), c, configBytes, clock, cacheDir, mk, keyBlob);
  }

  /** A repository whose records {@code codec} transforms (identity: stored as they are). */
  private static Repository unencrypted(
      BlobStore store, RepositoryConfig c, Clock clock, Path cacheDir, BlobCodec codec) {
    return new Repository(
        store, c, clock, cacheDir, codec, ChunkHasher.of(c.chunkHash(), null), null, null, null);
  }

  /**
   * An encrypted repository with config {@code c} (stored as {@code configBytes}) opened with
   * {@code mk}, unwrapped from key blob {@code keyBlob}.
   */
  private static Repository encrypted(
      BlobStore store,
      RepositoryConfig c,
      byte[] configBytes,
      Clock clock,
      Path cacheDir,
      MasterKey mk,
      BlobName keyBlob) {
    return new Repository(
        store,
        c,
        clock,
        cacheDir,
        mk.codec(),
        mk.hasher(c.chunkHash()),
        mk,
        configBytes.clone(),
        keyBlob);
  }

  private static BlobStore cached(BlobStore store, RepositoryConfig c, Path metadataCache) {
    return metadataCache == null
        ? store
        : new CachingBlobStore(store, RepositoryCache.dir(metadataCache, c.repositoryId()));
  }

  private static RepositoryConfig identify(RepositoryConfig cfg, Clock clock) {
    cfg.validate();
    byte[] id = new byte[32];
    new SecureRandom().nextBytes(id);
    return cfg.withIdentity(Hex.encode(id), clock.instant());
  }

  /**
   * The refusal of an init whose config found another one saved meanwhile (another init of the same
   * place finished first: its repository stays as it is).
   */
  private static RepositoryException createdMeanwhile(BlobStore store) {
    return new RepositoryException(
        "a repository was created at '"
            + store.location()
            + "' by another 'granule init' while this one ran: nothing of this init was kept; use"
            + " that repository (with that init's password), or choose another path");
  }

  private static void checkEmpty(BlobStore store) throws IOException {
    if (store.stat(BlobName.CONFIG).isPresent()) {
      throw new RepositoryException(
          "a repository already exists at '" + store.location() + "': use it, or choose another");
    }
  }

  /** Creates a repository in an empty blob store, storing everything as it is. */
  public static Repository init(BlobStore store, RepositoryConfig cfg, Clock clock, Path cacheDir) {
    return init(store, cfg, clock, cacheDir, BlobCodec.IDENTITY);
  }

  /**
   * Creates a repository in an empty blob store, transforming what it stores with {@code codec}
   * (the seam for encryption; the same codec must be given to {@link #open(BlobStore, Clock, Path,
   * BlobCodec)}).
   */
  public static Repository init(
      BlobStore store, RepositoryConfig cfg, Clock clock, Path cacheDir, BlobCodec codec) {
    RepositoryConfig c = identify(cfg, clock);
    try {
      checkEmpty(store);
      store.save(BlobName.CONFIG, c.toBytes());
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to create a repository at '" + store.location() + "': " + e.getMessage(), e);
    }
    return unencrypted(store, c, clock, cacheDir, codec);
  }

  /**
   * Opens the unencrypted repository in directory {@code dir} (an encrypted one is a {@link
   * PasswordRequiredException}).
   *
   * @throws NotARepositoryException if there is none
   * @throws UnsupportedRepositoryVersionException if it is newer than this build
   */
  public static Repository open(Path dir) {
    return open(dir, PasswordSource.NONE);
  }

  /**
   * Opens the repository in directory {@code dir}, asking {@code password} if it is encrypted.
   *
   * @throws NotARepositoryException if there is none
   * @throws UnsupportedRepositoryVersionException if it is newer than this build
   * @throws WrongPasswordException if no key blob opens with the password
   */
  public static Repository open(Path dir, PasswordSource password) {
    return open(dir, password, null);
  }

  /**
   * As {@link #open(Path, PasswordSource)}, remembering in the user's metadata cache {@code
   * metadataCache} (unless null) that the repository is encrypted, and refusing it if its config
   * changed since (see {@link ConfigPin}).
   *
   * @throws RepositoryCorruptedException if the config was changed after this user opened it
   */
  public static Repository open(Path dir, PasswordSource password, Path metadataCache) {
    // the name the store opens (".." taken as the shell's cd takes it): through a link before a
    // "..", the kernel's lookup reached another directory (audit J6)
    if (!Files.isDirectory(LocalBlobStore.logicalAbsolute(dir))) {
      throw new NotARepositoryException(
          "no repository at '"
              + dir
              + "': not a directory (create one with 'granule init --repo "
              + dir
              + "')");
    }
    LocalBlobStore local = new LocalBlobStore(dir);
    BlobStore reading = local.withDirectReadAhead();
    return owning(
        () -> open(reading, Clock.systemUTC(), defaultCacheDir(), password, null, metadataCache),
        local);
  }

  /** Opens the repository in {@code store}, whose blobs are stored as they are. */
  public static Repository open(BlobStore store, Clock clock, Path cacheDir) {
    return open(store, clock, cacheDir, PasswordSource.NONE);
  }

  /**
   * Opens the repository in {@code store}; if it is encrypted, asks {@code password} once and tries
   * it on every key blob.
   *
   * @throws WrongPasswordException if no key blob opens with the password
   */
  public static Repository open(
      BlobStore store, Clock clock, Path cacheDir, PasswordSource password) {
    return open(store, clock, cacheDir, password, null);
  }

  /**
   * Like {@link #open(BlobStore, Clock, Path, PasswordSource)}, keeping a local copy of the
   * metadata blobs under {@code metadataCache/<repository id>/} unless it is null.
   */
  public static Repository open(
      BlobStore store, Clock clock, Path cacheDir, PasswordSource password, Path metadataCache) {
    return open(store, clock, cacheDir, password, metadataCache, metadataCache);
  }

  /**
   * Opens the repository in {@code store}, keeping a local copy of its metadata blobs under {@code
   * metadataCache} unless it is null, and its {@link ConfigPin} under {@code pins} unless it is
   * null.
   */
  private static Repository open(
      BlobStore store,
      Clock clock,
      Path cacheDir,
      PasswordSource password,
      Path metadataCache,
      Path pins) {
    byte[] configBytes = loadConfig(store);
    RepositoryConfig c = RepositoryConfig.fromBytes(store.location(), configBytes);
    Path pin = pins == null ? null : ConfigPin.file(pins, c.repositoryId());
    // also by where it is: the id is read from the config it guards, and a config rewritten with
    // a new id found no pin
    Path placePin = pins == null ? null : ConfigPin.locationFile(pins, store.place());
    // and by what the directory is (device, inode, birth): a bind mount of it is another real path
    List<Path> placePins = new ArrayList<>();
    placePins.add(placePin);
    // and by where it is inside its file system: a directory made anew in its place, on the file
    // system mounted elsewhere, has a new identity and a new real path (audit14 C3)
    Path fsPin = pins == null ? null : fileSystemPin(pins, store);
    placePins.add(fsPin);
    placePins.addAll(identityPinsHere(pins, store));
    // and by the path as named, links not resolved: someone who can write the directory above
    // put a link to an unencrypted repository of his in place of the directory, and every other
    // pin followed the link (audit14 E). Kept out of the check of which repository is there: a
    // link the user points at another encrypted repository of his is his choice
    Path namedPin = pins == null ? null : namedPin(pins, store);
    if (!c.encrypted()) {
      List<Path> all = new ArrayList<>(placePins);
      all.add(0, pin);
      all.add(namedPin);
      refuseDowngrade(store, all);
      if (password.given()) {
        throw new WrongPasswordException(
            "the repository at '"
                + store.location()
                + "' is not encrypted, but a password was given ("
                + password
                + "): if it should be encrypted, its config ("
                + configName(store)
                + ") was rewritten by someone who can write the storage, and nothing was read or"
                + " written; "
                + password.unencryptedRemedy());
      }
      return unencrypted(cached(store, c, metadataCache), c, clock, cacheDir, BlobCodec.IDENTITY);
    }
    if (pin != null) {
      checkPinned(store, pin, configBytes);
      checkPlace(store, placePins, c.repositoryId());
    }
    char[] pw = password.password();
    if (pw == null) {
      pw = PasswordSource.NONE.password();
    }
    KeyRing.Unlocked u;
    List<String> unreadable = new ArrayList<>();
    try {
      u =
          KeyRing.unlock(store, c.repositoryId(), configBytes, pw, unreadable)
              .orElseThrow(
                  () ->
                      new WrongPasswordException(
                          "wrong password for repository at '"
                              + store.location()
                              + "' (no key matches); try again or use the right --password-file"
                              + (unreadable.isEmpty()
                                  ? ""
                                  : "; if the password is right, the key it opens is not"
                                      + " readable or was not tried: "
                                      + String.join("; ", unreadable))));
    } catch (KeyRing.ConfigChangedException e) {
      throw new RepositoryCorruptedException(
          "repository at '" + store.location() + "': " + e.getMessage(), e);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to read the keys of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    } finally {
      Arrays.fill(pw, '\0');
    }
    MasterKey mk = u.key();
    if (pin != null) {
      ConfigPin.write(pin, c.repositoryId(), configBytes);
      ConfigPin.write(placePin, c.repositoryId(), configBytes);
      if (fsPin != null) {
        ConfigPin.write(fsPin, c.repositoryId(), configBytes);
      }
      if (namedPin != null) {
        ConfigPin.write(namedPin, c.repositoryId(), configBytes);
      }
      writeIdentityPins(pins, store, c.repositoryId(), configBytes);
    }
    if (!u.sealed()) {
      LOG.info(
          "the key blob {} of the repository at '{}' is of an older format that does not seal the"
              + " config; 'granule key passwd' replaces it with one that does",
          u.blob().name(),
          store.location());
    }
    return encrypted(
        cached(store, c, metadataCache), c, configBytes, clock, cacheDir, mk, u.blob());
  }

  /**
   * The place pin of {@code store}'s path as named, links not resolved ({@code
   * BlobStore.placeAsNamed}), if it differs from its real path (whose pin is kept anyway); null
   * otherwise.
   */
  private static Path namedPin(Path pins, BlobStore store) {
    return store
        .placeAsNamed()
        .filter(n -> !n.equals(store.place()))
        .map(n -> ConfigPin.locationFile(pins, n))
        .orElse(null);
  }

  /**
   * The pin of the place of {@code store} inside its file system ({@code
   * BlobStore.placeInFileSystem}: file system id and path from its root), kept as a place pin is;
   * null if it has none.
   */
  private static Path fileSystemPin(Path pins, BlobStore store) {
    return store
        .placeInFileSystem()
        .map(p -> ConfigPin.locationFile(pins, "in-file-system:" + p))
        .orElse(null);
  }

  /**
   * The pins by directory identity ({@link ConfigPin#identityFile}) that apply to {@code store}:
   * the one by its inode number and birth time, wherever the directory is reached; and the one by
   * the numbers alone (written where no birth time was known, or by an earlier build) while the
   * place it was written from is still this directory ({@link ConfigPin#stillNames}). None if
   * {@code pins} is null or the store has no such identity (S3) or it cannot be read.
   */
  private static List<Path> identityPinsHere(Path pins, BlobStore store) {
    Optional<String> identity = pins == null ? Optional.empty() : store.placeIdentity();
    if (identity.isEmpty()) {
      return List.of();
    }
    List<Path> here = new ArrayList<>();
    if (ConfigPin.born(identity.get())) {
      here.add(ConfigPin.identityFile(pins, identity.get()));
    }
    String numbers = ConfigPin.numbersOf(identity.get());
    Path byNumbers = ConfigPin.identityFile(pins, numbers);
    if (ConfigPin.stillNames(
        byNumbers,
        store.place(),
        numbers,
        place -> {
          try {
            return LocalBlobStore.identity(Path.of(place)).map(ConfigPin::numbersOf);
          } catch (java.nio.file.InvalidPathException e) {
            return Optional.empty();
          }
        })) {
      here.add(byNumbers);
    }
    return here;
  }

  /**
   * Records that the directory of {@code store} holds encrypted repository {@code id} with config
   * {@code configBytes}: in its pin by identity, and in any other pin by identity that applies to
   * it (one by device and inode numbers written by an earlier build), so that none of them names
   * the repository that was there before an {@code init}.
   */
  private static void writeIdentityPins(Path pins, BlobStore store, String id, byte[] configBytes) {
    Optional<String> identity = store.placeIdentity();
    if (identity.isEmpty()) {
      return;
    }
    Path own = ConfigPin.identityFile(pins, identity.get());
    ConfigPin.write(own, id, configBytes, store.place());
    for (Path p : identityPinsHere(pins, store)) {
      if (!p.equals(own)) {
        ConfigPin.write(p, id, configBytes, store.place());
      }
    }
  }

  /** {@code 'a'} or {@code 'a' and 'b'}: the pin files named in a refusal. */
  private static String quoted(List<Path> files) {
    return files.stream()
        .map(p -> "'" + p + "'")
        .collect(java.util.stream.Collectors.joining(" and "));
  }

  /**
   * Where this user opened the repository before, if it was reached by another path to the same
   * directory (a bind mount): said in a refusal by a pin found by directory identity.
   */
  private static String seenAs(BlobStore store, List<Path> found) {
    for (Path p : found) {
      Optional<String> then = ConfigPin.readPlace(p);
      if (then.isPresent() && !then.get().equals(store.place())) {
        return " as '"
            + then.get()
            + "' (the same directory, by its inode number and birth time: a bind mount or"
            + " another path to it, its file system mounted elsewhere, or a copy of that file"
            + " system)";
      }
    }
    return "";
  }

  /**
   * Refuses to open as unencrypted a repository whose config says so but which has key blobs, or
   * which this user opened encrypted before (any of {@code pins} that exists; null ones are
   * skipped): its config was rewritten by someone who can write the storage (granule never changes
   * a config), and opening it as unencrypted would store the next backups in plaintext.
   */
  private static void refuseDowngrade(BlobStore store, List<Path> pins) {
    String config = configName(store);
    List<Path> found = new ArrayList<>();
    for (Path pin : pins) {
      if (pin != null && ConfigPin.read(pin).isPresent()) {
        found.add(pin);
      }
    }
    if (!found.isEmpty()) {
      throw new RepositoryCorruptedException(
          "the config of the repository at '"
              + store.location()
              + "' was changed to unencrypted ("
              + config
              + "), but this user opened it encrypted before"
              + seenAs(store, found)
              + " (recorded in "
              + quoted(found)
              + "): someone who can write the storage may have rewritten it; nothing was read or"
              + " written. Put back the original config (a copy of the repository has it); if the"
              + " change was intended, delete "
              + quoted(found));
    }
    List<BlobName> keys;
    try {
      keys = store.list(BlobType.KEY);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to list the keys of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
    if (!keys.isEmpty()) {
      throw new RepositoryCorruptedException(
          "the config of the repository at '"
              + store.location()
              + "' says it is not encrypted ("
              + config
              + "), but it has "
              + keys.size()
              + " key blob(s) in keys/: the config was changed to unencrypted, not by granule;"
              + " nothing was read or written. Put back the original config (a copy of the"
              + " repository has it); if the repository really is unencrypted, delete its keys/");
    }
  }

  /**
   * Refuses an encrypted repository whose config differs from the one pinned in {@code pin} (if
   * any): another chunk hash, chunk size or compression is no less someone else's doing.
   */
  private static void checkPinned(BlobStore store, Path pin, byte[] configBytes) {
    Optional<String> pinned = ConfigPin.read(pin);
    String actual = ConfigPin.sha256(configBytes);
    if (pinned.isPresent() && !pinned.get().equals(actual)) {
      throw new RepositoryCorruptedException(
          "the config of the repository at '"
              + store.location()
              + "' ("
              + configName(store)
              + ") changed since this user last opened it: sha256 actual="
              + actual
              + " expected="
              + (pinned.get().isEmpty() ? "(unreadable)" : pinned.get())
              + " (recorded in '"
              + pin
              + "'); granule never changes a config, so someone who can write the storage may"
              + " have; nothing was read or written. Put back the original config; if the change"
              + " was intended, delete '"
              + pin
              + "'");
    }
  }

  /**
   * Refuses an encrypted repository with another id than the one this user last opened at the same
   * place ({@code placePins}: by real path, by directory identity; null ones are skipped): a whole
   * repository of the same owner (same password) copied over this one was used without a word, and
   * {@code restore latest} wrote the other machine's disk.
   */
  private static void checkPlace(BlobStore store, List<Path> placePins, String id) {
    String before = null;
    List<Path> found = new ArrayList<>();
    for (Path placePin : placePins) {
      Optional<String> was = placePin == null ? Optional.empty() : ConfigPin.readId(placePin);
      if (was.isPresent() && !was.get().equals(id)) {
        before = before == null ? was.get() : before;
        found.add(placePin);
      }
    }
    if (before != null) {
      throw new RepositoryCorruptedException(
          "the repository at '"
              + store.location()
              + "' is not the one this user opened there before"
              + seenAs(store, found)
              + ": it was repository "
              + before.substring(0, Math.min(16, before.length()))
              + "…, it is "
              + id.substring(0, Math.min(16, id.length()))
              + "… (recorded in "
              + quoted(found)
              + "); someone who can write the storage may have put another repository in its"
              + " place; nothing was read or written. If you moved or replaced repositories on"
              + " purpose, delete "
              + quoted(found));
    }
  }

  /** How to name the config blob of {@code store} in messages: its path if it is local. */
  private static String configName(BlobStore store) {
    return store instanceof LocalBlobStore l
        ? l.path(BlobName.CONFIG).toString()
        : store.location() + "/config";
  }

  /** Opens the repository in {@code store}, whose blobs were transformed with {@code codec}. */
  public static Repository open(BlobStore store, Clock clock, Path cacheDir, BlobCodec codec) {
    RepositoryConfig c = readConfig(store);
    return unencrypted(store, c, clock, cacheDir, codec);
  }

  private static RepositoryConfig readConfig(BlobStore store) {
    return RepositoryConfig.fromBytes(store.location(), loadConfig(store));
  }

  private static byte[] loadConfig(BlobStore store) {
    byte[] bytes;
    try {
      bytes = store.load(BlobName.CONFIG);
    } catch (NoSuchFileException e) {
      throw new NotARepositoryException(
          "no repository at '"
              + store.location()
              + "': config file missing (create one with 'granule init --repo "
              + store.location()
              + "')",
          e);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to open the repository at '" + store.location() + "': " + e.getMessage(), e);
    }
    return bytes;
  }

  /** The key blobs of an encrypted repository (empty for an unencrypted one). */
  public List<KeyInfo> keys() {
    if (masterKey == null) {
      return List.of();
    }
    try {
      return KeyRing.list(store);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to list the keys of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
  }

  /** The key blob this repository was opened with (null if unencrypted). */
  public String currentKey() {
    BlobName k = keyBlob;
    return k == null ? null : k.name();
  }

  /**
   * Changes the password: saves the master key wrapped under {@code newPassword} in a new key blob,
   * then deletes the key blob this repository was opened with. No data is rewritten; other
   * passwords (other key blobs) keep working. If the process dies in between, both passwords work.
   *
   * @return the new key blob's id
   */
  public synchronized String changePassword(char[] newPassword, KdfParams kdf) {
    if (masterKey == null) {
      throw new RepositoryException(
          "the repository at '" + store.location() + "' is not encrypted: it has no password");
    }
    try {
      BlobName added =
          KeyRing.add(store, config.repositoryId(), configBlob, masterKey, newPassword, kdf, clock);
      BlobName old = keyBlob;
      keyBlob = added;
      store.delete(old);
      return added.name();
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to change the password of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
  }

  /**
   * The default directory for the in-process chunk index: one per user in the temporary directory
   * (a shared one belonged to whoever made it first, and other users' commands failed there), made
   * 0700 by this user. If another user made it first (he can, in a shared /tmp), or it is a link,
   * it is not used: his directory held root's index file, which he swapped for one of his own and
   * kept a copy of. Then {@code ~/.cache/granule/tmp} is used.
   */
  public static Path defaultCacheDir() {
    Path d = defaultCache;
    if (d == null) {
      String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9_.-]", "_");
      d = privateDir(Path.of(System.getProperty("java.io.tmpdir"), "granule-cache-" + user));
      if (d == null) {
        Path home =
            Path.of(System.getProperty("user.home"), ".cache", "granule", "tmp").toAbsolutePath();
        LOG.warn(
            "{} belongs to another user or is a link: the chunk index's"
                + " temporary files go to {} instead (remove the first if it is not yours)",
            Path.of(System.getProperty("java.io.tmpdir"), "granule-cache-" + user),
            home);
        d = home;
      }
      defaultCache = d;
    }
    return d;
  }

  private static volatile Path defaultCache;

  /** {@code dir}, made 0700 if missing, if it is this user's own directory no one else enters. */
  static Path privateDir(Path dir) {
    try {
      Files.createDirectory(
          dir,
          java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
              java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
    } catch (java.nio.file.FileAlreadyExistsException e) {
      // checked below
    } catch (IOException | UnsupportedOperationException e) {
      return dir; // cannot tell here: the index says so when it cannot write there
    }
    try {
      Map<String, Object> a =
          Files.readAttributes(dir, "unix:uid,mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
      int mode = (Integer) a.get("mode");
      Object self = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
      if ((mode & 0170000) != 0040000 || !a.get("uid").equals(self)) {
        return null;
      }
      if ((mode & 0077) != 0) { // made 0755 by an older version: ours, closed now
        Files.setPosixFilePermissions(
            dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
      }
      return dir;
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return dir;
    }
  }

  /** The settings of this repository. */
  public RepositoryConfig config() {
    return config;
  }

  /** The blob store under this repository. */
  public BlobStore store() {
    return store;
  }

  private synchronized void loadIndex() {
    for (int attempt = 1; ; attempt++) {
      try {
        loadIndexOnce();
        return;
      } catch (IndexBlobsChanged e) {
        // a backup that found packs missing replaced the index blobs listing them meanwhile
        if (attempt == 3) {
          throw new RepositoryException(
              "unable to read the index of the repository at '"
                  + store.location()
                  + "': its index blobs kept changing while they were read ("
                  + e.getMessage()
                  + " was listed, then gone); run the command again",
              e);
        }
        LOG.debug("index blob {} went while the index was read: reading it again", e.getMessage());
      }
    }
  }

  /**
   * An index blob was listed and then gone when it was read: not damage, the blobs changed (under a
   * shared lock only a backup's repair of the index replaces blobs, see {@link
   * #forgetMissingPacks}); the reader lists them again.
   */
  private static final class IndexBlobsChanged extends RuntimeException {
    private static final long serialVersionUID = 1L;

    IndexBlobsChanged(BlobName gone, Throwable cause) {
      super(gone.toString(), cause);
    }
  }

  private void loadIndexOnce() {
    try {
      List<BlobInfo> infos = store.listInfo(BlobType.INDEX); // one listing, no stat per blob
      List<BlobName> names = infos.stream().map(BlobInfo::name).toList();
      LoadedIndex fresh = indexFile == null ? null : indexFromFile(infos);
      if (fresh == null) {
        fresh = indexFromBlobs(infos);
      }
      if (fresh.changed() && indexFile != null) {
        keepIndex(fresh);
      }
      knownPacks.clear();
      knownPacks.addAll(fresh.packs());
      if (index == null) {
        index = fresh.index();
      } else {
        // in place: a reader still holding the index (an open disk) reads through the fresh one,
        // and the old table's memory goes now
        index.replaceWith(fresh.index());
      }
      indexStale = false;
      loadedIndexes = new HashSet<>(names);
      lastIndexLoad = fresh.source();
      reader = new ChunkReader(store, codec, index, hasher);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to read the index of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
  }

  /** Where a chunk index came from (for tests). */
  enum IndexSource {
    BLOBS,
    FILE,
    FILE_AND_BLOBS
  }

  /**
   * A chunk index as loaded: the index blobs it holds whole (name to size), the packs they list,
   * where it came from, and whether it differs from the kept file.
   */
  private record LoadedIndex(
      ChunkIndex index,
      Map<BlobName, Long> blobs,
      Set<PackId> packs,
      IndexSource source,
      boolean changed) {}

  /** The chunk index read from every index blob {@code infos} lists. */
  private LoadedIndex indexFromBlobs(List<BlobInfo> infos) {
    ChunkIndex fresh = new ChunkIndex(cacheDir, IndexReader.estimatedEntries(infos));
    try {
      Map<BlobName, Long> blobs = new HashMap<>();
      Set<PackId> packs = new HashSet<>();
      addIndexBlobs(fresh, infos, blobs, packs);
      return new LoadedIndex(fresh, blobs, packs, IndexSource.BLOBS, true);
    } catch (RuntimeException | Error e) {
      fresh.close();
      throw e;
    }
  }

  /**
   * The chunk index kept in {@link #indexFile}, brought up to date with the index blobs added
   * since; null (read the blobs) if there is none that can be used: damaged, or one of the blobs it
   * was read from is gone or changed (a prune rewrote them), or a blob added since holds a chunk it
   * has (which copy is the first listed would depend on the order of blobs it no longer knows).
   */
  private LoadedIndex indexFromFile(List<BlobInfo> infos) {
    IndexCache.Contents kept =
        IndexCache.read(indexFile, config.repositoryId(), cacheDir, ChunkIndex.defaultMemory())
            .orElse(null);
    if (kept == null) {
      return null;
    }
    try {
      if (!stillListed(kept.blobs(), infos)) {
        kept.index().close();
        return null;
      }
      List<BlobInfo> added = addedSince(kept.blobs(), infos);
      if (added.isEmpty()) {
        return new LoadedIndex(kept.index(), kept.blobs(), kept.packs(), IndexSource.FILE, false);
      }
      Map<BlobName, Long> blobs = new HashMap<>(kept.blobs());
      Set<PackId> packs = new HashSet<>(kept.packs());
      if (addIndexBlobs(kept.index(), added, blobs, packs) > 0) {
        LOG.debug("index blobs added since the chunk index was kept repeat chunks: reading all");
        kept.index().close();
        return null;
      }
      // Written again once the blobs read on top of it are worth the write: a sixteenth of its
      // entries, or many blobs (each a read from the store).
      List<BlobInfo> read = added.stream().filter(i -> blobs.containsKey(i.name())).toList();
      long addedEntries = IndexReader.estimatedEntries(read); // damaged blobs change nothing
      boolean rewrite = addedEntries * 16 >= kept.index().size() || read.size() > 64;
      return new LoadedIndex(kept.index(), blobs, packs, IndexSource.FILE_AND_BLOBS, rewrite);
    } catch (RuntimeException | Error e) {
      kept.index().close();
      throw e;
    }
  }

  /**
   * Whether every index blob a kept index was read from ({@code kept}: name to size) is still among
   * {@code infos} with that size: else a prune rewrote them, and the file describes chunks that may
   * be gone.
   */
  private static boolean stillListed(Map<BlobName, Long> kept, List<BlobInfo> infos) {
    Map<BlobName, Long> listed = new HashMap<>();
    for (BlobInfo i : infos) {
      listed.put(i.name(), i.size());
    }
    for (Map.Entry<BlobName, Long> b : kept.entrySet()) {
      if (!b.getValue().equals(listed.get(b.getKey()))) {
        LOG.debug("the kept chunk index lists {}, which is gone or changed", b.getKey());
        return false;
      }
    }
    return true;
  }

  /**
   * The index blobs of {@code infos} a kept index ({@code kept}: name to size) was not read from.
   */
  private static List<BlobInfo> addedSince(Map<BlobName, Long> kept, List<BlobInfo> infos) {
    return infos.stream().filter(i -> !kept.containsKey(i.name())).toList();
  }

  /**
   * Puts the entries of index blobs {@code infos} into {@code into}; adds each blob read whole to
   * {@code blobs} (name to size) and the packs of every entry put to {@code packs}. Returns the
   * number of entries whose chunk the index held already.
   */
  private long addIndexBlobs(
      ChunkIndex into, List<BlobInfo> infos, Map<BlobName, Long> blobs, Set<PackId> packs) {
    try (ChunkIndex.Loader load = into.loader(IndexReader.estimatedEntries(infos))) {
      List<BlobInfo> whole =
          eachIndexEntry(
              infos,
              e -> {
                load.put(e.id(), e.location());
                packs.add(e.location().pack());
              });
      load.finish();
      for (BlobInfo i : whole) {
        blobs.put(i.name(), i.size());
      }
      return load.duplicates();
    }
  }

  /**
   * Keeps {@code loaded} in {@link #indexFile} for the next run, or deletes the file if the index
   * is too small to be worth one; a failure costs only that.
   */
  private void keepIndex(LoadedIndex loaded) {
    try {
      if (loaded.index().size() < keepMinEntries) {
        Files.deleteIfExists(indexFile);
        return;
      }
      IndexCache.write(
          indexFile, config.repositoryId(), loaded.index(), loaded.blobs(), loaded.packs());
    } catch (IOException | RuntimeException e) {
      LOG.warn(
          "unable to keep the chunk index in {} ({}): the next command reads the index blobs"
              + " again",
          indexFile,
          e.toString());
    }
  }

  /**
   * Feeds every entry of the index blobs {@code infos} to {@code each}; a damaged blob is skipped
   * with a warning (its chunks are stored again by the next backup, and verify names it). Returns
   * the blobs read whole.
   */
  private List<BlobInfo> eachIndexEntry(
      List<BlobInfo> infos, java.util.function.Consumer<IndexEntry> each) {
    List<BlobInfo> whole = new ArrayList<>(infos.size());
    int damaged = 0;
    for (BlobInfo i : infos) {
      BlobName n = i.name();
      List<IndexEntry> entries;
      try {
        entries = MetadataBlobs.read(store, codec, n, IndexReader::read);
      } catch (NoSuchFileException e) {
        throw new IndexBlobsChanged(n, e);
      } catch (IOException | RepositoryException | IllegalArgumentException e) {
        // no answer is no damage: an index missing its chunks would fail restores (exit 5)
        RepositoryUnreachableException.throwIfUnreachable(n, store.location(), e);
        if (++damaged <= WARN_EACH) {
          LOG.warn("skipping damaged index blob: {}", e.getMessage());
        }
        continue;
      }
      // All of a blob or none of it: an entry no index could hold is damage, and a blob half put
      // would leave chunks in the index (and in the index kept between runs) that no blob read
      // whole lists, which a later prune could delete unseen.
      IndexEntry bad = null;
      String why = null;
      for (IndexEntry e : entries) {
        why =
            e.id().isZero()
                ? "impossible location " + e.location()
                : ChunkIndex.impossible(e.location(), codec);
        if (why != null) {
          bad = e;
          break;
        }
      }
      if (bad != null) {
        if (++damaged <= WARN_EACH) {
          LOG.warn(
              "skipping damaged index blob {}: it lists chunk {} at an {} ('granule verify' lists"
                  + " the damage)",
              n,
              bad.id(),
              why);
        }
        continue;
      }
      entries.forEach(each); // a failure here (no room for the index's files) is not damage
      whole.add(i);
    }
    if (damaged > WARN_EACH) {
      // junk blobs by the thousand must not bury the log (audit10 L3)
      LOG.warn(
          "skipped {} damaged index blobs in all ({} more than named above; 'granule verify' lists"
              + " them)",
          damaged,
          damaged - WARN_EACH);
    }
    return whole;
  }

  /**
   * Blobs of one kind refused in one run that are named in a warning each; the rest are counted.
   */
  private static final int WARN_EACH = 3;

  /** Readable snapshots, oldest first; damaged manifests are skipped with a warning. */
  public List<Manifest> snapshots() {
    return snapshots(new ArrayList<>());
  }

  /** As {@link #snapshots()}, adding the failures of damaged manifests to {@code damaged}. */
  private List<Manifest> snapshots(List<RepositoryException> damaged) {
    List<Manifest> out = new ArrayList<>();
    List<String> notFound = new ArrayList<>();
    for (BlobName n : snapshotNames()) {
      try {
        out.add(loadManifest(n));
      } catch (SnapshotNotFoundException e) {
        notFound.add(n.name()); // forgotten since it was listed, unless the next listing has it
      } catch (RepositoryUnreachableException e) {
        throw e; // not damage: a listing of some snapshots would mislead
      } catch (RepositoryException e) {
        LOG.warn("skipping damaged snapshot: {}", e.getMessage());
        damaged.add(e);
      }
    }
    if (!notFound.isEmpty()) {
      // a forget elsewhere removes a manifest from the listings too; the storage's fault does not
      // (audit T-L2: a listing of the rest, or a policy's "last", presented it as absent)
      Set<String> listed = new HashSet<>();
      for (BlobName n : snapshotNames()) {
        listed.add(n.name());
      }
      for (String id : notFound) {
        if (listed.contains(id)) {
          RepositoryException e =
              new RepositoryException(
                  "snapshot "
                      + id
                      + " is listed, then not found, and listed again: the storage lists a"
                      + " manifest it cannot find (check the storage's health; 'granule verify'"
                      + " names it)");
          LOG.warn("skipping unreadable snapshot: {}", e.getMessage());
          damaged.add(e);
        }
      }
    }
    out.sort(Comparator.comparing(Manifest::instant).thenComparing(Manifest::id));
    return out;
  }

  private List<BlobName> snapshotNames() {
    try {
      return store.list(BlobType.SNAPSHOT);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to list snapshots of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
  }

  private Manifest loadManifest(BlobName n) {
    try {
      return MetadataBlobs.read(store, codec, n, ManifestReader::read);
    } catch (NoSuchFileException e) {
      throw new SnapshotNotFoundException("snapshot " + n.name() + " does not exist", e);
    } catch (IOException e) {
      // an outage is not a damaged snapshot (listings would skip it, 'latest' be refused)
      RepositoryUnreachableException.throwIfUnreachable(n, store.location(), e);
      throw new RepositoryException("unable to load snapshot " + n + ": " + e.getMessage(), e);
    } catch (IllegalArgumentException e) {
      throw new RepositoryCorruptedException("snapshot " + n + ": " + e.getMessage(), e);
    }
  }

  /**
   * The snapshot {@code ref} names: a full id, a unique prefix of one, or {@code latest}.
   *
   * @throws SnapshotNotFoundException if none matches
   * @throws AmbiguousSnapshotException if a prefix matches several
   * @throws RepositoryCorruptedException if the matching manifest is damaged
   */
  public Manifest resolve(String ref) {
    return resolve(ref, SnapshotFilter.ANY, null);
  }

  /**
   * Resolves {@code ref} among the snapshots {@code filter} passes: {@code latest} is the latest of
   * them, and the latest holding a disk or stream named {@code item} if it is not null; an id or
   * prefix names one snapshot, which must pass the filter.
   *
   * @throws SnapshotNotFoundException if there is no such snapshot, or it does not pass
   * @throws AmbiguousSnapshotException if a prefix matches several
   * @throws RepositoryCorruptedException for {@code latest} when a manifest is damaged (it may be
   *     the latest: restoring an older snapshot instead, silently, is what this refuses), and for
   *     an id whose manifest is damaged
   */
  public Manifest resolve(String ref, SnapshotFilter filter, String item) {
    if ("latest".equals(ref)) {
      List<RepositoryException> damaged = new ArrayList<>();
      List<Manifest> all = snapshots(damaged);
      if (!damaged.isEmpty()) {
        RepositoryException first = damaged.get(0);
        throw new RepositoryCorruptedException(
            first.getMessage()
                + (damaged.size() > 1 ? " (and " + (damaged.size() - 1) + " more)" : "")
                + ": a damaged snapshot may be the latest, so 'latest' is refused rather than"
                + " resolved to an older one; name a snapshot by id ('granule snapshots' lists"
                + " the readable ones), or remove the damaged one with 'granule forget ID' if it"
                + " cannot be repaired",
            first);
      }
      if (all.isEmpty()) {
        throw new SnapshotNotFoundException(
            "no snapshot in the repository at '" + store.location() + "': run a backup first");
      }
      Manifest latest = null; // the filter's, whether or not it holds the item
      for (int i = all.size() - 1; i >= 0; i--) {
        Manifest m = all.get(i);
        if (filter.matches(m)) {
          if (item == null || item.isEmpty() || holds(m, item)) {
            return m;
          }
          latest = latest == null ? m : latest;
        }
      }
      if (latest != null) {
        return latest; // no snapshot holds it: the caller says what the latest holds instead
      }
      throw new SnapshotNotFoundException(
          "no snapshot "
              + (filter.isAny() ? "" : filter.describe() + " ")
              + "in the repository at '"
              + store.location()
              + "' (list them with 'granule snapshots')");
    }
    Manifest m = resolveId(ref);
    requirePasses(m, filter);
    return m;
  }

  /** Fails unless {@code m} passes {@code filter}, naming its host and tags. */
  private static void requirePasses(Manifest m, SnapshotFilter filter) {
    if (!filter.matches(m)) {
      throw new SnapshotNotFoundException(
          "snapshot "
              + m.id().substring(0, 12)
              + " is of host "
              + m.host()
              + (m.tags().isEmpty() ? "" : " with tags " + String.join(", ", m.tags()))
              + ", not "
              + filter.describe());
    }
  }

  /** Whether snapshot {@code m} holds a disk or stream named {@code name}. */
  private static boolean holds(Manifest m, String name) {
    return m.disks().stream().anyMatch(d -> d.name().equals(name))
        || m.streams().stream().anyMatch(s -> s.name().equals(name));
  }

  /** The snapshot of id or unique id prefix {@code ref}. */
  private Manifest resolveId(String ref) {
    if (ref == null || !HEX_PREFIX.matcher(ref).matches()) {
      throw new SnapshotNotFoundException(
          "invalid snapshot reference '" + ref + "': give an id, a unique id prefix, or 'latest'");
    }
    List<BlobName> matches =
        snapshotNames().stream()
            .filter(n -> n.name().startsWith(ref))
            .sorted(Comparator.comparing(BlobName::name))
            .toList();
    if (matches.isEmpty()) {
      throw new SnapshotNotFoundException(
          "no snapshot matches '"
              + ref
              + "' in the repository at '"
              + store.location()
              + "' (list them with 'granule snapshots')");
    }
    if (matches.size() > 1) {
      throw new AmbiguousSnapshotException(
          "snapshot prefix '"
              + ref
              + "' is ambiguous: it matches "
              + matches.stream().map(BlobName::name).collect(Collectors.joining(", "))
              + " (give more digits)");
    }
    return loadManifest(matches.get(0));
  }

  /**
   * Backs up disks into a new snapshot, using both cores.
   *
   * @throws SourceUnreadableException if a disk cannot be read (no snapshot is written)
   * @throws RepositoryException if the repository cannot be written (it stays valid)
   */
  /**
   * Backup workers (each reads, hashes, compresses and packs): one per core up to 2; 4 when a disk
   * is read past the page cache (O_DIRECT: a block device, a cold image file), whose reads wait for
   * the disk (measured, cold 4 GiB bench image: 2.4 s with 4 against 3.1-3.4 s with 2; 6 took 2.2 s
   * and 40 MB more memory; with the image in the page cache 4 are no faster). Property {@code
   * granule.backup.threads} overrides it, for measurements.
   */
  private static int backupThreads(BackupRequest request) {
    int threads = Math.max(1, Math.min(2, Runtime.getRuntime().availableProcessors()));
    for (BackupRequest.NamedDisk d : request.disks()) {
      if (d.image().readsPastPageCache()) {
        threads = 4;
      }
    }
    return Integer.getInteger("granule.backup.threads", threads);
  }

  public synchronized BackupResult backup(BackupRequest request, BackupListener listener) {
    JitWarmup.start(codec, hasher);
    adoptUnknownPacks();
    Backup b =
        new Backup(
            guarded(),
            codec,
            index(),
            hasher,
            config.chunkSize(),
            config.packSize(),
            config.compressionLevel(),
            backupThreads(request),
            clock,
            knownPacks::add);
    try {
      return b.run(request, listener);
    } catch (RuntimeException | Error e) {
      // The in-memory index may now list chunks of packs that were never saved.
      indexStale = true;
      throw e;
    }
  }

  /**
   * Indexes packs that no index blob lists: those a crashed or failed backup saved before it could
   * write their index. Each is checked record by record ({@link #checkUnknownPack}: every record
   * decoded, authenticated where encrypted, and hashed to its id), then one index blob is written
   * for all of them, so the next backup reuses their chunks. Packs already indexed cost nothing
   * (their ids are remembered); a damaged, forged or oversized one is left alone, with a warning
   * naming it, for verify to report and prune to remove.
   */
  private void adoptUnknownPacks() {
    index(); // the packs its blobs list are known
    List<IndexEntry> adopted = new ArrayList<>();
    int refused = 0;
    try {
      Map<PackId, BlobName> listed = new java.util.LinkedHashMap<>();
      for (BlobName p : store.list(BlobType.PACK)) {
        try {
          listed.put(PackId.parse(p.name()), p);
        } catch (IllegalArgumentException e) {
          // not a pack: verify names it
        }
      }
      Set<PackId> missing = new HashSet<>(knownPacks);
      missing.removeAll(listed.keySet());
      // each confirmed on its own: a store whose listing lags its writes must not make a pack that
      // exists look lost
      missing.removeIf(id -> packExists(id));
      if (!missing.isEmpty()) {
        forgetMissingPacks(missing);
      }
      for (Map.Entry<PackId, BlobName> pack : listed.entrySet()) {
        PackId id = pack.getKey();
        BlobName p = pack.getValue();
        if (knownPacks.contains(id)) {
          continue;
        }
        List<PackEntry> entries;
        try {
          entries = checkUnknownPack(p);
        } catch (IOException | RuntimeException e) {
          // one bad pack (damaged, forged, a stray file) never stops a backup: its chunks are
          // stored again, and verify names it
          if (++refused <= WARN_EACH) {
            LOG.warn(
                "not reusing a pack that no index lists: {} ('granule prune' removes such packs"
                    + " once they are older than its --keep-recent)",
                e.getMessage() == null ? e.toString() : e.getMessage());
          }
          knownPacks.add(id);
          continue;
        }
        for (PackEntry e : entries) {
          ChunkLocation l =
              new ChunkLocation(id, e.offset(), e.storedLength(), e.rawLength(), e.flags());
          if (index().put(e.id(), l)) {
            adopted.add(new IndexEntry(e.id(), l));
          }
        }
        knownPacks.add(id);
      }
      if (refused > WARN_EACH) {
        // junk files by the thousand under data/ must not bury the log (audit10 L3)
        LOG.warn(
            "not reusing {} packs that no index lists in all ({} more than named above; 'granule"
                + " verify' lists them, 'granule prune' removes them once they are older than its"
                + " --keep-recent)",
            refused,
            refused - WARN_EACH);
      }
      IndexWriter.save(guarded(), codec, adopted);
      if (!adopted.isEmpty()) {
        LOG.info("indexed {} chunks of packs left by an interrupted backup", adopted.size());
      }
    } catch (IOException e) {
      indexStale = true;
      throw new RepositoryException(
          "unable to index packs left by an interrupted backup in '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
  }

  /**
   * Checks a pack that no index lists, record by record, as {@code verify --read-data} does, and
   * returns its entries: its size is at most what a pack of this repository can be, its trailer is
   * read alone, then its records in windows, each record's CRC checked and the record decoded
   * through the codec (in an encrypted repository: authenticated with the pack's name),
   * decompressed and hashed to its id ({@link UnlistedPacks}). The trailer of an encrypted
   * repository's pack is neither encrypted nor authenticated, so without this a forged pack of
   * copied chunk ids would be indexed, under an authenticated index blob, and deduplicated against
   * (audit9 M1); and reading a pack whole made a large stray file under data/ stop every backup
   * (M2).
   *
   * @throws RepositoryCorruptedException naming the pack and what is wrong with it
   */
  private List<PackEntry> checkUnknownPack(BlobName p) throws IOException {
    BlobInfo info = PackReader.stat(store, p);
    List<PackEntry> entries =
        UnlistedPacks.trailer(
            store, codec, p, info, UnlistedPacks.maxPackBytes(config.packSize(), codec));
    return UnlistedPacks.checkRecords(store, p, entries, reader(), null);
  }

  /** Whether pack {@code id} is in the store, asked for it alone. */
  private boolean packExists(PackId id) {
    try {
      return store.stat(ChunkReader.packName(id)).isPresent();
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to check pack " + id + " in '" + store.location() + "': " + e.getMessage(), e);
    }
  }

  /**
   * Drops from the index the chunks of {@code missing}, packs that index blobs list but that are
   * gone (deleted by hand, lost with a disk: a prune never deletes a pack an index blob still
   * lists): without this, a backup would deduplicate against chunks that no longer exist and write
   * a snapshot that cannot be restored, silently. Each index blob listing one of them is replaced
   * by one listing its other entries (written first, then the old one deleted, so every chunk that
   * exists stays listed at every instant), and the index is read again: the backup then stores
   * those chunks again from its disks, and its snapshot, and later ones, restore whole. The
   * snapshots that used them stay damaged ({@code granule verify} names them). A reader that listed
   * a replaced blob lists the blobs again ({@link IndexBlobsChanged}).
   */
  private void forgetMissingPacks(Set<PackId> missing) {
    List<String> names = missing.stream().map(PackId::toString).sorted().toList();
    LOG.warn(
        "{} pack(s) that the index lists are missing from the repository at '{}' ({}): this"
            + " backup stores their chunks again where its disks still have them, which heals"
            + " the snapshots that used them too; 'granule verify' names those still damaged",
        missing.size(),
        store.location(),
        names.size() <= 5
            ? String.join(", ", names)
            : String.join(", ", names.subList(0, 5)) + ", …");
    long dropped = 0;
    int replaced = 0;
    BlobStore out = guarded();
    // Again while a missing pack is still listed after the reload: another backup replacing the
    // same blobs for another missing pack at once writes its copy with this one's entries.
    for (int round = 1; ; round++) {
      try {
        for (BlobInfo i : store.listInfo(BlobType.INDEX)) {
          BlobName n = i.name();
          List<IndexEntry> entries;
          try {
            entries = MetadataBlobs.read(store, codec, n, IndexReader::read);
          } catch (IOException | RepositoryException | IllegalArgumentException e) {
            continue; // damaged or gone: not part of the index anyway
          }
          List<IndexEntry> kept =
              entries.stream().filter(e -> !missing.contains(e.location().pack())).toList();
          if (kept.size() == entries.size()) {
            continue;
          }
          IndexWriter.save(out, codec, kept);
          out.delete(n);
          dropped += entries.size() - kept.size();
          replaced++;
        }
      } catch (IOException e) {
        throw new RepositoryException(
            "unable to drop the chunks of missing packs from the index of '"
                + store.location()
                + "': "
                + e.getMessage(),
            e);
      }
      indexStale = true;
      index();
      if (java.util.Collections.disjoint(knownPacks, missing)) {
        break;
      }
      if (round == 3) {
        throw new RepositoryException(
            "unable to drop the chunks of missing packs from the index of '"
                + store.location()
                + "': index blobs listing them keep appearing; run the backup again");
      }
    }
    LOG.warn(
        "dropped {} chunks of missing packs from the index ({} index blobs replaced)",
        dropped,
        replaced);
    missingPacksForgotten += missing.size();
  }

  /** Packs found missing and dropped from the index by this repository's backups (for tests). */
  private int missingPacksForgotten;

  int missingPacksForgotten() {
    return missingPacksForgotten;
  }

  /**
   * The fixed index of disk {@code diskName} of {@code snapshot}.
   *
   * @throws SnapshotNotFoundException if the snapshot has no such disk
   * @throws RepositoryCorruptedException if the index is missing or damaged
   */
  public FixedIndex fixedIndex(Manifest snapshot, String diskName) {
    return loadFixed(snapshot, diskEntry(snapshot, diskName));
  }

  /** Random access to one disk of a snapshot, with a 64 MiB chunk cache; the caller closes it. */
  public SnapshotDisk openDisk(Manifest snapshot, String diskName) {
    return openDisk(snapshot, diskName, DEFAULT_CACHE_BYTES);
  }

  /**
   * Random access to one disk of a snapshot caching up to {@code cacheBytes} of chunks.
   *
   * @throws SnapshotNotFoundException if the snapshot has no such disk
   * @throws RepositoryCorruptedException if its fixed index is missing or damaged
   */
  public SnapshotDisk openDisk(Manifest snapshot, String diskName, long cacheBytes) {
    Manifest.DiskEntry d = diskEntry(snapshot, diskName);
    FixedIndex fixed = loadFixed(snapshot, d);
    try {
      return new SnapshotDisk(snapshot, d, fixed, readerFor(fixed.count(), fixed::get), cacheBytes);
    } catch (RuntimeException | Error e) {
      fixed.close();
      throw e;
    }
  }

  /**
   * The reader of the chunks an item lists ({@code count} ids from {@code ids}): the repository's
   * chunk index when it is loaded, when the item is small (under {@link #SCOPED_MIN} positions) or
   * holds a good part of the repository's chunks (then later reads share it); else an index of the
   * item's chunks alone, reserved from its list and filled from the index blobs, so that restoring
   * or serving one disk of a large repository takes memory for that disk's chunks, not the
   * repository's. The caller closes the reader.
   */
  private ChunkReader readerFor(int count, java.util.function.IntFunction<ChunkId> ids) {
    if (index != null && !indexStale || count < SCOPED_MIN) {
      return reader(); // small items (a catalog) would pay a whole read of the index blobs each
    }
    for (int attempt = 1; ; attempt++) {
      try {
        return scopedReader(count, ids);
      } catch (IndexBlobsChanged e) {
        if (attempt == 3) {
          return reader(); // reads them again as many times, then says so
        }
      }
    }
  }

  /** {@link #readerFor} once: null-free, through the repository's index when not worth one. */
  private ChunkReader scopedReader(int count, java.util.function.IntFunction<ChunkId> ids) {
    List<BlobInfo> infos;
    try {
      infos = store.listInfo(BlobType.INDEX);
    } catch (IOException e) {
      return reader(); // reports it
    }
    long entries = IndexReader.estimatedEntries(infos);
    long positions = 0;
    for (int p = 0; p < count; p++) {
      if (!ids.apply(p).isZero()) {
        positions++;
      }
    }
    if (positions * SCOPED_SHARE > entries) {
      return reader();
    }
    ChunkIndex own = reserved(count, ids, positions);
    try {
      boolean filled = indexFile != null && fillFromKept(own, infos);
      if (!filled && indexFile != null) {
        own.close(); // partly filled: start again
        own = reserved(count, ids, positions);
      }
      if (!filled) {
        ChunkIndex o = own;
        eachIndexEntry(infos, e -> o.fill(e.id(), e.location()));
      }
      lastScopedFill = filled ? IndexSource.FILE_AND_BLOBS : IndexSource.BLOBS;
      return new ChunkReader(store, codec, own, hasher, true);
    } catch (RuntimeException | Error e) {
      own.close();
      throw e;
    }
  }

  /**
   * An index of the {@code positions} non-zero ids of {@code ids}' first {@code count}, reserved.
   */
  private ChunkIndex reserved(
      int count, java.util.function.IntFunction<ChunkId> ids, long positions) {
    ChunkIndex own = new ChunkIndex(cacheDir, positions);
    try {
      for (int p = 0; p < count; p++) {
        ChunkId id = ids.apply(p);
        if (!id.isZero()) {
          own.reserve(id);
        }
      }
      return own;
    } catch (RuntimeException | Error e) {
      own.close();
      throw e;
    }
  }

  /**
   * Fills the reserved ids of {@code own} from the kept index (one read of the file in order), then
   * from the index blobs listed since; true if it did. False, with {@code own} partly filled, if
   * the file is missing, damaged or no longer describes the repository (see {@link
   * #indexFromFile}), or an added blob lists a chunk {@code own} has a location for already (which
   * copy comes first would depend on the order of blobs the file no longer knows).
   */
  private boolean fillFromKept(ChunkIndex own, List<BlobInfo> infos) {
    Map<BlobName, Long> kept =
        IndexCache.scan(
            indexFile, config.repositoryId(), blobs -> stillListed(blobs, infos), own::fill);
    if (kept == null) {
      return false;
    }
    boolean[] repeated = {false};
    eachIndexEntry(
        addedSince(kept, infos),
        e -> {
          if (own.get(e.id()) != null) {
            repeated[0] = true;
          } else {
            own.fill(e.id(), e.location());
          }
        });
    return !repeated[0];
  }

  /** Where the last scoped index was filled from (for tests): FILE_AND_BLOBS or BLOBS. */
  private volatile IndexSource lastScopedFill;

  IndexSource lastScopedFill() {
    return lastScopedFill;
  }

  /**
   * An item whose chunk positions are fewer than the repository's index entries divided by this
   * gets an index of its own chunks rather than the repository's.
   */
  private static final int SCOPED_SHARE = 4;

  /** Items of fewer chunk positions always use the repository's chunk index. */
  private static final int SCOPED_MIN = 4096;

  private static Manifest.DiskEntry diskEntry(Manifest snapshot, String diskName) {
    Manifest.DiskEntry d = snapshot.disk(diskName);
    if (d == null) {
      throw new SnapshotNotFoundException(
          "snapshot "
              + snapshot.id()
              + " has no disk '"
              + diskName
              + "' (its disks: "
              + snapshot.disks().stream().map(Manifest.DiskEntry::name).toList()
              + ")");
    }
    return d;
  }

  private FixedIndex loadFixed(Manifest snapshot, Manifest.DiskEntry d) {
    BlobName fx = new BlobName(BlobType.FIXED_INDEX, d.fixedIndex());
    return loadItemIndex(
        snapshot,
        "disk '" + d.name() + "'",
        "fixed index",
        fx,
        n -> FixedIndexReader.load(store, codec, n));
  }

  /**
   * Reads one stream of a snapshot; the caller closes it.
   *
   * @throws SnapshotNotFoundException if the snapshot has no such stream
   * @throws RepositoryCorruptedException if its dynamic index is missing or damaged
   */
  public SnapshotStream openStream(Manifest snapshot, String streamName) {
    Manifest.StreamEntry s = snapshot.stream(streamName);
    if (s == null) {
      throw new SnapshotNotFoundException(
          "snapshot "
              + snapshot.id()
              + " has no stream '"
              + streamName
              + "' (its streams: "
              + snapshot.streams().stream().map(Manifest.StreamEntry::name).toList()
              + ")");
    }
    BlobName dn = new BlobName(BlobType.DYNAMIC_INDEX, s.dynamicIndex());
    DynamicIndex dynamic =
        loadItemIndex(
            snapshot,
            "stream '" + streamName + "'",
            "dynamic index",
            dn,
            n -> DynamicIndexReader.load(store, codec, n));
    try {
      return new SnapshotStream(snapshot, s, dynamic, readerFor(dynamic.count(), dynamic::get));
    } catch (RuntimeException | Error e) {
      dynamic.close();
      throw e;
    }
  }

  /**
   * Loads and decodes the index blob of one item (disk or stream) of a snapshot; a missing or
   * damaged one is a corruption naming the snapshot and the item.
   */
  /** Loads and parses an item index blob. */
  private interface ItemLoader<T> {
    T apply(BlobName name) throws IOException;
  }

  private <T> T loadItemIndex(
      Manifest snapshot, String item, String kind, BlobName name, ItemLoader<T> load) {
    try {
      return load.apply(name);
    } catch (NoSuchFileException e) {
      throw new RepositoryCorruptedException(
          "snapshot "
              + snapshot.id()
              + " "
              + item
              + ": "
              + kind
              + " "
              + name
              + " is missing (run 'granule verify' to list the damage)",
          e);
    } catch (IOException e) {
      throw new RepositoryException("unable to load " + name + ": " + e.getMessage(), e);
    } catch (RepositoryCorruptedException | IllegalArgumentException e) {
      throw new RepositoryCorruptedException(
          "snapshot " + snapshot.id() + " " + item + ": " + e.getMessage(), e);
    }
  }

  /** Restores one stream of a snapshot to a file (replaced if it exists); returns its length. */
  public long restoreStream(Manifest snapshot, String streamName, Path target) {
    try (SnapshotStream in = openStream(snapshot, streamName)) {
      long n;
      try (var out = new TargetStream(target)) {
        n = in.transferTo(out);
        out.sync();
      } catch (TargetStream.Failed e) {
        // the target's fault (a full disk, a read-only one): exit code 7, not the repository's
        throw new RestoreTargetException(
            "unable to restore to '"
                + target
                + "': "
                + e.getCause().getMessage()
                + " (check the target path and free space)",
            e.getCause());
      }
      return n;
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to restore to '"
              + target
              + "': "
              + e.getMessage()
              + " (check the target path and free space)",
          e);
    }
  }

  /**
   * A restored stream's target file: its failures (open, write, sync, close) come out as {@link
   * Failed}, so they are told from the repository's.
   */
  private static final class TargetStream extends java.io.OutputStream {
    static final class Failed extends IOException {
      private static final long serialVersionUID = 1L;

      Failed(IOException cause) {
        super(cause.getMessage(), cause);
      }
    }

    private final FileChannel ch;
    private final java.io.OutputStream out;

    TargetStream(Path target) throws Failed {
      try {
        boolean held = // a file held open (/proc/self/fd/N): opened through that link
            target.getNameCount() == 4 && target.startsWith("/proc/self/fd");
        ch =
            held
                ? FileChannel.open(target, StandardOpenOption.WRITE)
                : FileChannel.open( // not through a link planted since; new: 0600
                    target,
                    java.util.Set.of(
                        StandardOpenOption.CREATE,
                        StandardOpenOption.WRITE,
                        StandardOpenOption.TRUNCATE_EXISTING,
                        java.nio.file.LinkOption.NOFOLLOW_LINKS),
                    java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                        java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
      } catch (IOException e) {
        throw new Failed(e);
      }
      out =
          new java.io.BufferedOutputStream(java.nio.channels.Channels.newOutputStream(ch), 1 << 20);
    }

    @Override
    public void write(int b) throws IOException {
      try {
        out.write(b);
      } catch (IOException e) {
        throw new Failed(e);
      }
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      try {
        out.write(b, off, len);
      } catch (IOException e) {
        throw new Failed(e);
      }
    }

    void sync() throws Failed {
      try {
        out.flush();
        ch.force(true);
      } catch (IOException e) {
        throw new Failed(e);
      }
    }

    @Override
    public void close() throws IOException {
      try {
        out.close();
      } catch (IOException e) {
        throw new Failed(e);
      }
    }
  }

  /** Restores one disk of a snapshot to a file or block device (see {@link DiskRestorer}). */
  public RestoreResult restoreDisk(Manifest snapshot, String diskName, Path target) {
    return restoreDisk(snapshot, diskName, target, RestoreListener.NONE);
  }

  /** Restores one disk of a snapshot to a file or block device, reporting progress. */
  public RestoreResult restoreDisk(
      Manifest snapshot, String diskName, Path target, RestoreListener listener) {
    JitWarmup.start(codec, hasher);
    try (SnapshotDisk disk = openDisk(snapshot, diskName, 0)) {
      return DiskRestorer.restore(disk, target, listener);
    }
  }

  /**
   * Restores one disk of a snapshot through an image writer that writes {@code target} (see {@link
   * DiskRestorer#restore(SnapshotDisk, DiskImageWriter, Path)}).
   */
  public RestoreResult restoreDisk(
      Manifest snapshot, String diskName, DiskImageWriter writer, Path target) {
    return restoreDisk(snapshot, diskName, writer, target, RestoreListener.NONE);
  }

  /** As {@link #restoreDisk(Manifest, String, DiskImageWriter, Path)}, reporting progress. */
  public RestoreResult restoreDisk(
      Manifest snapshot,
      String diskName,
      DiskImageWriter writer,
      Path target,
      RestoreListener listener) {
    JitWarmup.start(codec, hasher);
    try (SnapshotDisk disk = openDisk(snapshot, diskName, 0)) {
      return DiskRestorer.restore(disk, writer, target, listener);
    }
  }

  /**
   * Checks the repository (see {@link Verifier}), reading every pack's data if {@code readData}.
   */
  public VerifyReport verify(boolean readData, VerifyListener listener) {
    return verify(readData ? DataSubset.ALL : DataSubset.NONE, listener);
  }

  /**
   * Checks the repository (see {@link Verifier}), reading the data of the packs {@code data} picks.
   */
  public VerifyReport verify(DataSubset data, VerifyListener listener) {
    if (data != DataSubset.NONE) {
      JitWarmup.start(codec, hasher);
    }
    VerifyReport report =
        new Verifier(
                uncached(),
                codec,
                hasher,
                cacheDir,
                UnlistedPacks.maxPackBytes(config.packSize(), codec))
            .verify(data, listener);
    return withCachedCopies(report);
  }

  /**
   * {@code report} with, for each metadata blob it names damaged of which this host's cache holds a
   * copy that reads whole while the repository's does not, where that copy is (audit Z-M1: the last
   * intact copy, which nothing named, while prune on this host, reading it, never replaced the
   * blob). Repair puts those copies back.
   */
  private VerifyReport withCachedCopies(VerifyReport report) {
    if (!(store instanceof CachingBlobStore cache) || report.damages().isEmpty()) {
      return report;
    }
    CachedCopies cached = new CachedCopies(cache, codec);
    Map<BlobName, Path> copies = cached.toPutBack(report.damages(), cache.remote());
    // index blobs the repository no longer lists that locate a damaged pack's records (BB-M1)
    Map<String, List<Path>> gone = new java.util.HashMap<>();
    if (!cache.goneIndexBlobs().isEmpty()) {
      try {
        Set<BlobName> packs = new HashSet<>(cache.remote().list(BlobType.PACK));
        for (Map.Entry<BlobName, Path> g :
            cached.goneCandidates(report.damages(), cache.remote(), packs).entrySet()) {
          for (String p : cached.packsOf(g.getKey(), g.getValue())) {
            gone.computeIfAbsent(BlobType.PACK.directory() + "/" + p, k -> new ArrayList<>())
                .add(g.getValue());
          }
        }
      } catch (IOException | RuntimeException e) {
        LOG.debug("cannot look for kept copies of index blobs: {}", e.toString());
      }
    }
    if (copies.isEmpty() && gone.isEmpty()) {
      return report;
    }
    List<Damage> out = new ArrayList<>();
    for (Damage d : report.damages()) {
      Optional<BlobName> n = CachedCopies.blobName(d.file());
      Path copy = n.isEmpty() ? null : copies.get(n.get());
      List<String> problems = new ArrayList<>(d.problems());
      if (copy != null) {
        problems.add(
            "this host's cache holds a copy of it that reads whole, perhaps its last intact one: "
                + copy
                + " (run 'granule repair' on this host to put it back; prune on this host reads"
                + " that copy and does not replace the blob, and the cache may be cleared)");
      } else if (gone.containsKey(d.file())) {
        problems.add(
            "this host's cache kept an index blob that lists it and that the repository no"
                + " longer holds: "
                + gone.get(d.file()).stream().map(Path::toString).sorted().toList()
                + " (run 'granule repair' on this host: it indexes the records of the pack that"
                + " copy locates and that read)");
      } else {
        out.add(d);
        continue;
      }
      out.add(new Damage(d.file(), List.copyOf(problems), d.snapshots()));
    }
    return new VerifyReport(
        List.copyOf(out),
        report.affectedSnapshots(),
        report.snapshots(),
        report.packs(),
        report.chunks(),
        report.dataRead(),
        report.dataSubset(),
        report.dataPacks(),
        report.dataBytes());
  }

  /**
   * The store read past the local copies of its metadata (a remote one's, {@link
   * CachingBlobStore}): what verify and repair read. A cached copy hid damage in the repository
   * from verify on the host that had it, and answered repair's read-back of an index blob the
   * storage had not kept, so repair deleted the blob it replaced and the damaged pack (audit X-H1).
   */
  private BlobStore uncached() {
    return store instanceof CachingBlobStore cache ? cache.remote() : store;
  }

  /** Counts snapshots, disks, chunks and packs, and sums their sizes. */
  public RepositoryStats stats() {
    List<Manifest> snaps = snapshots();
    int disks = snaps.stream().mapToInt(m -> m.disks().size()).sum();
    long logical = snaps.stream().flatMap(m -> m.disks().stream()).mapToLong(d -> d.size()).sum();
    long stored = 0;
    List<BlobInfo> packs;
    try {
      packs = store.listInfo(BlobType.PACK);
      for (BlobInfo p : packs) {
        stored += p.size();
      }
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to list packs of the repository at '" + store.location() + "': " + e.getMessage(),
          e);
    }
    return new RepositoryStats(snaps.size(), disks, logical, stored, index().size(), packs.size());
  }

  /** The locks of this repository (list, remove stale ones). */
  public LockManager locks() {
    return locks;
  }

  /**
   * Takes a repository lock for {@code operation}, waiting up to {@code wait} for conflicting locks
   * to go (see {@link LockManager}); released by closing it or this repository. Then reloads the
   * chunk index if index blobs came or went since it was loaded, so nothing deduplicates against
   * chunks a prune removed meanwhile.
   *
   * @throws RepositoryLockedException if a conflicting lock remains
   */
  public Lock lock(LockKind kind, String operation, Duration wait) {
    Lock l = locks.acquire(kind, operation, wait);
    held.add(l);
    try {
      synchronized (this) {
        if (index != null && !new HashSet<>(store.list(BlobType.INDEX)).equals(loadedIndexes)) {
          indexStale = true; // read again on its next use
        }
      }
    } catch (IOException | RuntimeException e) {
      release(l);
      if (e instanceof RuntimeException r) {
        throw r;
      }
      throw new RepositoryException(
          "unable to list the index of the repository at '"
              + store.location()
              + "': "
              + e.getMessage(),
          e);
    }
    return l;
  }

  /** Releases a lock taken with {@link #lock}. */
  public void release(Lock l) {
    held.remove(l);
    l.close();
  }

  /** The store, checking every held lock before each save and delete. */
  private BlobStore guarded() {
    return guarded(store);
  }

  /** {@code base} guarded as {@link #guarded()} guards the store. */
  private BlobStore guarded(BlobStore base) {
    BlobStore s = base;
    for (Lock l : held) {
      s = new LockCheckingBlobStore(s, l);
    }
    return s;
  }

  /**
   * Deletes what no snapshot references (see {@link Pruner}). Needs an exclusive lock taken with
   * {@link #lock}; reloads the chunk index afterwards.
   *
   * @throws IllegalStateException without an exclusive lock
   */
  public synchronized Pruner.Report prune(Pruner.Options options, Pruner.Listener listener) {
    if (held.stream().noneMatch(l -> l.kind() == LockKind.EXCLUSIVE)) {
      throw new IllegalStateException("prune needs the repository's exclusive lock");
    }
    try {
      return new Pruner(
              guarded(),
              codec,
              hasher,
              cacheDir,
              config.packSize(),
              config.compressionLevel(),
              storeNow())
          .run(options, listener);
    } finally {
      indexStale = index != null;
    }
  }

  /**
   * Repairs damaged packs (see {@link Repairer}): reads every pack as {@code verify --read-data}
   * does, then salvages what the damaged ones still hold and takes the rest out of the index,
   * unless {@code dryRun}. Needs an exclusive lock taken with {@link #lock}; a dry run, which
   * changes nothing, any lock, or none where none can be written ({@link #readingWithoutLock}).
   * Reloads the chunk index afterwards, so a backup in this process stores the lost chunks anew.
   *
   * @param listener told of the reading ({@code read}: packs, index blobs, snapshots in turn) and
   *     of each step of the repair
   * @throws IllegalStateException without an exclusive lock (a dry run: without a lock or an
   *     unlocked read)
   */
  public RepairResult repair(boolean dryRun, Repairer.Listener listener) {
    return repair(dryRun, Set.of(), listener);
  }

  /**
   * As {@link #repair(boolean, Repairer.Listener)}, reading the data of the packs {@code packs}
   * names only (blob names, with or without {@code data/}; empty: every pack), as a verify named
   * them: the structure (index blobs, snapshots, every pack's presence and trailer) is checked as
   * by a verify without {@code --read-data}, so missing packs are repaired too. A copy of a damaged
   * pack's chunk in a pack not read counts only once its own record reads.
   *
   * @throws IllegalArgumentException if a name is not a pack's (nothing read)
   * @throws io.granule.engine.internal.repo.maintenance.NoSuchPackException if a named pack is
   *     neither in the repository nor listed by its index (nothing changed)
   */
  public synchronized RepairResult repair(
      boolean dryRun, Set<String> packs, Repairer.Listener listener) {
    if (dryRun
        ? held.isEmpty() && unlockedAt == null
        : held.stream().noneMatch(l -> l.kind() == LockKind.EXCLUSIVE)) {
      throw new IllegalStateException(
          dryRun
              ? "a dry run of repair needs a lock on the repository"
              : "repair needs the repository's exclusive lock");
    }
    Set<String> named = packNames(packs);
    JitWarmup.start(codec, hasher);
    BlobStore remote = uncached(); // what the repository holds, not this host's copies (X-H1)
    BlobStore reading = remote; // a dry run's view once cached copies are put back
    List<String> putBack = new ArrayList<>();
    Map<BlobName, Path> allBack = new java.util.LinkedHashMap<>();
    Set<BlobName> keptUsed = new HashSet<>();
    List<String> keptIndexed = new ArrayList<>();
    Map<ChunkId, ChunkLocation> allLocated = new java.util.LinkedHashMap<>();
    // the index blobs before verify lists them: repair's own listing must not miss one (audit L3)
    Set<BlobName> indexesBefore;
    Set<BlobName> snapshotsBefore;
    Set<BlobName> packsSeen;
    Set<BlobName> itemsBefore; // fixed and dynamic indexes: repair's check lists them again
    Verifier verifier;
    VerifyReport found;
    for (int round = 0; ; round++) {
      try {
        indexesBefore = new HashSet<>(reading.list(BlobType.INDEX));
        snapshotsBefore = new HashSet<>(reading.list(BlobType.SNAPSHOT));
        packsSeen = new HashSet<>(reading.list(BlobType.PACK));
        itemsBefore = new HashSet<>(reading.list(BlobType.FIXED_INDEX));
        itemsBefore.addAll(reading.list(BlobType.DYNAMIC_INDEX));
      } catch (IOException e) {
        throw new RepositoryException(
            "unable to list the repository at "
                + store.location()
                + ": "
                + e.getMessage()
                + " (nothing was changed)",
            e);
      }
      verifier =
          new Verifier(
              reading,
              codec,
              hasher,
              cacheDir,
              UnlistedPacks.maxPackBytes(config.packSize(), codec));
      found =
          verifier.verify(
              named.isEmpty() ? DataSubset.ALL : DataSubset.packs(named),
              (file, done, total) ->
                  listener.progress(
                      file.startsWith(BlobType.PACK.directory() + "/") ? "read packs" : "check",
                      done,
                      total));
      if (round >= 8 || !(store instanceof CachingBlobStore cache)) {
        break;
      }
      // metadata the storage damaged or lost of which this host's cache holds a copy that reads
      // whole: put back first, then checked again (audit Z-M1: the last intact copy of an index
      // blob locating a cut pack's records, which prune on this host never replaced); again while
      // that check finds more (BB-L1: a manifest put back names its fixed index, lost too)
      CachedCopies copies = new CachedCopies(cache, codec);
      Map<BlobName, Path> back =
          new java.util.LinkedHashMap<>(copies.toPutBack(found.damages(), remote));
      back.keySet().removeAll(allBack.keySet());
      // and the records of damaged packs that copies this host kept of index blobs the repository
      // no longer lists locate, those that read (audit BB-M1, CC-H1): indexed anew
      Map<ChunkId, ChunkLocation> located = new java.util.LinkedHashMap<>();
      Map<BlobName, Path> gone = copies.goneCandidates(found.damages(), remote, packsSeen);
      gone.keySet().removeAll(keptUsed);
      if (!gone.isEmpty()) {
        located =
            copies.readableEntries(
                gone,
                found.damages(),
                remote,
                hasher,
                (pack, n) ->
                    LOG.warn(
                        "repair: {} records of {} that a copy this host kept of an index blob"
                            + " locates do not read: not indexed",
                        n,
                        pack));
        keptUsed.addAll(gone.keySet());
      }
      if (back.isEmpty() && located.isEmpty()) {
        break;
      }
      allBack.putAll(back);
      back.keySet().forEach(n -> putBack.add(n.toString()));
      if (!located.isEmpty()) {
        keptIndexed.add(
            located.size()
                + " chunks located by "
                + gone.keySet().stream().map(BlobName::toString).sorted().toList());
        allLocated.putAll(located);
      }
      if (dryRun) {
        reading = CachedCopies.asPutBack(remote, allBack);
        if (!allLocated.isEmpty()) {
          try {
            reading = Repairer.withIndexEntries(reading, codec, allLocated);
          } catch (IOException e) {
            throw new RepositoryException("unable to check the dry run: " + e.getMessage(), e);
          }
        }
      } else {
        int[] done = {0};
        copies.putBack(
            back,
            guarded(remote),
            remote,
            n -> {
              LOG.info("repair: put {} back from this host's cache", n);
              listener.progress("put back", ++done[0], back.size());
            });
        if (!located.isEmpty()) {
          List<BlobName> written = CachedCopies.index(located, codec, guarded(remote), remote);
          LOG.info(
              "repair: indexed {} chunks that copies this host kept of index blobs locate: {}",
              located.size(),
              written);
        }
      }
    }
    for (Damage d : withCachedCopies(found).damages()) {
      String last = d.problems().isEmpty() ? "" : d.problems().get(d.problems().size() - 1);
      if (last.startsWith("this host's cache holds")) {
        LOG.warn("repair: {}: {}", d.file(), last);
      }
    }
    // a snapshot listed before verify that verify's own listing left out was not checked: its
    // damage would be missing from the report (audit Z-L2's older twin: exit 0 while it could not
    // be restored). Nothing forgets one under the exclusive lock; a dry run's shared lock lets a
    // forget run, so there one no longer listed is taken for forgotten.
    Set<BlobName> unchecked = new java.util.TreeSet<>(Comparator.comparing(BlobName::name));
    unchecked.addAll(snapshotsBefore);
    unchecked.removeAll(verifier.listedSnapshots());
    if (!unchecked.isEmpty() && dryRun) {
      try {
        unchecked.retainAll(new HashSet<>(reading.list(BlobType.SNAPSHOT)));
      } catch (IOException e) {
        throw new RepositoryException(
            "unable to list the snapshots of the repository at "
                + store.location()
                + ": "
                + e.getMessage()
                + " (nothing was changed)",
            e);
      }
    }
    if (!unchecked.isEmpty()) {
      throw new RepositoryException(
          "repair stopped: "
              + unchecked.iterator().next()
              + (unchecked.size() > 1 ? " and " + (unchecked.size() - 1) + " more" : "")
              + " listed before verify, not by it: the storage lists differently from one moment"
              + " to the next, so what verify found is not all there is"
              + (putBack.isEmpty() || dryRun
                  ? "; nothing was changed"
                  : "; nothing else was changed")
              + " (check the storage's health, then run repair again)");
    }
    // and what verify itself listed and read (audit N: a blob hidden from the listings before and
    // after verify, but read by it, was never read by repair, and the pack it listed was deleted
    // unread, exit 0)
    indexesBefore.addAll(verifier.listedIndexes());
    snapshotsBefore.addAll(verifier.listedSnapshots());
    Set<PackId> suspects = new java.util.LinkedHashSet<>(); // in the order of their names
    List<String> otherDamage = new ArrayList<>();
    Set<String> otherSnapshots = new java.util.TreeSet<>();
    for (Damage d : found.damages()) {
      String prefix = BlobType.PACK.directory() + "/";
      if (d.file().startsWith(prefix)
          && d.problems().stream().noneMatch(x -> x.startsWith("missing"))) {
        try {
          packsSeen.add(new BlobName(BlobType.PACK, d.file().substring(prefix.length())));
        } catch (IllegalArgumentException e) {
          // not a blob name: verify names it, nothing here uses it
        }
      }
      PackId p = null;
      if (d.file().startsWith(prefix)) {
        try {
          p = PackId.parse(d.file().substring(prefix.length()));
        } catch (IllegalArgumentException e) {
          p = null; // not a pack name: verify names it
        }
      }
      if (p != null) {
        suspects.add(p);
      } else {
        otherDamage.add(d.file());
        otherSnapshots.addAll(d.snapshots());
      }
    }
    if (!named.isEmpty()) {
      Set<String> known = new HashSet<>();
      try {
        for (BlobName n : reading.list(BlobType.PACK)) {
          known.add(n.name());
        }
      } catch (IOException e) {
        throw new RepositoryException(
            "unable to list the packs of the repository at "
                + store.location()
                + ": "
                + e.getMessage()
                + " (nothing was changed)",
            e);
      }
      suspects.forEach(p -> known.add(p.toString())); // missing ones the index lists
      for (String n : named) {
        if (!known.contains(n)) {
          throw new io.granule.engine.internal.repo.maintenance.NoSuchPackException(
              "no pack "
                  + BlobType.PACK.directory()
                  + "/"
                  + n
                  + " in the repository at "
                  + store.location()
                  + ", and no index blob lists one: give the names 'granule verify' printed"
                  + " (nothing was changed)");
        }
      }
    }
    try {
      Repairer repairer =
          new Repairer(
              // what this repair deletes, this host's cache drops too: a kept copy of an index blob
              // it replaced would be put back by the next repair (audit BB-M1's kept copies)
              guarded(
                  !dryRun && store instanceof CachingBlobStore c
                      ? c.remoteDroppingCopies()
                      : reading),
              codec,
              hasher,
              cacheDir,
              config.packSize(),
              config.compressionLevel(),
              // beside the index kept between runs (the user's cache, which a reboot keeps),
              // else in the temporary directory; by id, not place: the same repository
              // reached by another path (a mount) is the same, and a copy's noted chunks must
              // be listed there too before it deletes a pack
              indexFile != null
                  ? indexFile.resolveSibling("repair-retired")
                  : cacheDir.resolve("repair-retired-" + config.repositoryId()));
      Repairer.Report report =
          repairer.run(
              suspects,
              named,
              named.isEmpty() ? found.packs() : found.dataPacks(),
              new Repairer.Seen(
                  dryRun ? null : indexesBefore,
                  dryRun ? null : snapshotsBefore,
                  dryRun ? null : itemsBefore,
                  packsSeen,
                  found.damages().stream()
                      .map(Damage::file)
                      .collect(java.util.stream.Collectors.toSet())),
              dryRun,
              listener);
      if (report.chunksIndexed() > 0 && !otherDamage.isEmpty()) {
        // the chunks of packs no index blob listed are indexed now: what verify found using them
        // is whole again (audit Y-M1: named damaged, with advice to back up again or forget); a
        // dry run checks with the entries it would write (audit Z-L1: it named that damage)
        Set<String> still = new HashSet<>();
        Set<String> stillAffected = new java.util.TreeSet<>();
        BlobStore checked;
        try {
          checked = dryRun ? Repairer.withIndexEntries(reading, codec, repairer.adopted()) : remote;
        } catch (IOException e) {
          throw new RepositoryException("unable to check the dry run: " + e.getMessage(), e);
        }
        Verifier again =
            new Verifier(
                checked,
                codec,
                hasher,
                cacheDir,
                UnlistedPacks.maxPackBytes(config.packSize(), codec));
        VerifyReport rechecked =
            again.verify(
                DataSubset.NONE, (file, done, total) -> listener.progress("check", done, total));
        Set<String> before = new HashSet<>();
        found.damages().forEach(d -> before.add(d.file()));
        boolean unexpected = false; // damage the first check did not find, nor the repair explains
        for (Damage d : rechecked.damages()) {
          if (otherDamage.contains(d.file())) {
            still.add(d.file());
            stillAffected.addAll(d.snapshots());
          } else if (!before.contains(d.file())
              && !(isItemIndex(d.file()) && report.snapshots().containsAll(d.snapshots()))) {
            unexpected = true;
          }
        }
        if (dryRun) {
          // the entries of the chunks it would lose are still there for this check: an index of a
          // snapshot that would use one stays damaged, as the real run's check finds (BB-L2)
          for (Damage d : found.damages()) {
            if (otherDamage.contains(d.file())
                && isItemIndex(d.file())
                && !java.util.Collections.disjoint(d.snapshots(), report.snapshots())) {
              still.add(d.file());
              stillAffected.addAll(d.snapshots());
            }
          }
        }
        // only a check that read every snapshot the first one saw, and the index blob itself, and
        // found no damage the first did not (one a read fault in it explains), tells what is whole
        // now: one that a listing left a manifest out of, or that could not read it or an index
        // blob, did not check what they name (audit Z-L2, AA-L1: their damage was taken for
        // healed, exit 0)
        Set<String> seenAgain = new HashSet<>();
        again.listedIndexes().forEach(n -> seenAgain.add(n.toString()));
        if (!unexpected
            && again.listedSnapshots().containsAll(snapshotsBefore)
            && rechecked.snapshots() == again.listedSnapshots().size()) {
          otherDamage.removeIf(
              f ->
                  !still.contains(f)
                      && (!f.startsWith(BlobType.INDEX.directory() + "/")
                          || seenAgain.contains(f)));
          if (otherDamage.stream().allMatch(still::contains)) {
            otherSnapshots.retainAll(stillAffected);
          }
        }
      }
      return new RepairResult(
          report,
          found.dataBytes(),
          otherDamage,
          List.copyOf(otherSnapshots),
          List.copyOf(putBack),
          List.copyOf(keptIndexed));
    } finally {
      indexStale = index != null;
    }
  }

  /** Whether verify's {@code file} is a snapshot's fixed or dynamic index. */
  private static boolean isItemIndex(String file) {
    return file.startsWith(BlobType.FIXED_INDEX.directory() + "/")
        || file.startsWith(BlobType.DYNAMIC_INDEX.directory() + "/");
  }

  /**
   * The pack names {@code packs} gives ({@code data/NAME} or {@code NAME}), without {@code data/}.
   *
   * @throws IllegalArgumentException naming one that is not a pack's name
   */
  public static Set<String> packNames(Set<String> packs) {
    Set<String> out = new java.util.TreeSet<>();
    String prefix = BlobType.PACK.directory() + "/";
    for (String p : packs) {
      String n = p.startsWith(prefix) ? p.substring(prefix.length()) : p;
      try {
        n = PackId.parse(n).toString(); // as listed: lowercase
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(
            "'"
                + p
                + "' is not a pack's name: give one as 'granule verify' prints it, e.g. "
                + prefix
                + "0123456789abcdef0123456789abcdef",
            e);
      }
      out.add(n);
    }
    return out;
  }

  /**
   * What {@link #repair} did.
   *
   * @param repair the repair itself
   * @param bytesRead the pack bytes read to find the damage
   * @param otherDamage damaged files that are not packs (index blobs, snapshots, their indexes,
   *     among them the fixed and dynamic indexes of snapshots that use chunks no index lists: lost
   *     with a pack an earlier repair or backup dropped): left as they are
   * @param otherSnapshots the snapshots {@code otherDamage} affects, as found before the repair
   * @param putBack the metadata blobs the storage had damaged or lost that were put back from this
   *     host's cache first ({@link CachedCopies}; a dry run's: would be), as {@code index/NAME}
   * @param keptIndexed the chunks of damaged packs indexed first (a dry run's: would be) because
   *     copies this host kept of index blobs the repository no longer lists locate records of them
   *     that read: how many, by which copies
   */
  public record RepairResult(
      Repairer.Report repair,
      long bytesRead,
      List<String> otherDamage,
      List<String> otherSnapshots,
      List<String> putBack,
      List<String> keptIndexed) {

    /** A result with nothing put back. */
    public RepairResult(
        Repairer.Report repair,
        long bytesRead,
        List<String> otherDamage,
        List<String> otherSnapshots) {
      this(repair, bytesRead, otherDamage, otherSnapshots, List.of(), List.of());
    }
  }

  /**
   * Notes that this process reads the repository without a lock (one it cannot write: a read-only
   * medium or credentials), so that {@link #changedWhileUnlocked} can tell damage it met from what
   * a prune elsewhere removed meanwhile: the names of the index blobs and snapshots now.
   */
  public void readingWithoutLock() {
    try {
      unlockedAt = indexAndSnapshotNames();
    } catch (IOException | RuntimeException e) {
      LOG.debug("cannot list the repository for an unlocked read: {}", e.toString());
    }
  }

  /**
   * For a read without a lock ({@link #readingWithoutLock}): why what it found missing or damaged
   * may be a prune's or forget's doing, if index blobs or snapshots it started with are gone; empty
   * if none is, or for a locked read (a prune waits for it).
   */
  public Optional<String> changedWhileUnlocked() {
    Set<BlobName> before = unlockedAt;
    if (before == null) {
      return Optional.empty();
    }
    try {
      Set<BlobName> gone = new HashSet<>(before);
      gone.removeAll(indexAndSnapshotNames());
      return gone.isEmpty()
          ? Optional.empty()
          : Optional.of(
              gone.size()
                  + " of the index blobs and snapshots it started with were removed meanwhile (a"
                  + " prune or forget ran elsewhere)");
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  private Set<BlobName> indexAndSnapshotNames() throws IOException {
    Set<BlobName> names = new HashSet<>(store.list(BlobType.INDEX));
    names.addAll(store.list(BlobType.SNAPSHOT));
    return names;
  }

  /**
   * Now, by the earlier of this host's clock and the store's: the time the store gave the exclusive
   * lock this process saved (a local directory's clock is this host's; an S3 server's or an NFS
   * server's may be behind).
   */
  private Instant storeNow() {
    Instant here = Instant.now();
    for (Lock l : held) {
      try {
        Optional<BlobInfo> saved = store.stat(l.name());
        if (saved.isPresent()
            && saved.get().modified() != null
            && saved.get().modified().isBefore(here)) {
          here = saved.get().modified();
        }
      } catch (IOException e) {
        LOG.debug("no time of lock {}: {}", l.name(), e.toString());
      }
    }
    return here;
  }

  /**
   * Applies a forget policy (see {@link ForgetPolicy}) to the snapshots {@code filter} passes and,
   * unless {@code dryRun}, deletes the manifests it does not keep. Only manifests go: run {@link
   * #prune} to free their data.
   */
  public List<ForgetPolicy.Group> forget(
      ForgetPolicy policy, SnapshotFilter filter, ZoneId zone, boolean dryRun) {
    if (policy.isEmpty()) {
      throw new IllegalArgumentException("no keep rule: forget would remove every snapshot");
    }
    List<ForgetPolicy.Group> groups = policy.apply(snapshots(), filter, zone);
    if (!dryRun) {
      BlobStore s = guarded();
      List<String> deleted = new ArrayList<>();
      for (ForgetPolicy.Group g : groups) {
        for (ForgetPolicy.Decision d : g.decisions()) {
          if (!d.keep()) {
            deleteSnapshot(s, d.snapshot().id());
            deleted.add(d.snapshot().id());
          }
        }
      }
      requireGone(deleted);
    }
    return groups;
  }

  /**
   * Deletes the manifests of the snapshots {@code refs} name (ids or unique prefixes; a damaged
   * manifest can be named too) and returns their ids; {@code dryRun} deletes nothing.
   *
   * @throws SnapshotNotFoundException if one matches nothing
   * @throws AmbiguousSnapshotException if a prefix matches several
   */
  public List<String> forgetSnapshots(List<String> refs, boolean dryRun) {
    return forgetSnapshots(refs, SnapshotFilter.ANY, dryRun);
  }

  /**
   * As {@link #forgetSnapshots(List, boolean)}, but every snapshot named must pass {@code filter}
   * (checked before anything is deleted): {@code forget ID --host H} never removes another host's
   * snapshot. With a filter, a damaged manifest cannot be checked and is refused.
   *
   * @throws SnapshotNotFoundException if one matches nothing or does not pass
   * @throws RepositoryCorruptedException if a filter is given and a named manifest is damaged
   */
  public List<String> forgetSnapshots(List<String> refs, SnapshotFilter filter, boolean dryRun) {
    List<BlobName> names = snapshotNames();
    List<String> ids = new ArrayList<>();
    for (String ref : refs) {
      if (ref == null || !HEX_PREFIX.matcher(ref).matches()) {
        throw new SnapshotNotFoundException(
            "invalid snapshot reference '" + ref + "': give an id or a unique id prefix");
      }
      List<String> matches =
          names.stream().map(BlobName::name).filter(n -> n.startsWith(ref)).sorted().toList();
      if (matches.isEmpty()) {
        throw new SnapshotNotFoundException(
            "no snapshot matches '" + ref + "' (list them with 'granule snapshots')");
      }
      if (matches.size() > 1) {
        throw new AmbiguousSnapshotException(
            "snapshot prefix '"
                + ref
                + "' is ambiguous: it matches "
                + String.join(", ", matches)
                + " (give more digits)");
      }
      if (!ids.contains(matches.get(0))) {
        ids.add(matches.get(0)); // named twice (an id and its prefix): removed once
      }
    }
    if (!filter.isAny()) {
      for (String id : ids) {
        Manifest m;
        try {
          m = loadManifest(new BlobName(BlobType.SNAPSHOT, id));
        } catch (RepositoryCorruptedException e) {
          throw new RepositoryCorruptedException(
              e.getMessage()
                  + ": its host and tags cannot be checked against "
                  + filter.describe()
                  + " (forget it by id without --host/--tag)",
              e);
        }
        requirePasses(m, filter);
      }
    }
    if (!dryRun) {
      BlobStore s = guarded();
      for (String id : ids) {
        deleteSnapshot(s, id);
      }
      requireGone(ids);
    }
    return ids;
  }

  /**
   * Fails if a manifest of {@code deleted} is still listed: the storage answered its deletion, or a
   * look at it, wrongly (a listing that shows a file every lookup misses; audit Q4). Nobody makes a
   * snapshot id again, so one listed after its deletion was not deleted.
   */
  private void requireGone(List<String> deleted) {
    if (deleted.isEmpty()) {
      return;
    }
    Set<String> listed = new HashSet<>();
    for (BlobName n : snapshotNames()) {
      listed.add(n.name());
    }
    List<String> still = deleted.stream().filter(listed::contains).toList();
    if (!still.isEmpty()) {
      throw new RepositoryException(
          "forget deleted "
              + (deleted.size() - still.size())
              + " of "
              + deleted.size()
              + " snapshots; still listed after their deletion: "
              + String.join(", ", still)
              + " (the storage did not delete them, or lists what it cannot find: check the"
              + " storage's health, then run forget again)");
    }
  }

  private void deleteSnapshot(BlobStore s, String id) {
    try {
      s.delete(new BlobName(BlobType.SNAPSHOT, id));
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to delete snapshot " + id + " in '" + store.location() + "': " + e.getMessage(),
          e);
    }
  }

  @Override
  public synchronized void close() {
    for (Lock l : held) {
      release(l);
    }
    if (!closed) {
      closed = true;
      if (index != null) {
        index.close();
      }
      for (AutoCloseable c : owned) {
        try {
          c.close();
        } catch (Exception e) {
          LOG.debug("unable to close {}: {}", c, e.toString());
        }
      }
    }
  }
}
