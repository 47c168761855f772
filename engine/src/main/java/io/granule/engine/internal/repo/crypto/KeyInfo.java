package io.granule.engine.internal.repo.crypto;

/**
 * What {@code granule key list} shows about one key blob.
 *
 * @param id the blob name (64 hex digits)
 * @param created when it was added, ISO-8601 UTC
 * @param kdf the key derivation, e.g. {@code scrypt n=32768 r=8 p=1}
 * @param version the key blob's format: 2 seals the repository's config, 1 (older builds) does not
 */
public record KeyInfo(String id, String created, String kdf, int version) {
  /** Whether the key blob seals the repository's config (see {@link KeyRing}). */
  public boolean sealsConfig() {
    return version >= 2;
  }
}
