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
import java.util.List;

/**
 * Reads packs in the layout of {@link PackFormat}: the trailer alone (two range loads), a whole
 * pack with every checksum checked, or one record checked against its entry. Stateless and
 * thread-safe. Every damage is a {@link RepositoryCorruptedException} naming the pack.
 */
public final class PackReader {
  private PackReader() {}

  /** The trailer entries of pack {@code name}, read with range loads and checked. */
  public static List<PackEntry> loadTrailer(BlobStore store, BlobName name) throws IOException {
    BlobInfo info =
        store
            .stat(name)
            .orElseThrow(() -> new NoSuchFileException(name + " in " + store.location()));
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
    long expectedEnd = trailerOffset + (long) count * PackFormat.ENTRY_SIZE;
    if (count < 0
        || trailerOffset < PackFormat.HEADER_SIZE
        || expectedEnd != info.size() - PackFormat.FOOTER_SIZE) {
      throw corrupted(
          "pack " + name,
          "trailer does not fit the file",
          "size=" + info.size(),
          "size=" + (expectedEnd + PackFormat.FOOTER_SIZE));
    }
    byte[] trailer = store.load(name, trailerOffset, count * PackFormat.ENTRY_SIZE);
    return parseTrailer(name, trailer, 0, count, trailerCrc, trailerOffset);
  }

  /** Checks every byte of a whole pack file and returns its entries. */
  public static List<PackEntry> parse(BlobName name, byte[] pack) {
    if (pack.length < PackFormat.HEADER_SIZE + PackFormat.FOOTER_SIZE) {
      throw corrupted(
          "pack " + name, "too short", pack.length + " bytes", "at least header and footer");
    }
    ByteBuffer b = ByteBuffer.wrap(pack);
    int footer = pack.length - PackFormat.FOOTER_SIZE;
    checkFooterMagic(name, b.getInt(pack.length - 4));
    int fileCrc = crc32c(pack, 0, pack.length - 8);
    if (fileCrc != b.getInt(pack.length - 8)) {
      throw corrupted(
          "pack " + name, "file checksum mismatch", hex(fileCrc), hex(b.getInt(pack.length - 8)));
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
        parseTrailer(name, pack, (int) trailerOffset, count, b.getInt(footer + 12), trailerOffset);
    for (PackEntry e : entries) {
      checkRecord(name, e, pack, (int) e.offset());
    }
    return entries;
  }

  /** Checks the CRC of one record read from {@code pack} at {@code off} against its entry. */
  public static void checkRecord(BlobName pack, PackEntry e, byte[] data, int off) {
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
      BlobName name, byte[] bytes, int off, int count, int expectedCrc, long trailerOffset) {
    int crc = crc32c(bytes, off, count * PackFormat.ENTRY_SIZE);
    if (crc != expectedCrc) {
      throw corrupted("pack " + name, "trailer checksum mismatch", hex(crc), hex(expectedCrc));
    }
    ByteBuffer b = ByteBuffer.wrap(bytes, off, count * PackFormat.ENTRY_SIZE);
    List<PackEntry> entries = new ArrayList<>(count);
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
      entries.add(e);
    }
    return entries;
  }
}
