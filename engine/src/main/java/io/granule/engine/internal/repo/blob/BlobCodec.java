package io.granule.engine.internal.repo.blob;

/**
 * A reversible transform applied to what the repository stores: to each chunk record of a pack
 * (after compression) and to the whole content of index, fixed-index and snapshot blobs (the config
 * blob is never transformed: it says how to read the rest). The default is {@link #IDENTITY};
 * encryption (authenticated, with its own nonce inside the output) plugs in here without any change
 * to the pack, index or snapshot formats, which only ever see the encoded bytes as opaque records.
 *
 * <p>Implementations are thread-safe. {@link #decode} throws {@link IllegalArgumentException} when
 * its input is not something {@link #encode} produced (e.g. authentication fails).
 */
public interface BlobCodec {

  /** The codec that stores bytes as they are. */
  BlobCodec IDENTITY =
      new BlobCodec() {
        @Override
        public byte[] encode(BlobName name, byte[] plain) {
          return plain;
        }

        @Override
        public byte[] decode(BlobName name, byte[] stored) {
          return stored;
        }

        @Override
        public boolean transforms() {
          return false;
        }

        @Override
        public int encodedLength(int plainLength) {
          return plainLength;
        }

        @Override
        public int encode(BlobName name, java.nio.ByteBuffer src, java.nio.ByteBuffer dst) {
          int n = src.remaining();
          dst.put(src);
          return n;
        }

        @Override
        public int decodedLength(int storedLength) {
          return storedLength;
        }

        @Override
        public int decode(BlobName name, java.nio.ByteBuffer src, java.nio.ByteBuffer dst) {
          return encode(name, src, dst); // both copy
        }

        @Override
        public Pieces encoder(BlobName name, long plainLength) {
          return COPY;
        }

        @Override
        public Pieces decoder(BlobName name, long storedLength) {
          return COPY;
        }

        @Override
        public long encodedLength(long plainLength) {
          return plainLength;
        }
      };

  /** Pieces copied as they are. */
  Pieces COPY =
      new Pieces() {
        @Override
        public int unit() {
          return 1;
        }

        @Override
        public int prefix() {
          return 0;
        }

        @Override
        public int room(int inputLength) {
          return inputLength;
        }

        @Override
        public int next(java.nio.ByteBuffer src, java.nio.ByteBuffer dst, boolean last) {
          int n = src.remaining();
          dst.put(src);
          return n;
        }
      };

  /** Transforms {@code plain}, a record of blob {@code name}, into what is stored. */
  byte[] encode(BlobName name, byte[] plain);

  /** Inverts {@link #encode}. */
  byte[] decode(BlobName name, byte[] stored);

  /**
   * The plaintext length of a stored record of {@code storedLength} bytes, for {@link
   * #decode(BlobName, java.nio.ByteBuffer, java.nio.ByteBuffer)}; -1 if the codec cannot tell
   * before decoding (the default): then readers decode arrays.
   *
   * @throws IllegalArgumentException if no output of {@link #encode} has that length
   */
  default int decodedLength(int storedLength) {
    return -1;
  }

  /**
   * As {@link #decode(BlobName, byte[])}, of the bytes remaining in {@code src} (consumed) into
   * {@code dst} at its position (advanced), which has {@link #decodedLength} bytes remaining;
   * buffers heap or direct. Returns the plaintext length. On an exception the bytes put into {@code
   * dst} must not be used. Default: through {@link #decode(BlobName, byte[])}.
   */
  default int decode(BlobName name, java.nio.ByteBuffer src, java.nio.ByteBuffer dst) {
    return throughArrays(src, dst, in -> decode(name, in));
  }

  /**
   * Whether the stored bytes differ from the plaintext. When false, writers may produce the stored
   * bytes in place (e.g. compress straight into a pack) instead of calling {@link #encode}.
   */
  default boolean transforms() {
    return true;
  }

  /**
   * The most bytes {@link #encode} makes of {@code plainLength} bytes: the room to reserve for
   * {@link #encode(BlobName, java.nio.ByteBuffer, java.nio.ByteBuffer)}; -1 if unknown.
   */
  default int encodedLength(int plainLength) {
    return -1;
  }

  /**
   * Encodes the bytes remaining in {@code src} into {@code dst} at its position, which has room for
   * {@link #encodedLength} of them; advances both buffers and returns how many bytes it wrote. The
   * same bytes as {@link #encode(BlobName, byte[])}, without the copies (buffers may be heap or
   * direct); codecs that know their output size override it.
   */
  default int encode(BlobName name, java.nio.ByteBuffer src, java.nio.ByteBuffer dst) {
    return throughArrays(src, dst, in -> encode(name, in));
  }

  /**
   * A record too large to hold in memory, encoded or decoded piece by piece in order (a large
   * disk's fixed index): the same bytes as the whole-record methods.
   */
  interface Pieces {
    /**
     * Bytes of input that make one unit: every piece but the last is a whole number of units, the
     * first one preceded by {@link #prefix} bytes of input (a decoder's nonce).
     */
    int unit();

    /** Bytes of input before the first unit (0 when encoding). */
    int prefix();

    /** The most output bytes {@code inputLength} bytes of input make. */
    int room(int inputLength);

    /**
     * Transforms the next piece, the bytes remaining in {@code src} (consumed), into {@code dst}
     * (advanced); {@code last} on the final piece. Returns the bytes put.
     *
     * @throws IllegalArgumentException as {@link BlobCodec#decode} does, or if the piece is not a
     *     whole number of units and not the last
     */
    int next(java.nio.ByteBuffer src, java.nio.ByteBuffer dst, boolean last);
  }

  /**
   * An encoder of a record of blob {@code name} of {@code plainLength} bytes, in pieces; null if
   * the codec only encodes whole records (the default): then large records go through arrays.
   */
  default Pieces encoder(BlobName name, long plainLength) {
    return null;
  }

  /**
   * A decoder of a stored record of blob {@code name} of {@code storedLength} bytes, in pieces;
   * null if the codec only decodes whole records (the default).
   *
   * @throws IllegalArgumentException if no output of {@link #encode} has that length
   */
  default Pieces decoder(BlobName name, long storedLength) {
    return null;
  }

  /** The length of what {@link #encoder} makes of {@code plainLength} bytes, or -1. */
  default long encodedLength(long plainLength) {
    return -1;
  }

  /** {@code transform} of the bytes remaining in {@code src} (consumed), put into {@code dst}. */
  private static int throughArrays(
      java.nio.ByteBuffer src,
      java.nio.ByteBuffer dst,
      java.util.function.UnaryOperator<byte[]> transform) {
    byte[] in = new byte[src.remaining()];
    src.get(in);
    byte[] out = transform.apply(in);
    dst.put(out);
    return out.length;
  }
}
