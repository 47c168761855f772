package io.granule.engine.internal.repo.blob;

import io.granule.engine.internal.nativelib.NativeLibrary;
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
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link BlobStore} over a local directory. Each {@link BlobType} has its own subdirectory; packs
 * are fanned out further into subdirectories named by the first two characters of their name (so
 * that no directory holds more than a few thousand entries).
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
public final class LocalBlobStore implements BlobStore {
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

  private final Path root;
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
    this.root = root;
  }

  /** The root directory. */
  public Path root() {
    return root;
  }

  @Override
  public long deleteLeftovers(java.time.Duration olderThan) throws IOException {
    long cutoff = System.currentTimeMillis() - olderThan.toMillis();
    long freed = 0;
    for (BlobType t : BlobType.values()) {
      if (t == BlobType.LOCK) {
        continue; // lock takers write there while a prune holds its lock
      }
      Path dir = t == BlobType.CONFIG ? root : root.resolve(t.directory());
      if (!Files.isDirectory(dir)) {
        continue;
      }
      try (java.util.stream.Stream<Path> files =
          t == BlobType.PACK ? Files.walk(dir, 2) : Files.list(dir)) {
        for (Path f : (Iterable<Path>) files::iterator) {
          if (!f.getFileName().toString().startsWith(".tmp-") || !Files.isRegularFile(f)) {
            continue;
          }
          try {
            java.nio.file.attribute.BasicFileAttributes a =
                Files.readAttributes(f, java.nio.file.attribute.BasicFileAttributes.class);
            if (a.lastModifiedTime().toMillis() < cutoff) {
              Files.delete(f);
              freed += a.size();
            }
          } catch (java.nio.file.NoSuchFileException gone) {
            // removed meanwhile
          }
        }
      }
    }
    return freed;
  }

  /** The file that holds {@code name}. */
  public Path path(BlobName name) {
    Path dir = root.resolve(name.type().directory());
    if (name.type() == BlobType.PACK) {
      dir = dir.resolve(name.name().substring(0, 2));
    }
    return dir.resolve(name.name()).normalize();
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

  /** Blob directories whose entry in their parent this store has synced since they existed. */
  private final java.util.Set<Path> syncedDirs = java.util.concurrent.ConcurrentHashMap.newKeySet();

  /** Fills a new temporary file of a blob. */
  private interface Filler {
    void fill(Path tmp, FileChannel ch) throws IOException;
  }

  /**
   * Saves a blob atomically and durably: filled into a temporary file beside it, synced, renamed
   * into place, its directory synced.
   */
  private void save(BlobName name, Filler filler) throws IOException {
    Path target = path(name);
    Path dir = target.getParent();
    // The directory's own entry is synced (its parent synced after it exists) by the first save
    // into it of this store, not only by the save that made it: another thread's save could make
    // it and still be writing its blob when this one's is renamed in and counted durable.
    boolean created = !syncedDirs.contains(dir);
    if (!Files.isDirectory(dir)) {
      Files.createDirectories(dir);
    }
    Path tmp =
        dir.resolve(
            ".tmp-" + name.name() + "-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
    try {
      try (FileChannel ch =
          FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        filler.fill(tmp, ch);
        ch.force(true);
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(tmp);
      throw e;
    }
    // The blob is in place (committed, if it is a snapshot): an interrupt (a cancelled job) must
    // not make the save look failed now, so the directory syncs ignore it and it is kept.
    boolean interrupted = Thread.interrupted();
    try {
      interrupted |= fsyncDirectoryUninterruptibly(dir);
      if (created) {
        Path parent = dir.toAbsolutePath().getParent(); // "repo" (relative) has one too
        if (parent != null) {
          interrupted |= fsyncDirectoryUninterruptibly(parent);
        }
        syncedDirs.add(dir);
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
    try (FileChannel d = FileChannel.open(tmp, StandardOpenOption.WRITE, DirectIo.option())) {
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
    Path p = path(name);
    java.nio.file.attribute.BasicFileAttributes a;
    try {
      // one look: a blob deleted between two (a lock released) was taken for "not a regular file"
      a = Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class);
    } catch (java.nio.file.NoSuchFileException e) {
      return Files.readAllBytes(p); // says so in its words
    }
    if (!a.isRegularFile()) {
      // a FIFO would block this read forever (a repository's config replaced by one, say)
      throw new IOException("blob " + name + " in " + root + " is not a regular file");
    }
    BlobStore.requireLoadable(name, a.size(), root.toString());
    return Files.readAllBytes(p);
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
    try (FileChannel ch = FileChannel.open(path(name), StandardOpenOption.READ)) {
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = ch.read(dst, pos);
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
    try (FileChannel ch = FileChannel.open(path(name), StandardOpenOption.READ);
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
    } catch (IOException e) {
      LOG.debug("prefetch of {} [{}, +{}) dropped: {}", name, offset, length, e.toString());
    }
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
    try (FileChannel ch = openDirect(path(name))) {
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

  /** {@code path} opened to read with {@code O_DIRECT}, or buffered if that is refused. */
  private static FileChannel openDirect(Path path) throws IOException {
    try {
      return FileChannel.open(path, StandardOpenOption.READ, DirectIo.option());
    } catch (NoSuchFileException e) {
      throw e;
    } catch (UnsupportedOperationException | java.nio.file.FileSystemException e) {
      return FileChannel.open(path, StandardOpenOption.READ);
    }
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
      java.nio.file.attribute.BasicFileAttributes a =
          Files.readAttributes(path(name), java.nio.file.attribute.BasicFileAttributes.class);
      return Optional.of(new BlobInfo(name, a.size(), a.lastModifiedTime().toInstant()));
    } catch (NoSuchFileException e) {
      return Optional.empty();
    }
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    List<BlobName> names = new ArrayList<>();
    if (type == BlobType.CONFIG) {
      if (Files.isRegularFile(path(BlobName.CONFIG))) {
        names.add(BlobName.CONFIG);
      }
      return names;
    }
    Path dir = root.resolve(type.directory());
    if (!Files.isDirectory(dir)) {
      return names;
    }
    if (type == BlobType.PACK) {
      try (DirectoryStream<Path> fans = Files.newDirectoryStream(dir, Files::isDirectory)) {
        for (Path fan : fans) {
          collect(type, fan, names);
        }
      }
    } else {
      collect(type, dir, names);
    }
    return names;
  }

  private static void collect(BlobType type, Path dir, List<BlobName> names) throws IOException {
    // Locks: every entry that is not a directory, even one gone by the time it is looked at. A
    // refresh replaces its lock blob (new saved, old deleted); a listing that read the directory
    // before the save and dropped the old one as gone showed no lock at all, and its taker never
    // learned it should list again (it does when a listed lock is gone on reading).
    DirectoryStream.Filter<Path> filter =
        type == BlobType.LOCK ? f -> !Files.isDirectory(f) : Files::isRegularFile;
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, filter)) {
      for (Path f : files) {
        String n = f.getFileName().toString();
        if (BlobName.isValid(n)) {
          names.add(new BlobName(type, n));
        }
      }
    }
  }

  @Override
  public void delete(BlobName name) throws IOException {
    Files.deleteIfExists(path(name));
  }

  @Override
  public String location() {
    return root.toString();
  }

  /** The real path of the directory (links resolved), else its absolute normalized path. */
  @Override
  public String place() {
    try {
      return root.toRealPath().toString();
    } catch (IOException e) {
      return root.toAbsolutePath().normalize().toString();
    }
  }

  /** What the directory is: its device and inode numbers and birth time (see {@link #identity}). */
  @Override
  public Optional<String> placeIdentity() {
    return identity(root);
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
   * statx of the NUL-terminated {@code path} (links followed) into {@code out}: st_dev, inode
   * number, birth time seconds and nanoseconds; 1 if the birth time is known, 0 if not, or -errno.
   */
  private static native int birth0(byte[] path, long[] out);
}
