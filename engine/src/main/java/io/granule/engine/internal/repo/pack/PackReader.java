package io.granule.engine.internal.repo.pack;

import static io.granule.engine.internal.repo.BlobFrames.corrupted;
import static io.granule.engine.internal.repo.BlobFrames.crc32c;
import static io.granule.engine.internal.repo.BlobFrames.hex;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.UnsupportedRepositoryVersionException;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Reads packs in the layout of {@link PackFormat}: the trailer alone (two range loads), a whole
 * pack with every checksum checked, or one record checked against its entry. Stateless and
 * thread-safe. Every damage is a {@link RepositoryCorruptedException} naming the pack.
 */
public final class PackReader {
  private PackReader() {}

  /** The trailer entries of pack {@code name}, read with range loads and checked. */
  public static List<PackEntry> loadTrailer(BlobStore store, BlobName name) throws IOException {
    return loadTrailer(store, name, stat(store, name));
  }

  /**
   * What {@code store} says of pack {@code name}.
   *
   * @throws NoSuchFileException if it has no such pack
   */
  public static BlobInfo stat(BlobStore store, BlobName name) throws IOException {
    return store
        .stat(name)
        .orElseThrow(() -> new NoSuchFileException(name + " in " + store.location()));
  }

  /** As {@link #loadTrailer(BlobStore, BlobName)}, of a pack {@code info} describes. */
  public static List<PackEntry> loadTrailer(BlobStore store, BlobName name, BlobInfo info)
      throws IOException {
    if (info.size() < PackFormat.HEADER_SIZE + PackFormat.FOOTER_SIZE) {
      throw corrupted(
          "pack " + name, "too short", info.size() + " bytes", "at least header and footer");
    }
    ByteBuffer footer =
        ByteBuffer.wrap(
            store.load(name, info.size() - PackFormat.FOOTER_SIZE, PackFormat.FOOTER_SIZE));
    long trailerOffset = footer.getLong();
    int count = footer.getInt();
    int trailerCrc = footer.getInt();
    footer.getInt();
    checkFooterMagic(name, footer.getInt());
    long trailerBytes = (long) count * PackFormat.ENTRY_SIZE;
    long expectedEnd = trailerOffset + trailerBytes;
    if (count < 0
        || trailerOffset < PackFormat.HEADER_SIZE
        || expectedEnd != info.size() - PackFormat.FOOTER_SIZE) {
      throw corrupted(
          "pack " + name,
          "trailer does not fit the file",
          "size=" + info.size(),
          "size=" + (expectedEnd + PackFormat.FOOTER_SIZE));
    }
    // audit14 B M1: a forged count (a sparse pack of 30 GB) made count * 56 wrap around and the
    // trailer's list take the heap: every record takes a byte at least, and the trailer is read
    // whole only if this process can hold it
    if (count > trailerOffset - PackFormat.HEADER_SIZE) {
      throw corrupted(
          "pack " + name,
          "more entries than its data area has bytes",
          "n=" + count,
          "n<=" + (trailerOffset - PackFormat.HEADER_SIZE));
    }
    BlobStore.requireLoadable(name, trailerBytes, store.location() + " (its trailer)");
    byte[] trailer = store.load(name, trailerOffset, (int) trailerBytes);
    return parseTrailer(name, ByteBuffer.wrap(trailer), 0, count, trailerCrc, trailerOffset);
  }

  /** Checks every byte of a whole pack file and returns its entries. */
  public static List<PackEntry> parse(BlobName name, byte[] pack) {
    return parse(name, ByteBuffer.wrap(pack));
  }

