package io.granule.engine.internal.repo.crypto;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.concurrent.Semaphore;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The scrypt password-based key derivation function of RFC 7914: libcrypto's where available
 * ({@link NativeCrypto}), else in plain Java (the JDK has none, and the libraries that do are not
 * OSGi-friendly single jars). Both are checked against the RFC's test vectors in {@code
 * ScryptTest}. Stateless and thread-safe; memory use is {@code 128 * r * n} bytes.
 */
public final class Scrypt {
  /**
   * How much scrypt memory (MiB) derivations running at once may hold: a key derived ahead and one
   * derived by the unlock may overlap, and two of the largest a key blob may ask for ({@link
   * KdfParams#MAX_MEMORY}) at once would not fit the 320 MiB heap of {@code bin/granule}. A
   * derivation waits until its memory is free.
   */
  static final int MEMORY_MIB = 160;

  private static final Semaphore MEMORY = new Semaphore(MEMORY_MIB, true);

  private Scrypt() {}

  /** A password's UTF-8 bytes, as scrypt takes them; the caller zeroes them after use. */
  static byte[] passwordBytes(char[] password) {
    ByteBuffer enc = StandardCharsets.UTF_8.encode(CharBuffer.wrap(password));
    byte[] pw = new byte[enc.remaining()];
    enc.get(pw);
    Arrays.fill(enc.array(), (byte) 0);
    return pw;
  }

  /**
   * Derives {@code dkLen} bytes from {@code password} and {@code salt}.
   *
   * @param n CPU/memory cost, a power of two greater than 1
   * @param r block size
   * @param p parallelization
   * @throws IllegalArgumentException if the parameters are out of range
   */
  public static byte[] derive(byte[] password, byte[] salt, int n, int r, int p, int dkLen) {
    if (n < 2 || Integer.bitCount(n) != 1) {
      throw new IllegalArgumentException("scrypt n must be a power of two above 1, not " + n);
    }
    if (r < 1 || p < 1 || (long) r * p >= 1 << 30 || (long) 32 * r * n > Integer.MAX_VALUE - 64) {
      throw new IllegalArgumentException(
          "scrypt parameters out of range: n=" + n + " r=" + r + " p=" + p);
    }
    int mib = (int) Math.min(MEMORY_MIB, Math.max(1, (128L * r * n + (1 << 20) - 1) >> 20));
    MEMORY.acquireUninterruptibly(mib);
    try {
      if (NativeCrypto.available()) {
        byte[] out = new byte[dkLen];
        if (NativeCrypto.scrypt(password, salt, n, r, p, out) == 0) {
          return out;
        }
        // libcrypto refused (its own limits): the Java implementation below decides
      }
      return deriveInJava(password, salt, n, r, p, dkLen);
    } finally {
      MEMORY.release(mib);
    }
  }

  /** {@link #derive} in plain Java. */
  static byte[] deriveInJava(byte[] password, byte[] salt, int n, int r, int p, int dkLen) {
    byte[] b = pbkdf2HmacSha256(password, salt, p * 128 * r);
    int words = 32 * r;
    int[] x = new int[words];
    int[] y = new int[words];
    int[] v = new int[words * n];
    for (int i = 0; i < p; i++) {
      int base = i * 128 * r;
      for (int k = 0; k < words; k++) {
        x[k] = le32(b, base + 4 * k);
      }
      for (int j = 0; j < n; j++) {
        System.arraycopy(x, 0, v, j * words, words);
        blockMix(x, y, r);
      }
      for (int j = 0; j < n; j++) {
        int k = x[(2 * r - 1) * 16] & (n - 1);
        int off = k * words;
        for (int m = 0; m < words; m++) {
          x[m] ^= v[off + m];
        }
        blockMix(x, y, r);
      }
      for (int k = 0; k < words; k++) {
        putLe32(b, base + 4 * k, x[k]);
      }
    }
    return pbkdf2HmacSha256(password, b, dkLen);
  }

  /** PBKDF2-HMAC-SHA-256 with one iteration, as scrypt uses it. */
  static byte[] pbkdf2HmacSha256(byte[] password, byte[] salt, int dkLen) {
    Mac mac;
    try {
      mac = Mac.getInstance("HmacSHA256");
      // HMAC pads keys with zeros, so an empty key is the same as one zero byte (which the JDK
      // accepts where it refuses an empty key).
      mac.init(new SecretKeySpec(password.length == 0 ? new byte[1] : password, "HmacSHA256"));
    } catch (NoSuchAlgorithmException | InvalidKeyException e) {
      throw new IllegalStateException("hmac-sha-256 is missing from this java runtime", e);
    }
    byte[] out = new byte[dkLen];
    byte[] counter = new byte[4];
    for (int block = 1, pos = 0; pos < dkLen; block++, pos += 32) {
      counter[0] = (byte) (block >>> 24);
      counter[1] = (byte) (block >>> 16);
      counter[2] = (byte) (block >>> 8);
      counter[3] = (byte) block;
      mac.update(salt);
      mac.update(counter);
      byte[] u = mac.doFinal();
      System.arraycopy(u, 0, out, pos, Math.min(32, dkLen - pos));
    }
    return out;
  }

