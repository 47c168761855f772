package io.granule.engine.internal.repo.blob;

import io.granule.engine.internal.repo.PagedFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps a local copy of the metadata blobs of a remote store (index, fixed-index, dynamic-index and
 * snapshot blobs), so listing snapshots and starting an incremental backup download only what is
 * new. Those blobs are immutable by name (a name is never saved twice with different content), so a
 * cached copy is valid as long as the name exists: {@link #list} asks the remote store, and drops
 * cached copies of names that are gone (deleted by prune). Packs, keys and the config are never
 * cached.
 *
 * <p>The cache is a {@link LocalBlobStore} (atomic writes; a crash leaves no partial copy). What is
 * read from it is checked exactly like remote data (frame checksums, AES-GCM); a reader that finds
 * a blob damaged calls {@link #evictCached} and reads it again, from the remote store this time
 * ({@link io.granule.engine.internal.repo.MetadataBlobs}), so a copy damaged on this host is not
 * reported as damage of the repository. Deleting the cache directory is always safe. Thread-safe.
 */
public final class CachingBlobStore implements BlobStore {
  private static final Logger LOG = LoggerFactory.getLogger(CachingBlobStore.class);
  private static final Set<BlobType> CACHED =
      EnumSet.of(BlobType.INDEX, BlobType.SNAPSHOT, BlobType.FIXED_INDEX, BlobType.DYNAMIC_INDEX);

  private final BlobStore remote;
  private final LocalBlobStore cache;

  /** Caches the metadata of {@code remote} in directory {@code dir}. */
  public CachingBlobStore(BlobStore remote, Path dir) {
    this.remote = remote;
    this.cache = LocalBlobStore.cache(dir);
  }

  /**
   * Closes the directories the cache's own store holds open (not the remote store: its owner's to
   * close); the cache must not be used afterwards.
   */
  public void closeCache() {
    cache.close();
  }

  /** The cache directory. */
  public Path directory() {
    return cache.root();
  }

  /**
   * The remote store, read without this cache: what a check of the repository must read (a cached
   * copy hides damage there, and answers a read-back of a write the remote store did not keep).
   */
  public BlobStore remote() {
    return remote;
  }

  /**
   * The remote store, read without this cache as {@link #remote} is, whose deletes also drop this
   * host's copies (kept or {@link #gone}): what repair writes through. A blob this host deleted is
   * not one the repository lost, and a copy of it put back would list again what repair took out.
   */
  public BlobStore remoteDroppingCopies() {
    return new ForwardingBlobStore(remote) {
      @Override
      public void delete(BlobName name) throws IOException {
        // the copies first: killed between the two, the blob is still listed, and read again
        if (CACHED.contains(name.type())) {
          drop(name);
          try {
            Files.deleteIfExists(cache.path(name));
            Files.deleteIfExists(gone().resolve(name.name()));
          } catch (IOException | RuntimeException e) {
            bypass.add(name);
            LOG.warn("unable to delete cached {} in {}: {}", name, cache.root(), e.toString());
          }
        }
        remote.delete(name);
      }
    };
  }

  /**
   * The cache's own store, read alone, and the file of {@code name} there if it holds one: a copy
   * of a blob the remote store has damaged or lost may be its last intact one.
   */
  public BlobStore cacheStore() {
    return cache;
  }

  /** The file of {@code name}'s cached copy if there is one (a regular file), else empty. */
  public Optional<Path> cachedFile(BlobName name) {
    if (!CACHED.contains(name.type())) {
      return Optional.empty();
    }
    Path p = cache.path(name);
    return Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)
        ? Optional.of(p)
        : Optional.empty();
  }

  private void keep(BlobName name, byte[] data) {
    try {
      cache.save(name, data);
    } catch (IOException e) {
      // A cache that cannot be written only costs downloads.
      LOG.warn("unable to cache {} in {}: {}", name, cache.root(), e.toString());
    }
  }

  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    remote.saveNew(name, data); // atomic where the remote store is
    if (CACHED.contains(name.type())) {
      keep(name, data);
    }
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    remote.save(name, data);
    if (CACHED.contains(name.type())) {
      keep(name, data);
    }
  }

  @Override
  public void save(BlobName name, java.nio.ByteBuffer data) throws IOException {
    remote.save(name, data.duplicate());
    if (CACHED.contains(name.type())) {
      try {
        cache.save(name, data.duplicate()); // from the buffer: a large fixed index is off the heap
      } catch (IOException e) {
        LOG.warn("unable to cache {} in {}: {}", name, cache.root(), e.toString());
      }
    }
  }

  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    remote.save(name, file, length);
    if (CACHED.contains(name.type())) {
      try {
        cache.save(name, file, length);
      } catch (IOException e) {
        LOG.warn("unable to cache {} in {}: {}", name, cache.root(), e.toString());
      }
    }
  }

  /**
   * Blobs whose cached copy cannot be used nor removed (unreadable, not a file, in a read-only
   * cache): read from the remote store for the rest of this run.
   */
  private final Set<BlobName> bypass = java.util.concurrent.ConcurrentHashMap.newKeySet();

  /**
   * Whether the cache may serve {@code name}: not bypassed, and its copy (if any) a regular file (a
   * FIFO would block the read forever, a directory fail it).
   */
  private boolean servable(BlobName name) {
    if (bypass.contains(name)) {
      return false;
    }
    Path p = cache.path(name);
    if (Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)
        && !Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      unusable(name, "it is not a regular file");
      return false;
    }
    return true;
  }

  /** Stops using the cached copy of {@code name}: deleted if possible, else bypassed. */
  private void unusable(BlobName name, String why) {
    LOG.warn(
        "the copy of {} cached in {} cannot be used ({}): reading it from the repository",
        name,
        cache.root(),
        why);
    try {
      if (Files.isDirectory(cache.path(name), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
        bypass.add(name); // not ours to delete recursively
      } else {
        Files.deleteIfExists(cache.path(name));
      }
    } catch (IOException | RuntimeException e) {
      bypass.add(name);
    }
  }

  @Override
  public byte[] load(BlobName name) throws IOException {
    if (!CACHED.contains(name.type()) || !servable(name)) {
      return remote.load(name);
    }
    try {
      return cache.load(name);
    } catch (NoSuchFileException e) {
      byte[] data = remote.load(name);
      keep(name, data);
      return data;
    } catch (IOException e) {
      // an unreadable copy (a disk error) is not the repository's damage
      unusable(name, e.toString());
      return remote.load(name);
    }
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    return remote.load(name, offset, length);
  }

  @Override
  public void load(BlobName name, long offset, java.nio.ByteBuffer dst) throws IOException {
    if (!CACHED.contains(name.type()) || !servable(name)) {
      remote.load(name, offset, dst);
      return;
    }
    // A metadata blob read into a buffer (a large fixed index): from the cache if it holds it,
    // else from the remote store, and a whole blob read is kept for the next time.
    int start = dst.position();
    try {
      cache.load(name, offset, dst);
      return;
    } catch (IOException missingOrShort) {
      dst.position(start);
    }
    remote.load(name, offset, dst);
    ByteBuffer got = dst.duplicate().flip().position(start);
    try {
      keepRange(name, offset, got);
    } catch (IOException | RuntimeException e) {
      LOG.warn("unable to cache {} in {}: {}", name, cache.root(), e.toString());
      drop(name);
    }
  }

  /**
   * A metadata blob being read from the remote store in ranges, in order (a large index, streamed a
   * step at a time), copied into a temporary file as the ranges come: kept in the cache once read
   * to its end, so the next run reads it here.
   */
  private record Pending(FileChannel file, long size, long next) {}

  /** Blobs being read in order, at most {@link #MAX_PENDING}. */
  private final Map<BlobName, Pending> pending = new LinkedHashMap<>();

  private static final int MAX_PENDING = 4;

  /** Keeps {@code got}, bytes {@code offset...} of blob {@code name}, toward a whole copy. */
  private void keepRange(BlobName name, long offset, ByteBuffer got) throws IOException {
    int length = got.remaining();
    if (offset == 0) {
      drop(name);
      long size = remote.stat(name).map(BlobInfo::size).orElse(-1L);
      if (size == length) {
        cache.save(name, got); // read whole at once
        return;
      }
      if (size < length) {
        return;
      }
      FileChannel file = PagedFile.temporary(size, "a cached copy of " + name);
      Pending p = new Pending(file, size, 0);
      synchronized (pending) {
        pending.put(name, p);
        if (pending.size() > MAX_PENDING) {
          BlobName oldest = pending.keySet().iterator().next();
          closeQuietly(pending.remove(oldest));
        }
      }
    }
    Pending p;
    synchronized (pending) {
      p = pending.get(name);
      if (p == null || p.next() != offset) {
        closeQuietly(pending.remove(name)); // not in order: no copy
        return;
      }
      pending.remove(name);
    }
    long pos = offset;
    while (got.hasRemaining()) {
      pos += p.file().write(got, pos);
    }
    if (pos == p.size()) {
      try (FileChannel f = p.file()) {
        cache.save(name, f, p.size());
      }
      return;
    }
    synchronized (pending) {
      pending.put(name, new Pending(p.file(), p.size(), pos));
    }
  }

  private void drop(BlobName name) {
    synchronized (pending) {
      closeQuietly(pending.remove(name));
    }
  }

  private static void closeQuietly(Pending p) {
    if (p != null) {
      try {
        p.file().close();
      } catch (IOException ignored) {
        // a deleted temporary file: nothing to keep
      }
    }
  }

  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    remote.prefetch(name, offset, length, useful);
  }

  /**
   * Deletes the cached copy of {@code name}, which a reader found damaged; whether there was one.
   */
  @Override
  public boolean evictCached(BlobName name) throws IOException {
    if (!CACHED.contains(name.type())) {
      return false;
    }
    drop(name);
    if (bypass.contains(name)) {
      return false; // read from the repository already
    }
    boolean had;
    try {
      had = Files.deleteIfExists(cache.path(name));
    } catch (IOException | RuntimeException e) {
      // a read-only cache, say: read around it
      LOG.warn(
          "{} failed its checks and its copy cached in {} cannot be deleted ({}): reading it from"
              + " the repository",
          name,
          cache.root(),
          e.toString());
      bypass.add(name);
      return true;
    }
    if (had) {
      LOG.warn(
          "{} failed its checks: reading it again from the repository (the copy cached in {} is"
              + " deleted)",
          name,
          cache.root());
    }
    return had;
  }

  @Override
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    if (CACHED.contains(name.type()) && servable(name)) {
      Optional<BlobInfo> local = cache.stat(name);
      if (local.isPresent()) {
        return local;
      }
    }
    return remote.stat(name);
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    List<BlobName> names = remote.list(type);
    if (CACHED.contains(type)) {
      forgetAllBut(type, new HashSet<>(names));
    }
    return names;
  }

  @Override
  public List<BlobInfo> listInfo(BlobType type) throws IOException {
    List<BlobInfo> infos = remote.listInfo(type);
    if (CACHED.contains(type)) {
      Set<BlobName> present = new HashSet<>();
      infos.forEach(i -> present.add(i.name()));
      forgetAllBut(type, present);
    }
    return infos;
  }

  /** How long a copy of an index blob the repository stopped listing is kept ({@link #gone}). */
  static final java.time.Duration GONE_KEPT = java.time.Duration.ofDays(30);

  /**
   * The directory of the copies of index blobs the repository stopped listing, and this host did
   * not delete: kept {@link #GONE_KEPT} after that was seen, nothing reads them but repair. Such a
   * blob was deleted by a prune elsewhere, or lost; a lost one's copy may be the only thing left
   * that locates the records of a pack whose trailer is damaged (audit BB-M1: the listing of a
   * restore deleted it, and that pack's intact records were lost).
   */
  public Path gone() {
    return cache.root().resolve("gone-index");
  }

  /** The copies {@link #gone} holds, by blob. */
  public Map<BlobName, Path> goneIndexBlobs() {
    Map<BlobName, Path> out = new LinkedHashMap<>();
    try (var files = Files.list(gone())) {
      for (Path f : files.toList()) {
        String n = f.getFileName().toString();
        if (BlobName.isValid(n)
            && Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
          out.put(new BlobName(BlobType.INDEX, n), f);
        }
      }
    } catch (NoSuchFileException e) {
      // none
    } catch (IOException | RuntimeException e) {
      LOG.debug("unable to list {}: {}", gone(), e.toString());
    }
    return out;
  }

  /**
   * Drops the cached copies of blobs of {@code type} the repository no longer lists (an index
   * blob's moved to {@link #gone}); best effort (a cache that cannot be changed only keeps stale
   * files, which nothing reads: nothing lists them).
   */
  private void forgetAllBut(BlobType type, Set<BlobName> present) {
    try {
      for (BlobName n : cache.list(type)) {
        if (!present.contains(n)) {
          try {
            if (type == BlobType.INDEX) {
              Files.createDirectories(gone());
              Path to = gone().resolve(n.name());
              Files.move(cache.path(n), to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
              Files.setLastModifiedTime(to, java.nio.file.attribute.FileTime.from(Instant.now()));
            } else {
              Files.deleteIfExists(cache.path(n));
            }
          } catch (IOException e) {
            LOG.debug("unable to drop stale cached {}: {}", n, e.toString());
          }
        }
      }
      if (type == BlobType.INDEX) {
        Instant old = Instant.now().minus(GONE_KEPT);
        for (Map.Entry<BlobName, Path> g : goneIndexBlobs().entrySet()) {
          try {
            if (present.contains(g.getKey())
                || Files.getLastModifiedTime(g.getValue()).toInstant().isBefore(old)) {
              Files.deleteIfExists(g.getValue());
            }
          } catch (IOException e) {
            LOG.debug("unable to delete {}: {}", g.getValue(), e.toString());
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      LOG.warn("unable to tidy the cache {}: {}", cache.root(), e.toString());
    }
  }

  @Override
  public void delete(BlobName name) throws IOException {
    remote.delete(name);
    if (CACHED.contains(name.type())) {
      try {
        cache.delete(name);
      } catch (IOException e) {
        // deleted where it matters; the stale copy goes with the next listing, or is bypassed
        bypass.add(name);
        LOG.warn("unable to delete cached {} in {}: {}", name, cache.root(), e.toString());
      }
    }
  }

  @Override
  public String location() {
    return remote.location();
  }

  @Override
  public String place() {
    return remote.place();
  }

  @Override
  public Optional<String> placeIdentity() {
    return remote.placeIdentity();
  }

  @Override
  public Optional<String> placeInFileSystem() {
    return remote.placeInFileSystem();
  }

  @Override
  public Optional<String> placeAsNamed() {
    return remote.placeAsNamed();
  }

  @Override
  public Foreign foreign() {
    return remote.foreign();
  }
}
