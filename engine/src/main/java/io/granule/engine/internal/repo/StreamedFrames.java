package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.util.zip.CRC32C;

/**
 * Saves and loads {@link BlobFrames} blobs whose payload grows with a disk or a stream (fixed and
 * dynamic indexes) without holding them whole: a small one through arrays; a large one a step
 * ({@link #STEP}) at a time, framed, checksummed and encoded in order ({@link BlobCodec.Pieces})
 * into a temporary file that the store copies ({@link BlobStore#save(BlobName, FileChannel,
 * long)}), and loaded back by range loads decoded piece by piece, the frame checked as it streams.
 * The bytes stored are the same either way. Stateless and thread-safe.
 */
public final class StreamedFrames {
  /** Payloads up to this many bytes go through arrays. */
  public static final int SMALL = 8 << 20;

  /** Plain bytes encoded or decoded at a time. */
  static final int STEP = 1 << 20;

  private StreamedFrames() {}

  /** A payload produced in order. */
  public interface Source {
    /** Puts the next payload bytes into {@code dst} until it is full or the payload ends. */
    void fill(ByteBuffer dst);
  }

  /** A payload consumed in order. */
  public interface Sink {
    /** Takes the next payload bytes, all that remain in {@code part}. */
    void accept(ByteBuffer part);
  }

  /** A sink that makes a {@code T} of the whole payload. */
  public interface Parser<T> extends Sink {
    /**
     * What the payload made, once it was all fed and the frame checked.
     *
     * @throws RepositoryCorruptedException if the payload is incomplete or inconsistent
     */
    T finish();

    /** Frees what the parser holds (temporary files) after a failure. */
    void abandon();
  }

  /** Parses the frame in {@code bytes} with {@code parser} (see {@link #read}). */
  public static <T> T parse(
      BlobName name, byte[] bytes, int magic, int maxVersion, Parser<T> parser) {
    try {
      read(name, bytes, magic, maxVersion, parser);
      return parser.finish();
    } catch (RuntimeException | Error e) {
      parser.abandon();
      throw e;
    }
  }

  /**
   * Loads blob {@code name} and parses its frame with a parser from {@code parsers} (see {@link
   * #load}); if it is damaged and was a cached copy, with a new parser from the repository's copy
   * ({@link MetadataBlobs#retryUncached}).
   */
  public static <T> T parse(
      BlobStore store,
      BlobCodec codec,
      BlobName name,
      int magic,
      int maxVersion,
      java.util.function.Supplier<Parser<T>> parsers)
      throws IOException {
    return MetadataBlobs.retryUncached(
        store,
        name,
        () -> {
          Parser<T> parser = parsers.get();
          try {
            load(store, codec, name, magic, maxVersion, parser);
            return parser.finish();
          } catch (IOException | RuntimeException | Error e) {
            parser.abandon();
            throw e;
          }
        });
  }

  /**
   * Saves a frame of {@code magic} and {@code version} around {@code payloadLength} bytes from
   * {@code payload} as blob {@code name}, encoded by {@code codec}.
   */
  public static void save(
      BlobStore store,
      BlobCodec codec,
      BlobName name,
      int magic,
      int version,
      long payloadLength,
      Source payload)
      throws IOException {
    save(store, codec, name, magic, version, payloadLength, payload, SMALL);
  }

