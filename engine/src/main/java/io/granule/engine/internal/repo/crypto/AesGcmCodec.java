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
    int n = segments(len);
    int need = Math.toIntExact(storedLength(len));
    if (dst.remaining() < need) {
      throw new IllegalArgumentException("room for " + dst.remaining() + " of " + need + " bytes");
    }
    byte[] nonce = new byte[NONCE];
    random.nextBytes(nonce);
    dst.put(nonce);
    byte[] aad = aad(name);
    if (nativeCrypto) {
      Object in = NativeCrypto.target(src);
      Object out = NativeCrypto.target(dst);
      for (int i = 0; i < n; i++) {
        int segment = Math.min(SEGMENT, src.remaining());
        int r =
            NativeCrypto.aesGcm(
                true,
                rawKey,
                segmentNonce(nonce, i),
                segmentAad(aad, i, i == n - 1),
                in,
                NativeCrypto.offset(src, src.position()),
                segment,
                out,
                NativeCrypto.offset(dst, dst.position()));
        if (r != segment + TAG) {
          throw new IllegalStateException("unable to encrypt " + name + ": libcrypto failed");
        }
        src.position(src.position() + segment);
        dst.position(dst.position() + r);
      }
      return need;
    }
    try {
      Cipher c = ciphers.get();
      for (int i = 0; i < n; i++) {
        int segment = Math.min(SEGMENT, src.remaining());
        c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(TAG * 8, segmentNonce(nonce, i)));
        c.updateAAD(segmentAad(aad, i, i == n - 1));
        ByteBuffer part = src.duplicate();
        part.limit(part.position() + segment);
        c.doFinal(part, dst);
        src.position(src.position() + segment);
      }
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("unable to encrypt " + name + ": " + e.getMessage(), e);
    }
    return need;
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
    byte[] aad = aad(name);
    if (nativeCrypto) {
      Object in = NativeCrypto.target(src);
      Object out = NativeCrypto.target(dst);
      int done = 0;
      for (int i = 0; i < n; i++) {
        int len = Math.min(SEGMENT, plainLength - done);
        int r =
            NativeCrypto.aesGcm(
                false,
                rawKey,
                segmentNonce(nonce, i),
                segmentAad(aad, i, i == n - 1),
                in,
                NativeCrypto.offset(src, src.position()),
                len + TAG,
                out,
                NativeCrypto.offset(dst, dst.position()));
        if (r == -2) {
          throw new IllegalArgumentException(AUTH_FAILED);
        }
        if (r != len) {
          throw new IllegalStateException("unable to decrypt " + name + ": libcrypto failed");
        }
        src.position(src.position() + len + TAG);
        dst.position(dst.position() + len);
        done += len;
      }
      return plainLength;
    }
    try {
      Cipher c = ciphers.get();
      int done = 0;
      for (int i = 0; i < n; i++) {
        int len = Math.min(SEGMENT, plainLength - done);
        c.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(TAG * 8, segmentNonce(nonce, i)));
        c.updateAAD(segmentAad(aad, i, i == n - 1));
        ByteBuffer part = src.duplicate();
        part.limit(part.position() + len + TAG);
        c.doFinal(part, dst);
        src.position(src.position() + len + TAG);
        done += len;
      }
      return plainLength;
    } catch (AEADBadTagException e) {
      throw new IllegalArgumentException(AUTH_FAILED, e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("unable to decrypt " + name + ": " + e.getMessage(), e);
    }
  }
}
