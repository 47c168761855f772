package io.granule.engine.internal.repo.crypto;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.blob.BlobCodec;
import java.security.SecureRandom;
import java.util.Arrays;

/**
 * The keys of an encrypted repository: a 256-bit AES key for every record and a 256-bit HMAC key
 * for chunk ids. Generated once at {@code init}, stored only wrapped by a password (see {@link
 * KeyRing}); changing a password rewraps it and never touches data. Immutable and thread-safe.
 */
public final class MasterKey {
  static final int LENGTH = 64;

  private final byte[] encryption;
  private final byte[] mac;

  private MasterKey(byte[] both) {
    this.encryption = Arrays.copyOfRange(both, 0, 32);
    this.mac = Arrays.copyOfRange(both, 32, 64);
  }

  /** A fresh random key set. */
  public static MasterKey generate() {
    byte[] b = new byte[LENGTH];
    new SecureRandom().nextBytes(b);
    return new MasterKey(b);
  }

  static MasterKey fromBytes(byte[] both) {
    if (both.length != LENGTH) {
      throw new IllegalArgumentException("master key must be 64 bytes, not " + both.length);
    }
    return new MasterKey(both);
  }

  byte[] toBytes() {
    byte[] b = new byte[LENGTH];
    System.arraycopy(encryption, 0, b, 0, 32);
    System.arraycopy(mac, 0, b, 32, 32);
    return b;
  }

  /** The codec that encrypts records with this key. */
  public BlobCodec codec() {
    return new AesGcmCodec(encryption);
  }

  /**
   * The chunk hasher that keys ids with this key, by {@code algorithm}: {@code blake3-keyed} or
   * {@code hmac-sha256} (see {@link ChunkHasher#of}).
   */
  public ChunkHasher hasher(String algorithm) {
    return ChunkHasher.of(algorithm, mac);
  }
}