  /** scryptBlockMix: {@code b} becomes its mix; {@code y} is scratch space of the same size. */
  private static void blockMix(int[] b, int[] y, int r) {
    int[] x = new int[16];
    System.arraycopy(b, (2 * r - 1) * 16, x, 0, 16);
    for (int i = 0; i < 2 * r; i++) {
      for (int k = 0; k < 16; k++) {
        x[k] ^= b[i * 16 + k];
      }
      salsa208(x);
      // even blocks go to the first half, odd ones to the second
      int dest = (i % 2 == 0 ? i / 2 : r + i / 2) * 16;
      System.arraycopy(x, 0, y, dest, 16);
    }
    System.arraycopy(y, 0, b, 0, 32 * r);
  }

  private static void salsa208(int[] b) {
    int x0 = b[0], x1 = b[1], x2 = b[2], x3 = b[3], x4 = b[4], x5 = b[5], x6 = b[6], x7 = b[7];
    int x8 = b[8], x9 = b[9], x10 = b[10], x11 = b[11], x12 = b[12], x13 = b[13], x14 = b[14];
    int x15 = b[15];
    for (int i = 0; i < 8; i += 2) {
      x4 ^= Integer.rotateLeft(x0 + x12, 7);
      x8 ^= Integer.rotateLeft(x4 + x0, 9);
      x12 ^= Integer.rotateLeft(x8 + x4, 13);
      x0 ^= Integer.rotateLeft(x12 + x8, 18);
      x9 ^= Integer.rotateLeft(x5 + x1, 7);
      x13 ^= Integer.rotateLeft(x9 + x5, 9);
      x1 ^= Integer.rotateLeft(x13 + x9, 13);
      x5 ^= Integer.rotateLeft(x1 + x13, 18);
      x14 ^= Integer.rotateLeft(x10 + x6, 7);
      x2 ^= Integer.rotateLeft(x14 + x10, 9);
      x6 ^= Integer.rotateLeft(x2 + x14, 13);
      x10 ^= Integer.rotateLeft(x6 + x2, 18);
      x3 ^= Integer.rotateLeft(x15 + x11, 7);
      x7 ^= Integer.rotateLeft(x3 + x15, 9);
      x11 ^= Integer.rotateLeft(x7 + x3, 13);
      x15 ^= Integer.rotateLeft(x11 + x7, 18);
      x1 ^= Integer.rotateLeft(x0 + x3, 7);
      x2 ^= Integer.rotateLeft(x1 + x0, 9);
      x3 ^= Integer.rotateLeft(x2 + x1, 13);
      x0 ^= Integer.rotateLeft(x3 + x2, 18);
      x6 ^= Integer.rotateLeft(x5 + x4, 7);
      x7 ^= Integer.rotateLeft(x6 + x5, 9);
      x4 ^= Integer.rotateLeft(x7 + x6, 13);
      x5 ^= Integer.rotateLeft(x4 + x7, 18);
      x11 ^= Integer.rotateLeft(x10 + x9, 7);
      x8 ^= Integer.rotateLeft(x11 + x10, 9);
      x9 ^= Integer.rotateLeft(x8 + x11, 13);
      x10 ^= Integer.rotateLeft(x9 + x8, 18);
      x12 ^= Integer.rotateLeft(x15 + x14, 7);
      x13 ^= Integer.rotateLeft(x12 + x15, 9);
      x14 ^= Integer.rotateLeft(x13 + x12, 13);
      x15 ^= Integer.rotateLeft(x14 + x13, 18);
    }
    b[0] += x0;
    b[1] += x1;
    b[2] += x2;
    b[3] += x3;
    b[4] += x4;
    b[5] += x5;
    b[6] += x6;
    b[7] += x7;
    b[8] += x8;
    b[9] += x9;
    b[10] += x10;
    b[11] += x11;
    b[12] += x12;
    b[13] += x13;
    b[14] += x14;
    b[15] += x15;
  }

  private static int le32(byte[] b, int off) {
    return (b[off] & 0xff)
        | (b[off + 1] & 0xff) << 8
        | (b[off + 2] & 0xff) << 16
        | (b[off + 3] & 0xff) << 24;
  }

  private static void putLe32(byte[] b, int off, int v) {
    b[off] = (byte) v;
    b[off + 1] = (byte) (v >>> 8);
    b[off + 2] = (byte) (v >>> 16);
    b[off + 3] = (byte) (v >>> 24);
  }
}
