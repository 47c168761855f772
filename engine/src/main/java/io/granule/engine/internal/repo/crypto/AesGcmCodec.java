package io.granule.engine.internal.repo.crypto;

import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
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
 * bytes, random) || ciphertext || tag (16 bytes)}, 28 bytes more than the plaintext. The additional
 * authenticated data is {@code "granule-v1:" + name} (e.g. {@code granule-v1:snapshots/3fa2…}), so
 * a record moved into another blob, or a blob renamed, fails authentication. Random 96-bit nonces
 * are safe for well under 2^32 records per key.
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

  /** Bytes a record grows by. */
  public static final int OVERHEAD = NONCE + TAG;

  private final SecretKey key;
  private final SecureRandom random = new SecureRandom();
  private final ThreadLocal<Cipher> ciphers = ThreadLocal.withInitial(AesGcmCodec::newCipher);

  /** A codec with a 32-byte key. */
  public AesGcmCodec(byte[] key) {
    if (key.length != 32) {
      throw new IllegalArgumentException("aes-256 needs a 32-byte key, not " + key.length);
    }
    this.key = new SecretKeySpec(key, "AES");
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

  @Override
  public byte[] encode(BlobName name, byte[] plain) {
    byte[] out = new byte[plain.length + OVERHEAD];
    byte[] nonce = new byte[NONCE];
    random.nextBytes(nonce);
    System.arraycopy(nonce, 0, out, 0, NONCE);
    try {
      Cipher c = ciphers.get();
      c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(TAG * 8, nonce));
      c.updateAAD(aad(name));
      c.doFinal(plain, 0, plain.length, out, NONCE);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("unable to encrypt " + name + ": " + e.getMessage(), e);
    }
    return out;
  }

  @Override
  public byte[] decode(BlobName name, byte[] stored) {
    if (stored.length < OVERHEAD) {
      throw new IllegalArgumentException(
          "encrypted record too short: actual=" + stored.length + " expected>=" + OVERHEAD);
    }
    try {
      Cipher c = ciphers.get();
      c.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(TAG * 8, stored, 0, NONCE));
      c.updateAAD(aad(name));
      return c.doFinal(stored, NONCE, stored.length - NONCE);
    } catch (AEADBadTagException e) {
      throw new IllegalArgumentException(AUTH_FAILED, e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("unable to decrypt " + name + ": " + e.getMessage(), e);
    }
  }
}
