package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.zip.CRC32;
import java.util.zip.CheckedInputStream;
import java.util.zip.CheckedOutputStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A repository's chunk index kept between runs in the user's cache ({@code <cache>/<repository
 * id>/chunk-index}): the table's bytes as they are, with the index blobs whose entries it holds
 * (name and size) and the packs those list. A command opens its index by reading this one file in
 * order, at the disk's speed, instead of decoding every index blob and inserting every entry again
 * (at 2.3 M chunks ~3 s; at 10^8 minutes). A table within the memory budget is copied into memory;
 * a larger one reads its pages from this file until it writes them (see {@link
 * SlotPages#readFrom}), so the file stays open, unchanged, while the index is.
 *
 * <p>The file is only ever replaced whole (written under a temporary name, then renamed over), so a
 * reader sees one writer's file or another's, never a mix; checksums over the header and the table
 * catch a file a crash or the disk damaged, which is then ignored (the index is read from the blobs
 * again). Whether it still describes the repository is the caller's to decide from the blobs it
 * lists (see docs/design.md, "The chunk index between runs").
 *
 * <p>Format (big-endian; docs/formats.md): u32 magic "GCIX", u16 version 1, the repository id
 * (modified UTF-8, as {@link DataOutputStream#writeUTF}), u64 capacity (slots), u64 size (entries),
 * u32 n then n index blobs (name as UTF, u64 size), u32 m then m pack ids (16 bytes each), u32
 * CRC-32 of all of the header before it; then the table, capacity × 64 bytes as {@link ChunkIndex}
 * lays them out; then u32 CRC-32 of the table and u32 magic again.
 */
public final class IndexCache {
  /** The file's name in the repository's cache directory. */
  public static final String FILE = "chunk-index";

  static final int MAGIC = 0x47434958; // "GCIX"
  private static final int SLOT = ChunkIndex.SLOT;
  static final int VERSION = 1;

  private static final String TEMP_PREFIX = ".chunk-index-";
  private static final Duration STALE_TEMP = Duration.ofDays(1);
  private static final Logger LOG = LoggerFactory.getLogger(IndexCache.class);

  private IndexCache() {}

  /** What a cache file holds: the index, the index blobs it was read from, the packs they list. */
  public record Contents(ChunkIndex index, Map<BlobName, Long> blobs, Set<PackId> packs) {}

  /**
   * The index kept in {@code file} for repository {@code repositoryId}, with {@code memory} bytes
   * of memory at most and its temporary files in {@code tempDir}; empty if there is none, or it is
   * another repository's, of another version, or damaged (then logged: the caller reads the blobs).
   */
  public static Optional<Contents> read(Path file, String repositoryId, Path tempDir, long memory) {
    RandomAccessFile raf = open(file);
    if (raf == null) {
      return Optional.empty();
    }
    boolean kept = false;
    try {
      Header h = header(raf, file, repositoryId);
      if (h == null) {
        return Optional.empty();
      }
      CRC32 tableCrc = new CRC32();
      ChunkIndex index =
          ChunkIndex.readTable(tempDir, h.capacity, h.size, memory, raf, h.tableAt, tableCrc);
      kept = !index.resident();
      if ((int) tableCrc.getValue() != h.tableCrc) {
        index.close();
        kept = false; // closed with the index
        throw new IOException("its table's checksum does not match");
      }
      return Optional.of(new Contents(index, h.blobs, h.packs));
    } catch (EOFException e) {
      LOG.warn("not using the kept chunk index {}: it is truncated", file);
    } catch (IOException | RuntimeException e) {
      LOG.warn("not using the kept chunk index {}: {}", file, e.getMessage());
    } finally {
      if (!kept) {
        close(raf);
      }
    }
    return Optional.empty();
  }

  /**
   * Feeds every entry of the index kept in {@code file} for repository {@code repositoryId} to
   * {@code each}, in the table's order, if the index blobs it was read from (name to size) pass
   * {@code usable}; returns those blobs, or null if there is no such file, it is not usable, or it
   * is damaged (then what {@code each} was fed must be dropped: the table's checksum is checked at
   * its end). One read of the file in order, with no table built: a restore of one disk fills its
   * own index so, instead of decoding every index blob.
   */
  public static Map<BlobName, Long> scan(
      Path file,
      String repositoryId,
      java.util.function.Predicate<Map<BlobName, Long>> usable,
      java.util.function.BiConsumer<io.granule.engine.internal.repo.ChunkId, ChunkLocation> each) {
    RandomAccessFile raf = open(file);
    if (raf == null) {
      return null;
    }
    try {
      Header h = header(raf, file, repositoryId);
      if (h == null || !usable.test(h.blobs)) {
        return null;
      }
      CRC32 crc = new CRC32();
      byte[] block = new byte[1 << 20];
      long length = h.capacity * SLOT;
      raf.seek(h.tableAt);
      for (long at = 0; at < length; at += block.length) {
        int n = (int) Math.min(block.length, length - at);
        raf.readFully(block, 0, n);
        crc.update(block, 0, n);
        ChunkIndex.eachEntry(block, n, each);
      }
      if ((int) crc.getValue() != h.tableCrc) {
        throw new IOException("its table's checksum does not match");
      }
      return h.blobs;
    } catch (EOFException e) {
      LOG.warn("not using the kept chunk index {}: it is truncated", file);
    } catch (IOException | RuntimeException e) {
      LOG.warn("not using the kept chunk index {}: {}", file, e.getMessage());
    } finally {
      close(raf);
    }
    return null;
  }

  private static RandomAccessFile open(Path file) {
    try {
      return new RandomAccessFile(file.toFile(), "r");
    } catch (FileNotFoundException e) {
      if (Files.exists(file)) {
        LOG.warn("not using the kept chunk index {}: {}", file, e.getMessage());
      }
      return null;
    }
  }

  private static void close(RandomAccessFile raf) {
    try {
      raf.close();
    } catch (IOException e) {
      // opened for reading: nothing is lost
    }
  }

  /** A kept index's header: where its table starts and its checksum, from the trailer. */
  private record Header(
      long capacity,
      long size,
      Map<BlobName, Long> blobs,
      Set<PackId> packs,
      long tableAt,
      int tableCrc) {}

  /**
   * The header of the kept index open in {@code raf}, checked (magic, repository, checksum, the
   * file's length and trailer); null if it is of another version.
   *
   * @throws IOException if it is damaged or another repository's
   */
  private static Header header(RandomAccessFile raf, Path file, String repositoryId)
      throws IOException {
    long length = raf.length();
    CRC32 headerCrc = new CRC32();
    Counting counted =
        new Counting(new BufferedInputStream(new FileInputStream(raf.getFD()), 1 << 16));
    DataInputStream in = new DataInputStream(new CheckedInputStream(counted, headerCrc));
    if (in.readInt() != MAGIC) {
      throw new IOException("not a chunk index file");
    }
    int version = in.readUnsignedShort();
    if (version != VERSION) {
      LOG.debug("not using the chunk index {} of version {}", file, version);
      return null;
    }
    String id = in.readUTF();
    if (!id.equals(repositoryId)) {
      throw new IOException("it is repository " + id + "'s, not " + repositoryId + "'s");
    }
    long capacity = in.readLong();
    long size = in.readLong();
    int blobCount = count(in, length, 10);
    Map<BlobName, Long> blobs = new HashMap<>(Math.min(blobCount, 1 << 16) * 2);
    for (int i = 0; i < blobCount; i++) {
      BlobName name = new BlobName(BlobType.INDEX, in.readUTF());
      blobs.put(name, in.readLong());
    }
    int packCount = count(in, length, PackId.BYTES);
    Set<PackId> packs = new HashSet<>(Math.min(packCount, 1 << 16) * 2);
    for (int i = 0; i < packCount; i++) {
      packs.add(new PackId(in.readLong(), in.readLong()));
    }
    int expectedHeader = (int) headerCrc.getValue();
    if (in.readInt() != expectedHeader) {
      throw new IOException("its header's checksum does not match");
    }
    long tableAt = counted.count;
    if (capacity < 0 || capacity > length / SLOT || tableAt + capacity * SLOT + 8 != length) {
      throw new IOException(
          length < tableAt + Math.max(0, capacity) * SLOT + 8
              ? "it is truncated"
              : "it does not end where its table does");
    }
    raf.seek(tableAt + capacity * SLOT);
    int tableCrc = raf.readInt();
    if (raf.readInt() != MAGIC) {
      throw new IOException("it does not end with its magic number");
    }
    return new Header(capacity, size, blobs, packs, tableAt, tableCrc);
  }

  /** Counts the bytes read through it: where the header ends. */
  private static final class Counting extends FilterInputStream {
    long count;

    Counting(InputStream in) {
      super(in);
    }

    @Override
    public int read() throws IOException {
      int b = super.read();
      if (b >= 0) {
        count++;
      }
      return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      int n = super.read(b, off, len);
      if (n > 0) {
        count += n;
      }
      return n;
    }

    @Override
    public long skip(long n) throws IOException {
      long k = super.skip(n);
      count += k;
      return k;
    }
  }

  /** A count of records of at least {@code bytes} each, which a file of {@code length} can hold. */
  private static int count(DataInputStream in, long length, int bytes) throws IOException {
    int n = in.readInt();
    if (n < 0 || (long) n * bytes > length) {
      throw new IOException("a count of " + n + " does not fit the file");
    }
    return n;
  }

  /**
   * Writes {@code index}, read from index blobs {@code blobs} (name to size), which list {@code
   * packs}, to {@code file} for repository {@code repositoryId}: under a temporary name in its
   * directory, then renamed over it. Not synced: a file a crash truncated or left unwritten fails
   * its checksums and is read from the blobs again.
   */
  public static void write(
      Path file,
      String repositoryId,
      ChunkIndex index,
      Map<BlobName, Long> blobs,
      Collection<PackId> packs)
      throws IOException {
    Path dir = file.toAbsolutePath().getParent();
    Files.createDirectories(dir);
    deleteStaleTemps(dir);
    Path temp = Files.createTempFile(dir, TEMP_PREFIX, ".tmp"); // owner only
    try {
      try (OutputStream raw = new BufferedOutputStream(Files.newOutputStream(temp), 1 << 16)) {
        CRC32 headerCrc = new CRC32();
        DataOutputStream out = new DataOutputStream(new CheckedOutputStream(raw, headerCrc));
        out.writeInt(MAGIC);
        out.writeShort(VERSION);
        out.writeUTF(repositoryId);
        out.writeLong(index.capacity());
        out.writeLong(index.size());
        out.writeInt(blobs.size());
        for (Map.Entry<BlobName, Long> b : blobs.entrySet()) {
          out.writeUTF(b.getKey().name());
          out.writeLong(b.getValue());
        }
        out.writeInt(packs.size());
        for (PackId p : packs) {
          out.writeLong(p.hi());
          out.writeLong(p.lo());
        }
        out.flush();
        DataOutputStream tail = new DataOutputStream(raw);
        tail.writeInt((int) headerCrc.getValue());
        CRC32 tableCrc = new CRC32();
        tail.flush();
        index.writeTable(raw, tableCrc);
        tail.writeInt((int) tableCrc.getValue());
        tail.writeInt(MAGIC);
      }
      Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException | RuntimeException | Error e) {
      Files.deleteIfExists(temp);
      throw e;
    }
  }

  /** Deletes temporary files older than a day that writers which crashed left in {@code dir}. */
  private static void deleteStaleTemps(Path dir) {
    Instant before = Instant.now().minus(STALE_TEMP);
    try (DirectoryStream<Path> temps = Files.newDirectoryStream(dir, TEMP_PREFIX + "*.tmp")) {
      for (Path t : temps) {
        try {
          if (Files.getLastModifiedTime(t).toInstant().isBefore(before)) {
            Files.deleteIfExists(t);
          }
        } catch (IOException e) {
          LOG.debug("unable to delete {}: {}", t, e.toString());
        }
      }
    } catch (IOException e) {
      LOG.debug("unable to list {}: {}", dir, e.toString());
    }
  }
}