  /** As above, streaming payloads over {@code small} bytes (tests use small ones). */
  static void save(
      BlobStore store,
      BlobCodec codec,
      BlobName name,
      int magic,
      int version,
      long payloadLength,
      Source payload,
      int small)
      throws IOException {
    long plainLength = payloadLength + BlobFrames.OVERHEAD;
    BlobCodec.Pieces pieces = payloadLength > small ? codec.encoder(name, plainLength) : null;
    long storedLength = codec.encodedLength(plainLength);
    if (pieces == null || storedLength < 0) {
      store.save(name, codec.encode(name, frame(magic, version, payloadLength, payload)));
      return;
    }
    Framer plain = new Framer(magic, version, payloadLength, payload);
    try (FileChannel out = PagedFile.temporary(storedLength, name.toString())) {
      int step = Math.max(1, STEP / pieces.unit()) * pieces.unit();
      ByteBuffer in = ByteBuffer.allocate(step);
      ByteBuffer encoded = ByteBuffer.allocate(pieces.room(step));
      long pos = 0;
      for (long done = 0; done < plainLength; ) {
        in.clear().limit((int) Math.min(step, plainLength - done));
        plain.fill(in);
        in.flip();
        done += in.remaining();
        encoded.clear();
        pieces.next(in, encoded, done == plainLength);
        encoded.flip();
        try {
          while (encoded.hasRemaining()) {
            pos += out.write(encoded, pos);
          }
        } catch (IOException e) {
          throw PagedFile.noRoom(name.toString(), storedLength, e);
        }
      }
      if (pos != storedLength) {
        throw new IllegalStateException(
            name + ": encoded to " + pos + " bytes, not " + storedLength);
      }
      store.save(name, out, storedLength);
    }
  }

  /**
   * A frame of {@code magic} and {@code version} around {@code payloadLength} bytes, in an array.
   */
  public static byte[] frame(int magic, int version, long payloadLength, Source payload) {
    if (payloadLength > Integer.MAX_VALUE - 64) {
      throw new IllegalArgumentException("a payload of " + payloadLength + " bytes is no array");
    }
    ByteBuffer b = ByteBuffer.allocate((int) payloadLength);
    payload.fill(b);
    return BlobFrames.frame(magic, version, b.array());
  }

  /**
   * Checks the frame in {@code bytes} (as {@link BlobFrames#unframe(BlobName, byte[], int, int)})
   * and feeds its payload to {@code payload}; returns its version.
   */
  private static int read(BlobName name, byte[] bytes, int magic, int maxVersion, Sink payload) {
    BlobFrames.Framed f = BlobFrames.unframe(name, bytes, magic, maxVersion);
    payload.accept(f.payload());
    return f.version();
  }

  /** The frame around a payload: header, payload, checksum, produced in order. */
  private static final class Framer {
    private final ByteBuffer header = ByteBuffer.allocate(8);
    private final long payloadEnd;
    private final Source payload;
    private final CRC32C crc = new CRC32C();
    private long at;

    Framer(int magic, int version, long payloadLength, Source payload) {
      header.putInt(magic).putShort((short) version).putShort((short) 0).flip();
      this.payloadEnd = 8 + payloadLength;
      this.payload = payload;
    }

    void fill(ByteBuffer dst) {
      while (dst.hasRemaining() && at < payloadEnd + 4) {
        int start = dst.position();
        if (at < 8) {
          ByteBuffer h = header.duplicate().position((int) at);
          h.limit((int) Math.min(8, at + dst.remaining()));
          dst.put(h);
        } else if (at < payloadEnd) {
          int n = (int) Math.min(dst.remaining(), payloadEnd - at);
          ByteBuffer part = dst.duplicate().limit(dst.position() + n);
          payload.fill(part);
          if (part.hasRemaining()) {
            throw new IllegalStateException("payload ended " + part.remaining() + " bytes early");
          }
          dst.position(dst.position() + n);
        } else {
          ByteBuffer sum = ByteBuffer.allocate(4).putInt(0, (int) crc.getValue());
          sum.position((int) (at - payloadEnd));
          sum.limit(sum.position() + Math.min(sum.remaining(), dst.remaining()));
          int n = sum.remaining();
          dst.put(sum);
          at += n;
          continue;
        }
        crc.update(dst.duplicate().flip().position(start));
        at += dst.position() - start;
      }
    }
  }

