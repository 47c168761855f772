package io.granule.engine.internal.repo.crypto;

/**
 * What {@code granule key list} shows about one key blob.
 *
 * @param id the blob name (64 hex digits)
 * @param created when it was added, ISO-8601 UTC
 * @param kdf the key derivation, e.g. {@code scrypt n=32768 r=8 p=1}
 */
public record KeyInfo(String id, String created, String kdf) {}
