package io.granule.engine.internal.repo;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.chunk.Chunker;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.List;

/**
 * The settings a repository is created with, stored in its {@code config} blob (JSON in a {@link
 * BlobFrames} frame, magic "GCFG"; never transformed by a {@code BlobCodec}). Immutable after
 * {@code init}.
 *
 * @param version repository format version ({@link #VERSION})
 * @param repositoryId 32 random bytes, hex
 * @param created creation time, ISO-8601 UTC
 * @param chunkSize fixed chunk size for disks, 4 KiB to 8 MiB
 * @param packSize target pack size in bytes
 * @param compressionLevel zstd level per chunk
 * @param chunkHash chunk id algorithm: {@code blake3} or {@code sha256} when unencrypted, {@code
 *     blake3-keyed} or {@code hmac-sha256} (keyed with the repository's MAC key) when encrypted;
 *     BLAKE3 ids need format version 3
 * @param encryption {@code aes-256-gcm}, or absent (null) for an unencrypted repository; an
 *     encrypted repository has format version 2 or later so that older builds refuse it
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record RepositoryConfig(
    int version,
    String repositoryId,
    String created,
    int chunkSize,
    int packSize,
    int compressionLevel,
    String chunkHash,
    String encryption) {
  /**
   * The newest repository format this build reads and writes (1: plain, 2: encrypted, 3: BLAKE3
   * chunk ids). A repository is created with the oldest version that has its features, so that a
   * SHA-256 repository stays readable by builds older than BLAKE3.
   */
  public static final int VERSION = 3;

  /** Chunk ids by SHA-256 (format 1). */
  public static final String SHA256 = "sha256";

  /** Chunk ids by HMAC-SHA-256 under the MAC key (format 2). */
  public static final String HMAC_SHA256 = "hmac-sha256";

  /** Chunk ids by BLAKE3 (format 3). */
  public static final String BLAKE3 = "blake3";

  /** Chunk ids by BLAKE3's keyed mode under the MAC key (format 3). */
  public static final String BLAKE3_KEYED = "blake3-keyed";

  /** The version of the config frame itself (unchanged by format version 2). */
  private static final int FRAME_VERSION = 1;

  /** The encryption this build writes. */
  public static final String AES_256_GCM = "aes-256-gcm";

  /** Default target pack size: 16 MiB. */
  public static final int DEFAULT_PACK_SIZE = 16 << 20;

  static final int MAGIC = 0x47434647;
  private static final java.util.regex.Pattern HEX_ID =
      java.util.regex.Pattern.compile("[0-9a-f]{1,128}");
  private static final ObjectMapper JSON =
      new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  /** Defaults: 1 MiB chunks, 16 MiB packs, zstd level 1, BLAKE3 ids; id and time unset. */
  public static RepositoryConfig defaults() {
    return new RepositoryConfig(
        3, null, null, Chunker.DEFAULT_FIXED_CHUNK_SIZE, DEFAULT_PACK_SIZE, 1, BLAKE3, null);
  }

  /**
   * A copy whose chunk ids use {@code family}: {@code blake3} or {@code sha256} (keyed by {@link
   * #withEncryption} either way), with the oldest format version that has it.
   *
   * @throws IllegalArgumentException for another name
   */
  public RepositoryConfig withChunkHashFamily(String family) {
    String hash;
    int v;
    if (BLAKE3.equals(family)) {
      hash = encrypted() ? BLAKE3_KEYED : BLAKE3;
      v = 3;
    } else if (SHA256.equals(family)) {
      hash = encrypted() ? HMAC_SHA256 : SHA256;
      v = encrypted() ? 2 : 1;
    } else {
      throw new IllegalArgumentException(
          "unknown chunk hash '" + family + "': choose blake3 (the default) or sha256");
    }
    return new RepositoryConfig(
        v, repositoryId, created, chunkSize, packSize, compressionLevel, hash, encryption);
  }

  /** The chunk hash without its key: {@code blake3} or {@code sha256}. */
  public String chunkHashFamily() {
    return BLAKE3.equals(chunkHash) || BLAKE3_KEYED.equals(chunkHash) ? BLAKE3 : SHA256;
  }

  /** Whether records are encrypted and chunk ids keyed. */
  public boolean encrypted() {
    return encryption != null;
  }

  /**
   * A copy that encrypts with AES-256-GCM and keys chunk ids with the MAC key: keyed BLAKE3
   * (version 3) if they are BLAKE3, else HMAC-SHA-256 (version 2).
   */
  public RepositoryConfig withEncryption() {
    boolean blake3 = BLAKE3.equals(chunkHashFamily());
    return new RepositoryConfig(
        Math.max(version, blake3 ? 3 : 2),
        repositoryId,
        created,
        chunkSize,
        packSize,
        compressionLevel,
        blake3 ? BLAKE3_KEYED : HMAC_SHA256,
        AES_256_GCM);
  }

  /** A copy with another chunk size. */
  public RepositoryConfig withChunkSize(int size) {
    return new RepositoryConfig(
        version, repositoryId, created, size, packSize, compressionLevel, chunkHash, encryption);
  }

  /** A copy with another pack size. */
  public RepositoryConfig withPackSize(int size) {
    return new RepositoryConfig(
        version, repositoryId, created, chunkSize, size, compressionLevel, chunkHash, encryption);
  }

  RepositoryConfig withIdentity(String id, Instant time) {
    return new RepositoryConfig(
        version, id, time.toString(), chunkSize, packSize, compressionLevel, chunkHash, encryption);
  }

  /**
   * Writes and reads back a config through this class's Jackson mapper, so that a later real read
   * finds Jackson's classes loaded and the record introspected (see {@code StartupWarmup}).
   */
  public static void warmUp() {
    RepositoryConfig c = defaults().withIdentity("0".repeat(64), Instant.EPOCH);
    fromBytes("warm-up", c.toBytes());
  }

  void validate() {
    if (repositoryId != null && !HEX_ID.matcher(repositoryId).matches()) {
      // it names the repository's directory in the user's cache: never a path
      throw new IllegalArgumentException(
          "invalid repository id '"
              + repositoryId.substring(0, Math.min(80, repositoryId.length()))
              + "': not 1-128 lowercase hex digits");
    }
    if (chunkSize < 4096 || chunkSize > 8 << 20) {
      throw new IllegalArgumentException(
          "invalid chunk size " + chunkSize + ": choose between 4096 and 8388608 bytes");
    }
    if (packSize < chunkSize || packSize > 1 << 30) {
      throw new IllegalArgumentException(
          "invalid pack size "
              + packSize
              + ": choose between the chunk size "
              + chunkSize
              + " and 1073741824 bytes");
    }
    if (compressionLevel < -7 || compressionLevel > 19) {
      throw new IllegalArgumentException("invalid zstd level " + compressionLevel);
    }
    boolean known =
        encrypted()
            ? HMAC_SHA256.equals(chunkHash) || BLAKE3_KEYED.equals(chunkHash)
            : SHA256.equals(chunkHash) || BLAKE3.equals(chunkHash);
    if (!known) {
      throw new IllegalArgumentException(
          "unsupported chunk hash '"
              + chunkHash
              + "' for an "
              + (encrypted() ? "encrypted" : "unencrypted")
              + " repository");
    }
    if (BLAKE3.equals(chunkHashFamily()) && version < 3) {
      throw new IllegalArgumentException(
          "chunk hash " + chunkHash + " needs format version 3, not " + version);
    }
    if (encrypted() && !AES_256_GCM.equals(encryption)) {
      throw new IllegalArgumentException("unsupported encryption '" + encryption + "'");
    }
  }

  byte[] toBytes() {
    try {
      return BlobFrames.frame(MAGIC, FRAME_VERSION, JSON.writeValueAsBytes(this));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static RepositoryConfig fromBytes(String where, byte[] bytes) {
    BlobName name = BlobName.CONFIG;
    ByteBuffer p;
    try {
      p = BlobFrames.unframe(name, bytes, MAGIC, FRAME_VERSION).payload();
    } catch (UnsupportedRepositoryVersionException e) {
      throw new UnsupportedRepositoryVersionException(
          "repository at '"
              + where
              + "' has a newer format than this build supports (supported: "
              + FRAME_VERSION
              + "): upgrade granule to open it",
          e);
    }
    RepositoryConfig c;
    try {
      c =
          JSON.readValue(
              p.array(), p.arrayOffset() + p.position(), p.remaining(), RepositoryConfig.class);
    } catch (IOException e) {
      throw new RepositoryCorruptedException(
          "config of repository at '" + where + "' is unreadable: " + e.getMessage(), e);
    }
    if (c.version() > VERSION) {
      throw new UnsupportedRepositoryVersionException(
          "repository at '"
              + where
              + "' has format version "
              + c.version()
              + " (supported: "
              + VERSION
              + "): upgrade granule to open it");
    }
    if (c.encrypted() && !AES_256_GCM.equals(c.encryption())) {
      throw new UnsupportedRepositoryVersionException(
          "repository at '"
              + where
              + "' is encrypted with '"
              + c.encryption()
              + "' (supported: "
              + AES_256_GCM
              + "): upgrade granule to open it");
    }
    String hash = c.chunkHash();
    if (!List.of(SHA256, HMAC_SHA256, BLAKE3, BLAKE3_KEYED).contains(hash)) {
      throw new UnsupportedRepositoryVersionException(
          "repository at '"
              + where
              + "' names chunks with '"
              + hash
              + "' (supported: "
              + String.join(", ", SHA256, HMAC_SHA256, BLAKE3, BLAKE3_KEYED)
              + "): upgrade granule to open it");
    }
    try {
      c.validate();
    } catch (IllegalArgumentException e) {
      throw new RepositoryCorruptedException(
          "config of repository at '" + where + "' is inconsistent: " + e.getMessage(), e);
    }
    return c;
  }
}