  /**
   * Loads blob {@code name}, checks its frame ({@code magic}, a version up to {@code maxVersion},
   * checksum) and feeds its payload to {@code payload} in order; returns the frame's version. A
   * large blob streams: the payload is fed before its checksum is checked, so on an exception the
   * sink's state must be dropped.
   *
   * @throws NoSuchFileException if there is no such blob
   * @throws RepositoryCorruptedException if the frame is damaged
   * @throws UnsupportedRepositoryVersionException if its version is newer than {@code maxVersion}
   * @throws IllegalArgumentException if the codec refuses it (damaged, or another key)
   */
  public static int load(
      BlobStore store, BlobCodec codec, BlobName name, int magic, int maxVersion, Sink payload)
      throws IOException {
    return load(store, codec, name, magic, maxVersion, payload, SMALL);
  }

  /** As above, streaming blobs over {@code small} bytes (tests use small ones). */
  static int load(
      BlobStore store,
      BlobCodec codec,
      BlobName name,
      int magic,
      int maxVersion,
      Sink payload,
      int small)
      throws IOException {
    long size =
        store
            .stat(name)
            .map(BlobInfo::size)
            .orElseThrow(() -> new NoSuchFileException(name.toString()));
    BlobCodec.Pieces pieces = size > small ? codec.decoder(name, size) : null;
    if (pieces == null) {
      return read(name, codec.decode(name, store.load(name)), magic, maxVersion, payload);
    }
    Unframer unframer = new Unframer(name, magic, maxVersion, payload);
    int step = Math.max(1, STEP / pieces.unit()) * pieces.unit();
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
      unframer.accept(plain.flip());
    }
    return unframer.finish();
  }

  /** Checks a frame fed in order and passes its payload on, holding back the last 4 bytes. */
  private static final class Unframer {
    private final BlobName name;
    private final int magic;
    private final int maxVersion;
    private final Sink payload;
    private final ByteBuffer header = ByteBuffer.allocate(8);
    private final ByteBuffer tail = ByteBuffer.allocate(4); // the last bytes seen: the checksum
    private final CRC32C crc = new CRC32C();
    private int version;
    private long length;
    private RepositoryException headerError;

    Unframer(BlobName name, int magic, int maxVersion, Sink payload) {
      this.name = name;
      this.magic = magic;
      this.maxVersion = maxVersion;
      this.payload = payload;
    }

    void accept(ByteBuffer b) {
      length += b.remaining();
      if (header.hasRemaining()) {
        int n = Math.min(header.remaining(), b.remaining());
        ByteBuffer part = b.duplicate().limit(b.position() + n);
        crc.update(part.duplicate());
        header.put(part);
        b.position(b.position() + n);
        if (header.hasRemaining()) {
          return;
        }
        try {
          version = BlobFrames.header(name, header.flip(), magic, maxVersion);
        } catch (RepositoryException e) {
          // Reported once the checksum is known, as for a whole frame: damage in the header is
          // "checksum mismatch", never "upgrade granule"; the payload is not parsed meanwhile.
          headerError = e;
          version = -1;
        }
      }
      // What was held back, and all of b but its last 4 bytes, is payload.
      int release = tail.position() + b.remaining() - 4;
      if (release > 0) {
        int fromTail = Math.min(release, tail.position());
        if (fromTail > 0) {
          ByteBuffer t = tail.duplicate().flip().limit(fromTail);
          crc.update(t.duplicate());
          if (headerError == null) {
            payload.accept(t);
          }
          tail.flip().position(fromTail);
          tail.compact();
        }
        int fromB = release - fromTail;
        if (fromB > 0) {
          ByteBuffer part = b.duplicate().limit(b.position() + fromB);
          crc.update(part.duplicate());
          if (headerError == null) {
            payload.accept(part);
          }
          b.position(b.position() + fromB);
        }
      }
      tail.put(b);
    }

    int finish() {
      if (version == 0 || tail.hasRemaining()) {
        throw BlobFrames.corrupted(
            name, "too short", length + " bytes", "at least " + BlobFrames.OVERHEAD);
      }
      int expected = tail.flip().getInt();
      int actual = (int) crc.getValue();
      if (actual != expected) {
        throw BlobFrames.corrupted(
            name, "checksum mismatch", BlobFrames.hex(actual), BlobFrames.hex(expected));
      }
      if (headerError != null) {
        throw headerError;
      }
      return version;
    }
  }
}
