package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.UnsupportedRepositoryVersionException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.util.zip.CRC32C;

/** Parses fixed index blobs written by {@link FixedIndexWriter}. Stateless and thread-safe. */
public final class FixedIndexReader {
  private FixedIndexReader() {}

  /**
   * The fixed index in blob {@code name}.
   *
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   */
  public static FixedIndex read(BlobName name, byte[] bytes) {
    ByteBuffer b =
        BlobFrames.unframe(name, bytes, FixedIndexWriter.MAGIC, FixedIndexWriter.VERSION).payload();
    int chunkSize = b.getInt();
    long diskSize = b.getLong();
    long count = b.getLong();
    checkHeader(name, chunkSize, diskSize, count, b.remaining());
    FixedIndex index = new FixedIndex(chunkSize, diskSize);
    index.writeIds(0, b);
    return index;
  }

  private static void checkHeader(
      BlobName name, int chunkSize, long diskSize, long count, long idBytes) {
    if (chunkSize <= 0
        || diskSize < 0
        || count != FixedIndex.count(chunkSize, diskSize)
        || count > FixedIndex.MAX_POSITIONS
        || idBytes != count * ChunkId.BYTES) {
      throw BlobFrames.corrupted(
          "fixed index " + name,
          "inconsistent header",
          "chunkSize=" + chunkSize + " diskSize=" + diskSize + " count=" + count,
          "count=ceil(diskSize/chunkSize) and " + count * ChunkId.BYTES + " bytes of ids");
    }
  }

  /**
   * Loads and parses fixed index blob {@code name} from {@code store}: a small one through arrays,
   * a large one (a large disk's) streamed a step at a time (range loads, decoded piece by piece)
   * into an index whose ids live in a temporary file, so that neither the heap nor the process's
   * memory holds it whole.
   *
   * @throws NoSuchFileException if there is no such blob
   * @throws io.granule.engine.internal.repo.RepositoryCorruptedException if it is damaged
   * @throws IllegalArgumentException if the codec refuses it (damaged, or another key)
   */
  public static FixedIndex load(BlobStore store, BlobCodec codec, BlobName name)
      throws IOException {
    long size =
        store
            .stat(name)
            .map(BlobInfo::size)
            .orElseThrow(() -> new NoSuchFileException(name.toString()));
    BlobCodec.Pieces pieces = size > FixedIndex.HEAP_MAX ? codec.decoder(name, size) : null;
    if (pieces == null) {
      return read(name, codec.decode(name, store.load(name)));
    }
    Parser parser = new Parser(name);
    try {
      int step = Math.max(1, FixedIndexWriter.STEP / pieces.unit()) * pieces.unit();
      ByteBuffer stored = ByteBuffer.allocate(pieces.prefix() + step);
      ByteBuffer plain = ByteBuffer.allocate(pieces.room(pieces.prefix() + step));
      for (long off = 0; off < size; ) {
        int n = (int) Math.min(size - off, (off == 0 ? pieces.prefix() : 0) + step);
        stored.clear().limit(n);
        store.load(name, off, stored);
        stored.flip();
        off += n;
        plain.clear();
        pieces.next(stored, plain, off == size);
        parser.accept(plain.flip());
      }
      return parser.finish();
    } catch (IOException | RuntimeException | Error e) {
      parser.abandon();
      throw e;
    }
  }

  /** Parses a fixed index frame fed in order, its ids written into the index as they come. */
  private static final class Parser {
    private final BlobName name;
    private final ByteBuffer header = ByteBuffer.allocate(FixedIndexWriter.HEADER);
    private final ByteBuffer sum = ByteBuffer.allocate(4);
    private final CRC32C crc = new CRC32C();
    private FixedIndex index;
    private long ids; // id bytes received
    private long idsLength;
    private long extra; // bytes past the checksum

    Parser(BlobName name) {
      this.name = name;
    }

    void accept(ByteBuffer b) {
      while (b.hasRemaining()) {
        if (header.hasRemaining()) {
          int n = Math.min(header.remaining(), b.remaining());
          ByteBuffer part = b.duplicate().limit(b.position() + n);
          crc.update(part.duplicate());
          header.put(part);
          b.position(b.position() + n);
          if (!header.hasRemaining()) {
            start();
          }
        } else if (ids < idsLength) {
          int n = (int) Math.min(idsLength - ids, b.remaining());
          ByteBuffer part = b.duplicate().limit(b.position() + n);
          crc.update(part.duplicate());
          index.writeIds(ids, part);
          b.position(b.position() + n);
          ids += n;
        } else if (sum.hasRemaining()) {
          int n = Math.min(sum.remaining(), b.remaining());
          sum.put(b.duplicate().limit(b.position() + n));
          b.position(b.position() + n);
        } else {
          extra += b.remaining();
          b.position(b.limit());
        }
      }
    }

    private void start() {
      header.flip();
      int magic = header.getInt();
      if (magic != FixedIndexWriter.MAGIC) {
        throw BlobFrames.corrupted(
            name, "wrong magic", BlobFrames.hex(magic), BlobFrames.hex(FixedIndexWriter.MAGIC));
      }
      int version = Short.toUnsignedInt(header.getShort());
      header.getShort();
      if (version > FixedIndexWriter.VERSION || version == 0) {
        throw new UnsupportedRepositoryVersionException(
            "file "
                + name
                + " has format version "
                + version
                + " (supported: 1 to "
                + FixedIndexWriter.VERSION
                + "): upgrade granule to read it");
      }
      int chunkSize = header.getInt();
      long diskSize = header.getLong();
      long count = header.getLong();
      checkHeader(name, chunkSize, diskSize, count, count * ChunkId.BYTES);
      idsLength = count * ChunkId.BYTES;
      index = new FixedIndex(chunkSize, diskSize);
    }

    FixedIndex finish() {
      if (header.hasRemaining() || ids < idsLength || sum.hasRemaining() || extra > 0) {
        long got = header.position() + ids + sum.position() + extra;
        throw BlobFrames.corrupted(
            name,
            "length does not match its header",
            got + " bytes",
            header.hasRemaining()
                ? "at least " + FixedIndexWriter.HEADER
                : FixedIndexWriter.HEADER + idsLength + 4);
      }
      int expected = sum.flip().getInt();
      int actual = (int) crc.getValue();
      if (actual != expected) {
        throw BlobFrames.corrupted(
            name, "checksum mismatch", BlobFrames.hex(actual), BlobFrames.hex(expected));
      }
      return index;
    }

    void abandon() {
      if (index != null) {
        index.close();
      }
    }
  }
}
