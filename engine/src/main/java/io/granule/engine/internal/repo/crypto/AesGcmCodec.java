package io.granule.engine.internal.repo.crypto;

import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * AES-256-GCM for every record the repository encrypts. A record is stored as {@code nonce (12
 * bytes, random)} followed by the plaintext cut into segments of {@value #SEGMENT} bytes (the last
 * one shorter, at least one segment even for an empty record), each encrypted as {@code ciphertext
 * || tag (16 bytes)}: 12 + 16 × segments bytes more than the plaintext.
 *
 * <p>Segment {@code i} uses the record nonce with its last four bytes XORed with {@code i}
 * (big-endian), and its additional authenticated data is {@code "granule-v1:" + name} followed by
 * {@code i} (4 bytes) and a last-segment flag (1 byte). So a record moved into another blob, a blob
 * renamed, segments reordered, dropped or a record cut short, all fail authentication. Random
 * 96-bit record nonces are safe for well under 2^32 records per key.
 *
 * <p>Why segments: Java's AES-GCM runs at 3 GB/s and more on messages of 64 KiB but at about 100
 * MB/s on 1 MiB messages (measured on Java 17; bench/results-e2e.md), and chunks are up to 8 MiB.
 *
 * <p>Thread-safe: each thread uses its own {@link Cipher}. {@link #decode} throws {@link
 * IllegalArgumentException} with the message {@link #AUTH_FAILED} when the record was changed.
 */
public final class AesGcmCodec implements BlobCodec {
  /** The name recorded in the repository config. */
  public static final String ALGORITHM = "aes-256-gcm";

  /** Why {@link #decode} failed on a changed record. */
  public static final String AUTH_FAILED = "authentication failed: the data was changed or damaged";

  static final int NONCE = 12;
  static final int TAG = 16;

  /** Plaintext bytes per encrypted segment. */
  static final int SEGMENT = 64 * 1024;

  private final SecretKey key;
  private final byte[] rawKey;
  private final boolean nativeCrypto;
  private final SecureRandom random = new SecureRandom();
  private final ThreadLocal<Cipher> ciphers = ThreadLocal.withInitial(AesGcmCodec::newCipher);

  /** A codec with a 32-byte key. */
  public AesGcmCodec(byte[] key) {
    this(key, true);
  }

  /** A codec that uses libcrypto ({@link NativeCrypto}) if {@code nativeCrypto}, else the JDK. */
  AesGcmCodec(byte[] key, boolean nativeCrypto) {
    if (key.length != 32) {
      throw new IllegalArgumentException("aes-256 needs a 32-byte key, not " + key.length);
    }
    this.key = new SecretKeySpec(key, "AES");
    this.rawKey = key.clone();
    this.nativeCrypto = nativeCrypto && NativeCrypto.available();
  }

  private static Cipher newCipher() {
    try {
      return Cipher.getInstance("AES/GCM/NoPadding");
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("aes-gcm is missing from this java runtime", e);
    }
  }

  static byte[] aad(BlobName name) {
    return ("granule-v1:" + name).getBytes(StandardCharsets.UTF_8);
  }

  /** Segments of a plaintext of {@code length} bytes. */
  static int segments(long length) {
    return (int) Math.max(1, (length + SEGMENT - 1) / SEGMENT);
  }

  /** The stored size of a record of {@code plainLength} bytes. */
  public static long storedLength(long plainLength) {
    return NONCE + plainLength + (long) TAG * segments(plainLength);
  }

  private static byte[] segmentNonce(byte[] recordNonce, int i) {
    byte[] n = recordNonce.clone();
    n[8] ^= (byte) (i >>> 24);
    n[9] ^= (byte) (i >>> 16);
    n[10] ^= (byte) (i >>> 8);
    n[11] ^= (byte) i;
    return n;
  }

  private static byte[] segmentAad(byte[] aad, int i, boolean last) {
    byte[] a = new byte[aad.length + 5];
    System.arraycopy(aad, 0, a, 0, aad.length);
    a[aad.length] = (byte) (i >>> 24);
    a[aad.length + 1] = (byte) (i >>> 16);
    a[aad.length + 2] = (byte) (i >>> 8);
    a[aad.length + 3] = (byte) i;
    a[aad.length + 4] = (byte) (last ? 1 : 0);
    return a;
  }

  @Override
  public byte[] encode(BlobName name, byte[] plain) {
    byte[] out = new byte[Math.toIntExact(storedLength(plain.length))];
    encode(name, ByteBuffer.wrap(plain), ByteBuffer.wrap(out));
    return out;
  }

  @Override
  public int encodedLength(int plainLength) {
    return Math.toIntExact(storedLength(plainLength));
  }

  @Override
  public int encode(BlobName name, ByteBuffer src, ByteBuffer dst) {
    int len = src.remaining();
    int need = Math.toIntExact(storedLength(len));
    if (dst.remaining() < need) {
      throw new IllegalArgumentException("room for " + dst.remaining() + " of " + need + " bytes");
    }
    byte[] nonce = new byte[NONCE];
    random.nextBytes(nonce);
    dst.put(nonce);
    crypt(true, name, nonce, aad(name), 0, segments(len), segments(len), src, dst);
    return need;
  }

  /**
   * Encrypts (or decrypts) segments {@code first} to {@code first + count - 1} of a record of
   * {@code total} segments from {@code src} (consumed) into {@code dst} (advanced): plaintext
   * segments of {@link #SEGMENT} bytes but the last, each stored with its tag.
   *
   * @throws IllegalArgumentException if a tag does not authenticate its segment
   */
  private void crypt(
      boolean encrypt,
      BlobName name,
      byte[] nonce,
      byte[] aad,
      int first,
      int count,
      int total,
      ByteBuffer src,
      ByteBuffer dst) {
    int plain = encrypt ? src.remaining() : src.remaining() - TAG * count;
    if (nativeCrypto) {
      Object in = NativeCrypto.target(src);
      Object out = NativeCrypto.target(dst);
      for (int i = first; i < first + count; i++) {
        int len = Math.min(SEGMENT, plain);
        int r =
            NativeCrypto.aesGcm(
                encrypt,
                rawKey,
                segmentNonce(nonce, i),
                segmentAad(aad, i, i == total - 1),
                in,
                NativeCrypto.offset(src, src.position()),
                encrypt ? len : len + TAG,
                out,
                NativeCrypto.offset(dst, dst.position()));
        if (r == -2 && !encrypt) {
          throw new IllegalArgumentException(AUTH_FAILED);
        }
        if (r != (encrypt ? len + TAG : len)) {
          throw new IllegalStateException(
              "unable to " + (encrypt ? "encrypt " : "decrypt ") + name + ": libcrypto failed");
        }
        src.position(src.position() + (encrypt ? len : len + TAG));
        dst.position(dst.position() + r);
        plain -= len;
      }
      return;
    }
    try {
      Cipher c = ciphers.get();
      for (int i = first; i < first + count; i++) {
        int len = Math.min(SEGMENT, plain);
        c.init(
            encrypt ? Cipher.ENCRYPT_MODE : Cipher.DECRYPT_MODE,
            key,
            new GCMParameterSpec(TAG * 8, segmentNonce(nonce, i)));
        c.updateAAD(segmentAad(aad, i, i == total - 1));
        int in = encrypt ? len : len + TAG;
        ByteBuffer part = src.duplicate();
        part.limit(part.position() + in);
        c.doFinal(part, dst);
        src.position(src.position() + in);
        plain -= len;
      }
    } catch (AEADBadTagException e) {
      throw new IllegalArgumentException(AUTH_FAILED, e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(
          "unable to " + (encrypt ? "encrypt " : "decrypt ") + name + ": " + e.getMessage(), e);
    }
  }

  @Override
  public long encodedLength(long plainLength) {
    return storedLength(plainLength);
  }

  @Override
  public Pieces encoder(BlobName name, long plainLength) {
    byte[] nonce = new byte[NONCE];
    random.nextBytes(nonce);
    return new Segments(true, name, nonce, segments(plainLength));
  }

  @Override
  public Pieces decoder(BlobName name, long storedLength) {
    long payload = storedLength - NONCE;
    if (payload < TAG) {
      throw new IllegalArgumentException(
          "encrypted record too short: actual=" + storedLength + " expected>=" + (NONCE + TAG));
    }
    long n = Math.max(1, (payload - TAG + SEGMENT + TAG - 1) / (SEGMENT + TAG));
    long plainLength = payload - TAG * n;
    if (plainLength < 0 || n > Integer.MAX_VALUE || segments(plainLength) != n) {
      throw new IllegalArgumentException(AUTH_FAILED);
    }
    return new Segments(false, name, null, (int) n);
  }

  /** A record encrypted or decrypted a few segments at a time, in order. */
  private final class Segments implements Pieces {
    private final boolean encrypt;
    private final BlobName name;
    private final byte[] aad;
    private final int total;
    private byte[] nonce;
    private int done; // segments

    Segments(boolean encrypt, BlobName name, byte[] nonce, int total) {
      this.encrypt = encrypt;
      this.name = name;
      this.aad = aad(name);
      this.nonce = nonce;
      this.total = total;
    }

    @Override
    public int unit() {
      return encrypt ? SEGMENT : SEGMENT + TAG;
    }

    @Override
    public int prefix() {
      return encrypt ? 0 : NONCE;
    }

    @Override
    public int room(int inputLength) {
      return encrypt
          ? (done == 0 ? NONCE : 0) + inputLength + TAG * segments(inputLength)
          : inputLength;
    }

    @Override
    public int next(ByteBuffer src, ByteBuffer dst, boolean last) {
      int start = dst.position();
      if (done == 0) {
        if (encrypt) {
          dst.put(nonce);
        } else {
          if (src.remaining() < NONCE) {
            throw new IllegalArgumentException("encrypted record too short: no nonce");
          }
          nonce = new byte[NONCE];
          src.get(nonce);
        }
      }
      int unit = unit();
      int count = last ? Math.max(1, (src.remaining() + unit - 1) / unit) : src.remaining() / unit;
      if (!last && src.remaining() % unit != 0
          || done + count > total
          || last && done + count != total) {
        throw new IllegalArgumentException(
            "piece of "
                + src.remaining()
                + " bytes at segment "
                + done
                + " of "
                + total
                + " of "
                + name
                + ": not whole segments");
      }
      crypt(encrypt, name, nonce, aad, done, count, total, src, dst);
      done += count;
      return dst.position() - start;
    }
  }

  @Override
  public int decodedLength(int storedLength) {
    long payload = (long) storedLength - NONCE;
    if (payload < TAG) {
      throw new IllegalArgumentException(
          "encrypted record too short: actual=" + storedLength + " expected>=" + (NONCE + TAG));
    }
    // every segment but the last holds SEGMENT + TAG bytes; the last one TAG to SEGMENT + TAG
    int n = (int) Math.max(1, (payload - TAG + SEGMENT + TAG - 1) / (SEGMENT + TAG));
    long plainLength = payload - (long) TAG * n;
    if (plainLength < 0 || segments(plainLength) != n) {
      throw new IllegalArgumentException(AUTH_FAILED);
    }
    return (int) plainLength;
  }

  @Override
  public byte[] decode(BlobName name, byte[] stored) {
    byte[] plain = new byte[decodedLength(stored.length)];
    decode(name, ByteBuffer.wrap(stored), ByteBuffer.wrap(plain));
    return plain;
  }

  @Override
  public int decode(BlobName name, ByteBuffer src, ByteBuffer dst) {
    int plainLength = decodedLength(src.remaining());
    if (dst.remaining() < plainLength) {
      throw new IllegalArgumentException(
          "room for " + dst.remaining() + " of " + plainLength + " bytes");
    }
    int n = segments(plainLength);
    byte[] nonce = new byte[NONCE];
    src.get(nonce);
    crypt(false, name, nonce, aad(name), 0, n, n, src, dst);
    return plainLength;
  }
}
