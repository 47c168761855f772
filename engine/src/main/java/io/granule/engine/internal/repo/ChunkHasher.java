package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.crypto.NativeCrypto;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Computes chunk ids from plaintext. Unencrypted repositories use plain SHA-256; encrypted ones a
 * keyed HMAC-SHA-256 (so that ids reveal nothing about content), which is why every caller goes
 * through this seam rather than a {@code MessageDigest}.
 *
 * <p>Instances are not thread-safe; use one per thread ({@link #copy()}).
 */
public interface ChunkHasher {

  /** The id of {@code length} bytes of {@code data} at {@code offset}. */
  ChunkId hash(byte[] data, int offset, int length);

  /**
   * The id of the bytes remaining in {@code data} (heap or direct), which it consumes: the buffer's
   * position ends at its limit.
   */
  ChunkId hash(ByteBuffer data);

  /** A fresh hasher of the same kind, for another thread. */
  ChunkHasher copy();

  /** The algorithm name recorded in the repository config, e.g. {@code sha256}. */
  String algorithm();

  /** A plain SHA-256 hasher: libcrypto's where available (see {@link NativeCrypto}). */
  static ChunkHasher sha256() {
    return NativeCrypto.available() ? new NativeSha256ChunkHasher() : new Sha256ChunkHasher();
  }

  /**
   * HMAC-SHA-256 of the plaintext under {@code key} (the MAC key of an encrypted repository): ids,
   * and so stored names, reveal nothing about content to someone without the key.
   */
  static ChunkHasher hmacSha256(byte[] key) {
    return NativeCrypto.available() && key.length <= 64
        ? new NativeHmacChunkHasher(key.clone())
        : new HmacChunkHasher(key.clone());
  }

  /** The JDK's SHA-256, whatever is available: for tests comparing implementations. */
  static ChunkHasher jdkSha256() {
    return new Sha256ChunkHasher();
  }

  /** The JDK's HMAC-SHA-256: for tests comparing implementations. */
  static ChunkHasher jdkHmacSha256(byte[] key) {
    return new HmacChunkHasher(key.clone());
  }

  /** SHA-256 by libcrypto. Stateless: one instance serves every thread. */
  final class NativeSha256ChunkHasher implements ChunkHasher {
    @Override
    public ChunkId hash(byte[] data, int offset, int length) {
      return ChunkId.of(NativeCrypto.digest(null, data, offset, length), 0);
    }

    @Override
    public ChunkId hash(ByteBuffer data) {
      return ChunkId.of(NativeCrypto.digest(null, data), 0);
    }

    @Override
    public ChunkHasher copy() {
      return this;
    }

    @Override
    public String algorithm() {
      return "sha256";
    }
  }

  /** HMAC-SHA-256 by libcrypto. Stateless: one instance serves every thread. */
  final class NativeHmacChunkHasher implements ChunkHasher {
    private final byte[] key;

    NativeHmacChunkHasher(byte[] key) {
      this.key = key;
    }

    @Override
    public ChunkId hash(byte[] data, int offset, int length) {
      return ChunkId.of(NativeCrypto.digest(key, data, offset, length), 0);
    }

    @Override
    public ChunkId hash(ByteBuffer data) {
      return ChunkId.of(NativeCrypto.digest(key, data), 0);
    }

    @Override
    public ChunkHasher copy() {
      return this;
    }

    @Override
    public String algorithm() {
      return "hmac-sha256";
    }
  }

  /** Keyed HMAC-SHA-256 of the plaintext. */
  final class HmacChunkHasher implements ChunkHasher {
    private final byte[] key;
    private final javax.crypto.Mac mac;

    HmacChunkHasher(byte[] key) {
      this.key = key;
      try {
        mac = javax.crypto.Mac.getInstance("HmacSHA256");
        mac.init(new javax.crypto.spec.SecretKeySpec(key, "HmacSHA256"));
      } catch (NoSuchAlgorithmException | java.security.InvalidKeyException e) {
        throw new IllegalStateException("hmac-sha-256 is missing from this java runtime", e);
      }
    }

    @Override
    public ChunkId hash(byte[] data, int offset, int length) {
      mac.update(data, offset, length);
      return ChunkId.of(mac.doFinal(), 0);
    }

    @Override
    public ChunkId hash(ByteBuffer data) {
      mac.update(data);
      return ChunkId.of(mac.doFinal(), 0);
    }

    @Override
    public ChunkHasher copy() {
      return new HmacChunkHasher(key);
    }

    @Override
    public String algorithm() {
      return "hmac-sha256";
    }
  }

  /** Plain SHA-256 of the plaintext. */
  final class Sha256ChunkHasher implements ChunkHasher {
    private final MessageDigest digest;

    Sha256ChunkHasher() {
      try {
        digest = MessageDigest.getInstance("SHA-256");
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException("sha-256 is missing from this java runtime", e);
      }
    }

    @Override
    public ChunkId hash(byte[] data, int offset, int length) {
      digest.update(data, offset, length);
      return ChunkId.of(digest.digest(), 0);
    }

    @Override
    public ChunkId hash(ByteBuffer data) {
      digest.update(data);
      return ChunkId.of(digest.digest(), 0);
    }

    @Override
    public ChunkHasher copy() {
      return new Sha256ChunkHasher();
    }

    @Override
    public String algorithm() {
      return "sha256";
    }
  }
}
