package io.granule.engine.internal.repo;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Computes chunk ids from plaintext. The default is plain SHA-256; a repository with encryption
 * will use a keyed HMAC-SHA-256 instead (so that ids reveal nothing about content), which is why
 * every caller goes through this seam rather than a {@code MessageDigest}.
 *
 * <p>Instances are not thread-safe; use one per thread ({@link #copy()}).
 */
public interface ChunkHasher {

  /** The id of {@code length} bytes of {@code data} at {@code offset}. */
  ChunkId hash(byte[] data, int offset, int length);

  /** A fresh hasher of the same kind, for another thread. */
  ChunkHasher copy();

  /** The algorithm name recorded in the repository config, e.g. {@code sha256}. */
  String algorithm();

  /** A plain SHA-256 hasher. */
  static ChunkHasher sha256() {
    return new Sha256ChunkHasher();
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
    public ChunkHasher copy() {
      return new Sha256ChunkHasher();
    }

    @Override
    public String algorithm() {
      return "sha256";
    }
  }
}
