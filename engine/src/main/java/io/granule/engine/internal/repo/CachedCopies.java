package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.backup.Damage;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.CachingBlobStore;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.blob.OverlayBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.snapshot.DynamicIndexReader;
import io.granule.engine.internal.repo.snapshot.FixedIndexReader;
import io.granule.engine.internal.repo.snapshot.ManifestReader;
import io.granule.engine.internal.repo.store.ChunkReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The copies this host's metadata cache ({@link CachingBlobStore}) holds of metadata blobs the
 * repository has damaged or lost (audit Z-M1): a copy that reads whole is the blob as it was
 * written (blob names are never reused; an encrypted blob's name is authenticated with it, a plain
 * one's frames are checksummed), and may be its last intact copy, since the readers of other hosts
 * drop a copy that does not read. Repair puts such copies back into the repository before it
 * repairs anything else; verify says where they are.
 *
 * <p>A copy is put back only where the repository's own copy is there and does not read, or is
 * missing while a snapshot whose manifest reads names it (a fixed or dynamic index). A missing
 * manifest is never put back, even one the storage still lists (a forget deletes manifests: a
 * listing that lags behind one would have it undone), nor an index blob no longer listed (a prune
 * deletes those).
 */
public final class CachedCopies {
  private static final int COMPARE = 4 << 20;

  private final CachingBlobStore cache;
  private final BlobCodec codec;

  /** The copies {@code cache} holds, read with {@code codec}. */
  public CachedCopies(CachingBlobStore cache, BlobCodec codec) {
    this.cache = cache;
    this.codec = codec;
  }

  /**
   * The metadata blobs among {@code damages} (as verify names them, read from {@code remote}) that
   * this host's cache holds a copy of that reads whole, while the repository's copy does not read
   * or is missing: by blob, the cached copy's file. A repository that cannot be reached now is no
   * reason to put anything back: those are left out.
   */
  public Map<BlobName, Path> toPutBack(List<Damage> damages, BlobStore remote) {
    Map<BlobName, Path> out = new LinkedHashMap<>();
    for (Damage d : damages) {
      Optional<BlobName> n = blobName(d.file());
      if (n.isEmpty()) {
        continue;
      }
      Optional<Path> copy = cache.cachedFile(n.get());
      if (copy.isEmpty() || !readsWhole(cache.cacheStore(), n.get())) {
        continue;
      }
      if (remoteNeedsIt(remote, n.get(), d)) {
        out.put(n.get(), copy.get());
      }
    }
    return out;
  }

  /**
   * The copies of index blobs the repository no longer lists that this host kept ({@link
   * CachingBlobStore#gone}) and that locate records of a pack {@code damages} names damaged: each
   * reads whole, is not in the repository, and every pack it lists is there ({@code packs}: the
   * repository's listing). Such a blob was lost, or deleted by a prune elsewhere that stopped
   * before it deleted its packs; put back, the first locates what it placed, the second lists what
   * the next prune drops again (audit BB-M1: the pack's intact records were lost for good).
   */
  public Map<BlobName, Path> goneCandidates(
      List<Damage> damages, BlobStore remote, Set<BlobName> packs) {
    Set<String> damaged = new java.util.HashSet<>();
    String prefix = BlobType.PACK.directory() + "/";
    for (Damage d : damages) {
      if (d.file().startsWith(prefix)) {
        damaged.add(d.file().substring(prefix.length()));
      }
    }
    Map<BlobName, Path> out = new LinkedHashMap<>();
    if (damaged.isEmpty()) {
      return out;
    }
    Set<String> present = new java.util.HashSet<>();
    packs.forEach(p -> present.add(p.name()));
    for (Map.Entry<BlobName, Path> g : cache.goneIndexBlobs().entrySet()) {
      BlobName n = g.getKey();
      try {
        Set<String> lists = packsOf(n, g.getValue());
        if (!lists.isEmpty()
            && present.containsAll(lists)
            && lists.stream().anyMatch(damaged::contains)
            && remote.stat(n).isEmpty()) {
          out.put(n, g.getValue());
        }
      } catch (IOException | RuntimeException e) {
        RepositoryUnreachableException.throwIfUnreachable(n, remote.location(), e);
        // a copy that does not read: not one to put back
      }
    }
    return out;
  }

  /**
   * The entries of the kept copies {@code gone} ({@link #goneToPutBack}) that place chunks in the
   * packs {@code damages} names, whose records read now from {@code remote} (decoded, authenticated
   * with the pack's name where encrypted, hashed to their id): what repair indexes anew. The blobs
   * themselves are never put back: one that another host's repair replaced lists records that
   * repair took out for not reading, which backups would deduplicate against (audit CC-H1).
   *
   * @param bad told of each pack and how many of its records there did not read
   */
  public Map<ChunkId, ChunkLocation> readableEntries(
      Map<BlobName, Path> gone,
      List<Damage> damages,
      BlobStore remote,
      ChunkHasher hasher,
      java.util.function.BiConsumer<BlobName, Integer> bad) {
    Set<String> damaged = new java.util.HashSet<>();
    String prefix = BlobType.PACK.directory() + "/";
    for (Damage d : damages) {
      if (d.file().startsWith(prefix)) {
        damaged.add(d.file().substring(prefix.length()));
      }
    }
    ChunkReader reader = new ChunkReader(remote, codec, null, hasher);
    Map<ChunkId, ChunkLocation> out = new LinkedHashMap<>();
    Map<BlobName, Integer> failed = new LinkedHashMap<>();
    for (Map.Entry<BlobName, Path> g : gone.entrySet()) {
      List<IndexEntry> entries;
      try {
        entries =
            IndexReader.read(
                g.getKey(), codec.decode(g.getKey(), Files.readAllBytes(g.getValue())));
      } catch (IOException | RuntimeException e) {
        continue; // checked before: changed meanwhile
      }
      for (IndexEntry e : entries) {
        ChunkLocation l = e.location();
        if (!damaged.contains(l.pack().toString())
            || out.containsKey(e.id())
            || ChunkIndex.impossible(l, codec) != null) {
          continue;
        }
        BlobName pack = ChunkReader.packName(l.pack());
        try {
          reader.decode(
              e.id(),
              pack,
              remote.load(pack, l.offset(), l.storedLength()),
              l.flags(),
              l.rawLength());
          out.put(e.id(), l);
        } catch (IOException | RuntimeException x) {
          RepositoryUnreachableException.throwIfUnreachable(pack, remote.location(), x);
          failed.merge(pack, 1, Integer::sum);
        }
      }
    }
    failed.forEach(bad);
    return out;
  }

  /**
   * Writes index blobs listing {@code entries} through {@code target}, then reads them back from
   * {@code remote}: each must read whole, and together list every entry; else they are deleted
   * again and the repair stops (nothing else was changed). Returns their names.
   */
  public static List<BlobName> index(
      Map<ChunkId, ChunkLocation> entries, BlobCodec codec, BlobStore target, BlobStore remote) {
    List<IndexEntry> list = new ArrayList<>(entries.size());
    entries.forEach((id, l) -> list.add(new IndexEntry(id, l)));
    List<BlobName> written = new ArrayList<>();
    try {
      IndexWriter.save(
          new ForwardingBlobStore(target) {
            @Override
            public void save(BlobName name, byte[] data) throws IOException {
              written.add(name);
              super.save(name, data);
            }
          },
          codec,
          list);
      Set<IndexEntry> missing = new java.util.HashSet<>(list);
      for (BlobName n : written) {
        IndexReader.read(n, codec.decode(n, remote.load(n))).forEach(missing::remove);
      }
      if (!missing.isEmpty()) {
        throw new IOException(missing.size() + " entries written do not read back");
      }
      return written;
    } catch (IOException | RuntimeException e) {
      RepositoryUnreachableException.throwIfUnreachable(
          written.isEmpty() ? new BlobName(BlobType.INDEX, "new") : written.get(0),
          remote.location(),
          e);
      for (BlobName n : written) {
        try {
          target.delete(n);
        } catch (IOException | RuntimeException ignored) {
          // a blob listing checked records only: harmless if it stays
        }
      }
      throw new RepositoryException(
          "repair stopped: the index blob listing the records copies kept in this host's cache"
              + " locate was written, then did not read back ("
              + e.getMessage()
              + "): the storage is unreliable; nothing was deleted (check the storage's health,"
              + " then run repair again)",
          e);
    }
  }

  /** The packs (names) index blob {@code n}, read from {@code file}, lists. */
  public Set<String> packsOf(BlobName n, Path file) throws IOException {
    Set<String> lists = new java.util.HashSet<>();
    for (var e : IndexReader.read(n, codec.decode(n, Files.readAllBytes(file)))) {
      lists.add(e.location().pack().toString());
    }
    return lists;
  }

  /**
   * Whether the repository's copy of {@code n}, which verify named in {@code d}, does not read, or
   * is missing where it must be there.
   */
  private boolean remoteNeedsIt(BlobStore remote, BlobName n, Damage d) {
    try {
      check(remote, n);
      return false; // it reads: verify named it for what it refers to
    } catch (NoSuchFileException e) {
      // a fixed or dynamic index a manifest that reads names; never a manifest the storage lists
      // and does not find: a forget elsewhere deletes manifests, and a listing that lags would
      // have it put back, undoing the forget
      return n.type() != BlobType.SNAPSHOT
          && d.problems().stream().anyMatch(p -> p.startsWith("missing, listed by "));
    } catch (IOException | RuntimeException e) {
      try {
        RepositoryUnreachableException.throwIfUnreachable(n, remote.location(), e);
      } catch (RepositoryUnreachableException u) {
        return false; // not an answer about the blob
      }
      return true;
    }
  }

  /**
   * Writes the cached copy of each blob of {@code blobs} into the repository through {@code
   * target}, then reads it back from {@code remote} (the repository itself, past any cache): it
   * must be there, equal to the copy byte for byte, and read whole.
   *
   * @param done told of each blob put back, before the next is written
   * @throws RepositoryException if one does not read back (the copy stays in the cache; what was
   *     put back before it stays, and nothing else was changed)
   */
  public void putBack(
      Map<BlobName, Path> blobs,
      BlobStore target,
      BlobStore remote,
      java.util.function.Consumer<BlobName> done) {
    for (Map.Entry<BlobName, Path> b : blobs.entrySet()) {
      BlobName n = b.getKey();
      long size;
      Private copy;
      try {
        copy = privateCopy(n, b.getValue());
      } catch (IOException e) {
        throw new RepositoryException(
            "repair stopped: the copy of "
                + n
                + " in this host's cache ("
                + b.getValue()
                + ") no longer reads whole, or could not be copied: "
                + e.getMessage()
                + "; nothing was deleted (run repair again)",
            e);
      }
      try (FileChannel ch = FileChannel.open(copy.file(), StandardOpenOption.READ)) {
        size = ch.size();
        target.save(n, ch, size);
      } catch (IOException e) {
        deleteQuietly(copy);
        RepositoryUnreachableException.throwIfUnreachable(n, remote.location(), e);
        throw new RepositoryException(
            "repair stopped: unable to put "
                + n
                + " back into the repository at "
                + remote.location()
                + " from this host's cache ("
                + b.getValue()
                + "): "
                + e.getMessage()
                + "; nothing was deleted (check the storage's health, then run repair again)",
            e);
      }
      String wrong = readBack(remote, n, copy.file(), size);
      deleteQuietly(copy);
      if (wrong != null) {
        throw new RepositoryException(
            "repair stopped: "
                + n
                + " put back from this host's cache, then "
                + wrong
                + ": the storage is unreliable; nothing was deleted, the copy stays in the cache"
                + " at "
                + b.getValue()
                + " (check the storage's health, then run repair again)");
      }
      done.accept(n);
    }
  }

  /** A blob's copy in a private temporary directory {@code dir}: {@code file} in {@code store}. */
  private record Private(Path dir, LocalBlobStore store, Path file) {}

  /**
   * A copy of {@code cached}, {@code n}'s cached file, in a private temporary directory, checked
   * there: what is written and compared is what was checked, whatever happens to the cache file
   * meanwhile (audit BB-L3).
   */
  private Private privateCopy(BlobName n, Path cached) throws IOException {
    Path dir = Files.createTempDirectory("granule-put-back-");
    LocalBlobStore priv = LocalBlobStore.cache(dir);
    Private p = new Private(dir, priv, priv.path(n));
    try {
      try (FileChannel ch = FileChannel.open(cached, StandardOpenOption.READ)) {
        priv.save(n, ch, ch.size());
      }
      check(priv, n);
      return p;
    } catch (IOException | RuntimeException e) {
      deleteQuietly(p);
      throw e instanceof IOException io ? io : new IOException(e.getMessage(), e);
    }
  }

  private static void deleteQuietly(Private p) {
    try {
      p.store().close();
      try (Stream<Path> s = Files.walk(p.dir())) {
        for (Path f : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(f);
        }
      }
    } catch (IOException | RuntimeException e) {
      // a temporary file left behind
    }
  }

  /** Why {@code n} as {@code remote} has it now is not the copy at {@code file}; null if it is. */
  private String readBack(BlobStore remote, BlobName n, Path file, long size) {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      Optional<BlobInfo> info = remote.stat(n);
      if (info.isEmpty()) {
        return "it was not found";
      }
      if (info.get().size() != size) {
        return "it has " + info.get().size() + " bytes, not " + size;
      }
      ByteBuffer mine = ByteBuffer.allocate((int) Math.min(COMPARE, Math.max(size, 1)));
      for (long off = 0; off < size; off += COMPARE) {
        int len = (int) Math.min(COMPARE, size - off);
        byte[] theirs = remote.load(n, off, len);
        mine.clear().limit(len);
        while (mine.hasRemaining()) {
          if (ch.read(mine, off + mine.position()) < 0) {
            return "the cached copy changed while it was put back";
          }
        }
        if (theirs.length != len || !Arrays.equals(theirs, 0, len, mine.array(), 0, len)) {
          return "it differs from the copy at byte " + off + " or after";
        }
      }
      check(remote, n);
      return null;
    } catch (IOException | RuntimeException e) {
      RepositoryUnreachableException.throwIfUnreachable(n, remote.location(), e);
      return "it did not read back (" + e.getMessage() + ")";
    }
  }

  /** Whether {@code n} as {@code s} holds it reads whole. */
  private boolean readsWhole(BlobStore s, BlobName n) {
    try {
      check(s, n);
      return true;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /** Reads {@code n} from {@code s} as its readers do, every entry of an index. */
  private void check(BlobStore s, BlobName n) throws IOException {
    switch (n.type()) {
      case INDEX -> IndexReader.read(n, codec.decode(n, s.load(n)));
      case SNAPSHOT -> ManifestReader.read(n, codec.decode(n, s.load(n)));
      case FIXED_INDEX -> {
        try (var f = FixedIndexReader.load(s, codec, n)) {
          for (int i = 0; i < f.count(); i++) {
            f.get(i);
          }
        }
      }
      case DYNAMIC_INDEX -> {
        try (var d = DynamicIndexReader.load(s, codec, n)) {
          for (int i = 0; i < d.count(); i++) {
            d.get(i);
          }
        }
      }
      default -> throw new IllegalArgumentException(n + " is not metadata a cache holds");
    }
  }

  /** The metadata blob a verify names {@code file} ({@code index/NAME}, …), if it is one. */
  public static Optional<BlobName> blobName(String file) {
    int slash = file.indexOf('/');
    if (slash < 0) {
      return Optional.empty();
    }
    String dir = file.substring(0, slash);
    for (BlobType t :
        List.of(BlobType.INDEX, BlobType.SNAPSHOT, BlobType.FIXED_INDEX, BlobType.DYNAMIC_INDEX)) {
      if (t.directory().equals(dir)) {
        String name = file.substring(slash + 1);
        return BlobName.isValid(name) ? Optional.of(new BlobName(t, name)) : Optional.empty();
      }
    }
    return Optional.empty();
  }

  /**
   * {@code remote} as it reads once {@code blobs} (each from its file) are put back: those read
   * from their files, and listed. Writes nothing (a dry run's view).
   */
  public static BlobStore asPutBack(BlobStore remote, Map<BlobName, Path> blobs) {
    Map<BlobName, OverlayBlobStore.Blob> files = new LinkedHashMap<>();
    blobs.forEach((n, f) -> files.put(n, OverlayBlobStore.Blob.of(f)));
    return new OverlayBlobStore(remote, files);
  }
}