  /**
   * Checks every byte of a whole pack file, the bytes of {@code pack} from index 0 to its limit
   * (heap or direct; its position is ignored and left alone), and returns its entries.
   */
  public static List<PackEntry> parse(BlobName name, ByteBuffer pack) {
    int length = pack.limit();
    if (length < PackFormat.HEADER_SIZE + PackFormat.FOOTER_SIZE) {
      throw corrupted("pack " + name, "too short", length + " bytes", "at least header and footer");
    }
    ByteBuffer b = pack.duplicate().order(java.nio.ByteOrder.BIG_ENDIAN);
    int footer = length - PackFormat.FOOTER_SIZE;
    checkFooterMagic(name, b.getInt(length - 4));
    int fileCrc = crc32c(b, 0, length - 8);
    if (fileCrc != b.getInt(length - 8)) {
      throw corrupted(
          "pack " + name, "file checksum mismatch", hex(fileCrc), hex(b.getInt(length - 8)));
    }
    if (b.getInt(0) != PackFormat.MAGIC) {
      throw corrupted("pack " + name, "wrong magic", hex(b.getInt(0)), hex(PackFormat.MAGIC));
    }
    int version = Short.toUnsignedInt(b.getShort(4));
    if (version != PackFormat.VERSION) {
      throw new UnsupportedRepositoryVersionException(
          "pack "
              + name
              + " has format version "
              + version
              + " (supported: "
              + PackFormat.VERSION
              + "): upgrade granule to read it");
    }
    long trailerOffset = b.getLong(footer);
    int count = b.getInt(footer + 8);
    if (count < 0 || trailerOffset + (long) count * PackFormat.ENTRY_SIZE != footer) {
      throw corrupted(
          "pack " + name, "trailer does not fit the file", "offset=" + trailerOffset, "n=" + count);
    }
    List<PackEntry> entries =
        parseTrailer(name, b, (int) trailerOffset, count, b.getInt(footer + 12), trailerOffset);
    for (PackEntry e : entries) {
      checkRecord(name, e, b, (int) e.offset());
    }
    return entries;
  }

  /** Checks the CRC of one record read from {@code pack} at {@code off} against its entry. */
  public static void checkRecord(BlobName pack, PackEntry e, byte[] data, int off) {
    checkRecord(pack, e, ByteBuffer.wrap(data), off);
  }

  /**
   * Checks the CRC of one record at index {@code off} of {@code data} (heap or direct; position
   * ignored) against its entry.
   */
  public static void checkRecord(BlobName pack, PackEntry e, ByteBuffer data, int off) {
    int crc = crc32c(data, off, e.storedLength());
    if (crc != e.crc()) {
      throw corrupted(
          "pack " + pack + " chunk " + e.id(), "record checksum mismatch", hex(crc), hex(e.crc()));
    }
  }

  private static void checkFooterMagic(BlobName name, int magic) {
    if (magic != PackFormat.FOOTER_MAGIC) {
      throw corrupted(
          "pack " + name, "wrong footer magic", hex(magic), hex(PackFormat.FOOTER_MAGIC));
    }
  }

  private static List<PackEntry> parseTrailer(
      BlobName name, ByteBuffer bytes, int off, int count, int expectedCrc, long trailerOffset) {
    int crc = crc32c(bytes, off, count * PackFormat.ENTRY_SIZE);
    if (crc != expectedCrc) {
      throw corrupted("pack " + name, "trailer checksum mismatch", hex(crc), hex(expectedCrc));
    }
    ByteBuffer b =
        bytes
            .duplicate()
            .order(java.nio.ByteOrder.BIG_ENDIAN)
            .limit(off + count * PackFormat.ENTRY_SIZE)
            .position(off);
    List<PackEntry> entries = new ArrayList<>(count);
    Set<ChunkId> ids = new HashSet<>();
    long next = PackFormat.HEADER_SIZE; // where the next record starts
    for (int i = 0; i < count; i++) {
      ChunkId id = ChunkId.read(b);
      PackEntry e = new PackEntry(id, b.getLong(), b.getInt(), b.getInt(), b.getInt(), b.getInt());
      if (e.offset() < PackFormat.HEADER_SIZE
          || e.storedLength() < 0
          || e.offset() + e.storedLength() > trailerOffset) {
        throw corrupted(
            "pack " + name + " chunk " + id,
            "record outside the data area",
            "offset=" + e.offset() + " length=" + e.storedLength(),
            "end<=" + trailerOffset);
      }
      // Every writer lays records out back to back from the header on, in the order of their
      // entries, one record per chunk. A trailer that does not is damaged or forged: entries that
      // overlap or repeat one record made every check of it cost a decode per entry (audit12 M1).
      if (e.offset() != next) {
        throw corrupted(
            "pack " + name + " chunk " + id,
            "trailer entry " + i + " is not the record after the previous one (forged or damaged)",
            "offset=" + e.offset(),
            "offset=" + next);
      }
      if (!ids.add(id)) {
        throw corrupted(
            "pack " + name + " chunk " + id,
            "trailer lists the chunk twice (forged or damaged)",
            "entry " + i,
            "one entry");
      }
      next += e.storedLength();
      entries.add(e);
    }
    if (next != trailerOffset) {
      throw corrupted(
          "pack " + name,
          "records do not end where the trailer starts (forged or damaged)",
          "end=" + next,
          "end=" + trailerOffset);
    }
    return entries;
  }
}
