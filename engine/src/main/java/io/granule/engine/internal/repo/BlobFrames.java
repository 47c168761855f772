package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.blob.BlobName;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * The envelope of every repository file except packs (which have their own layout so that one chunk
 * can be read without the rest): an 8-byte header (4-byte magic, u16 format version, u16 reserved
 * zero), the payload, and the CRC32C of everything before it (u32). All integers are big-endian.
 * Stateless and thread-safe.
 */
public final class BlobFrames {
  /** Bytes of header plus checksum around a payload. */
  public static final int OVERHEAD = 12;

  private BlobFrames() {}

  /** A payload read from a frame, with the format version it was written in. */
  public record Framed(int version, ByteBuffer payload) {}

  /** Wraps {@code payload} in a frame with {@code magic} and {@code version}. */
  public static byte[] frame(int magic, int version, byte[] payload) {
    ByteBuffer b = ByteBuffer.allocate(payload.length + OVERHEAD);
    b.putInt(magic).putShort((short) version).putShort((short) 0).put(payload);
    b.putInt(crc32c(b.array(), 0, b.position()));
    return b.array();
  }

  /**
   * Checks and opens a frame read from {@code name}.
   *
   * @throws RepositoryCorruptedException if the length, checksum or magic is wrong
   * @throws UnsupportedRepositoryVersionException if the version is newer than {@code maxVersion}
   */
  public static Framed unframe(BlobName name, byte[] bytes, int magic, int maxVersion) {
    return unframe(name, ByteBuffer.wrap(bytes), magic, maxVersion);
  }

  /**
   * As {@link #unframe(BlobName, byte[], int, int)}, of the bytes from 0 to the limit of {@code
   * frame} (heap, direct or mapped); the payload is a slice of it.
   */
  public static Framed unframe(BlobName name, ByteBuffer frame, int magic, int maxVersion) {
    int length = frame.limit();
    if (length < OVERHEAD) {
      throw corrupted(name, "too short", length + " bytes", "at least " + OVERHEAD);
    }
    ByteBuffer b = frame.duplicate().position(0);
    int expectedCrc = b.getInt(length - 4);
    int actualCrc = crc32c(b, 0, length - 4);
    if (actualCrc != expectedCrc) {
      throw corrupted(name, "checksum mismatch", hex(actualCrc), hex(expectedCrc));
    }
    return new Framed(header(name, b, magic, maxVersion), b.slice(8, length - OVERHEAD));
  }

  /**
   * Reads and checks the 8-byte header at the position of {@code b} (advanced past it); returns the
   * version.
   *
   * @throws RepositoryCorruptedException if the magic is wrong
   * @throws UnsupportedRepositoryVersionException if the version is newer than {@code maxVersion}
   */
  static int header(BlobName name, ByteBuffer b, int magic, int maxVersion) {
    int actualMagic = b.getInt();
    if (actualMagic != magic) {
      throw corrupted(name, "wrong magic", hex(actualMagic), hex(magic));
    }
    int version = Short.toUnsignedInt(b.getShort());
    b.getShort();
    if (version > maxVersion || version == 0) {
      throw new UnsupportedRepositoryVersionException(
          "file "
              + name
              + " has format version "
              + version
              + " (supported: 1 to "
              + maxVersion
              + "): upgrade granule to read it");
    }
    return version;
  }

  /** CRC32C of a byte range. */
  public static int crc32c(byte[] bytes, int off, int len) {
    CRC32C c = new CRC32C();
    c.update(bytes, off, len);
    return (int) c.getValue();
  }

  /** CRC32C of the {@code len} bytes at index {@code off} of {@code b} (its position untouched). */
  public static int crc32c(java.nio.ByteBuffer b, int off, int len) {
    CRC32C c = new CRC32C();
    c.update(b.duplicate().limit(off + len).position(off));
    return (int) c.getValue();
  }

  // ZERO_BYTES[k]: the operator (a 32x32 matrix over GF(2), one int per column) that feeding 2^k
  // zero bytes applies to a CRC32C register.
  private static final int[][] ZERO_BYTES = zeroByteOperators();

  private static int[][] zeroByteOperators() {
    int[] bit = new int[32]; // one zero bit: shift right, xor the reflected polynomial if bit 0 set
    bit[0] = 0x82f63b78;
    for (int n = 1; n < 32; n++) {
      bit[n] = 1 << (n - 1);
    }
    int[] op = bit;
    for (int i = 0; i < 3; i++) {
      op = gf2MatrixSquare(op); // 2, 4, 8 zero bits
    }
    int[][] ops = new int[64][];
    for (int k = 0; k < 64; k++) {
      ops[k] = op;
      op = gf2MatrixSquare(op);
    }
    return ops;
  }

  /**
   * The CRC32C of the concatenation {@code A || B}, from {@code crcA} = CRC32C(A), {@code crcB} =
   * CRC32C(B) and {@code lengthB}, without reading the bytes again (zlib's crc32_combine, for the
   * Castagnoli polynomial): at most one 32x32 GF(2) matrix-vector product per bit of {@code
   * lengthB}.
   */
  public static int crc32cCombine(int crcA, int crcB, long lengthB) {
    int a = crcA;
    long len = lengthB;
    for (int k = 0; len > 0; k++, len >>>= 1) {
      if ((len & 1) != 0) {
        a = gf2MatrixTimes(ZERO_BYTES[k], a);
      }
    }
    return a ^ crcB;
  }

  private static int gf2MatrixTimes(int[] mat, int vec) {
    int sum = 0;
    for (int i = 0; vec != 0; i++, vec >>>= 1) {
      if ((vec & 1) != 0) {
        sum ^= mat[i];
      }
    }
    return sum;
  }

  private static int[] gf2MatrixSquare(int[] mat) {
    int[] square = new int[32];
    for (int n = 0; n < 32; n++) {
      square[n] = gf2MatrixTimes(mat, mat[n]);
    }
    return square;
  }

  /** Eight hex digits of an int. */
  public static String hex(int v) {
    return String.format(java.util.Locale.ROOT, "%08x", v);
  }

  /** A corruption error in the house format. */
  public static RepositoryCorruptedException corrupted(
      Object file, String what, Object actual, Object expected) {
    return new RepositoryCorruptedException(
        file
            + ": "
            + what
            + ": actual="
            + actual
            + " expected="
            + expected
            + " (run 'granule verify' to list the damage)");
  }
}
