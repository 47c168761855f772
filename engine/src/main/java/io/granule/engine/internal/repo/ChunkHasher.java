package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.crypto.NativeCrypto;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import org.apache.commons.codec.digest.Blake3;

/**
 * Computes chunk ids from plaintext, by the repository's {@link RepositoryConfig#chunkHash}: BLAKE3
 * (the default since format version 3) or SHA-256 in an unencrypted repository; keyed BLAKE3 or
 * HMAC-SHA-256 under the repository's MAC key in an encrypted one (so that ids reveal nothing about
 * content). Every caller goes through this seam rather than a {@code MessageDigest}.
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

  /**
   * The hasher of a repository's {@code algorithm} ({@link RepositoryConfig#chunkHash}): {@code
   * sha256}, {@code blake3}, or the keyed {@code hmac-sha256} and {@code blake3-keyed}, which take
   * the repository's 32-byte MAC {@code key} (null for the unkeyed ones).
   *
   * @throws IllegalArgumentException for another algorithm, or a key where none belongs or none
   *     where one does
   */
  static ChunkHasher of(String algorithm, byte[] key) {
    boolean keyed =
        RepositoryConfig.HMAC_SHA256.equals(algorithm)
            || RepositoryConfig.BLAKE3_KEYED.equals(algorithm);
    if (keyed != (key != null)) {
      throw new IllegalArgumentException(
          "chunk hash " + algorithm + (keyed ? " needs a key" : " takes no key"));
    }
    return switch (algorithm) {
      case RepositoryConfig.SHA256 -> sha256();
      case RepositoryConfig.HMAC_SHA256 -> hmacSha256(key);
      case RepositoryConfig.BLAKE3 -> blake3(null);
      case RepositoryConfig.BLAKE3_KEYED -> blake3(key);
      default -> throw new IllegalArgumentException("unsupported chunk hash '" + algorithm + "'");
    };
  }

  /**
   * BLAKE3, or keyed BLAKE3 under {@code key} (32 bytes) unless it is null: libgranule-native's
   * (SIMD, about 1.3x libcrypto's SHA-256 on the bench machine) where it loads, else
   * commons-codec's (pure Java), byte for byte the same.
   */
  static ChunkHasher blake3(byte[] key) {
    if (key != null && key.length != 32) {
      throw new IllegalArgumentException("a BLAKE3 key has 32 bytes, not " + key.length);
    }
    byte[] k = key == null ? null : key.clone();
    return NativeCrypto.blake3Available()
        ? new NativeBlake3ChunkHasher(k)
        : new Blake3ChunkHasher(k);
  }

  /** commons-codec's BLAKE3: for tests comparing implementations. */
  static ChunkHasher javaBlake3(byte[] key) {
    return new Blake3ChunkHasher(key == null ? null : key.clone());
  }

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
      return RepositoryConfig.SHA256;
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
      return RepositoryConfig.HMAC_SHA256;
    }
  }

  /** BLAKE3 (keyed when it has a key) by libgranule-native. Stateless: one serves every thread. */
  final class NativeBlake3ChunkHasher implements ChunkHasher {
    private final byte[] key;

    NativeBlake3ChunkHasher(byte[] key) {
      this.key = key;
    }

    @Override
    public ChunkId hash(byte[] data, int offset, int length) {
      return ChunkId.of(NativeCrypto.blake3(key, data, offset, length), 0);
    }

    @Override
    public ChunkId hash(ByteBuffer data) {
      return ChunkId.of(NativeCrypto.blake3(key, data), 0);
    }

    @Override
    public ChunkHasher copy() {
      return this;
    }

    @Override
    public String algorithm() {
      return key == null ? RepositoryConfig.BLAKE3 : RepositoryConfig.BLAKE3_KEYED;
    }
  }

  /** BLAKE3 (keyed when it has a key) by commons-codec, in Java. */
  final class Blake3ChunkHasher implements ChunkHasher {
    private static final int SLICE = 64 << 10;
    private final byte[] key;
    private final Blake3 blake3;
    private byte[] slice;

    Blake3ChunkHasher(byte[] key) {
      this.key = key;
      this.blake3 = key == null ? Blake3.initHash() : Blake3.initKeyedHash(key);
    }

    @Override
    public ChunkId hash(byte[] data, int offset, int length) {
      blake3.reset();
      blake3.update(data, offset, length);
      return ChunkId.of(blake3.doFinalize(32), 0);
    }

    @Override
    public ChunkId hash(ByteBuffer data) {
      if (data.hasArray()) {
        ChunkId id = hash(data.array(), data.arrayOffset() + data.position(), data.remaining());
        data.position(data.limit());
        return id;
      }
      blake3.reset();
      if (slice == null) {
        slice = new byte[SLICE];
      }
      while (data.hasRemaining()) {
        int n = Math.min(SLICE, data.remaining());
        data.get(slice, 0, n);
        blake3.update(slice, 0, n);
      }
      return ChunkId.of(blake3.doFinalize(32), 0);
    }

    @Override
    public ChunkHasher copy() {
      return new Blake3ChunkHasher(key);
    }

    @Override
    public String algorithm() {
      return key == null ? RepositoryConfig.BLAKE3 : RepositoryConfig.BLAKE3_KEYED;
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
      return RepositoryConfig.HMAC_SHA256;
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
      return RepositoryConfig.SHA256;
    }
  }
}
