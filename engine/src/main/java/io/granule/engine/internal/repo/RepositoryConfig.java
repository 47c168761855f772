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
 * @param chunkHash chunk id algorithm: {@code sha256}, or {@code hmac-sha256} (keyed with the
 *     repository's MAC key) when encrypted
 * @param encryption {@code aes-256-gcm}, or absent (null) for an unencrypted repository; an
 *     encrypted repository has format version 2 so that older builds refuse it
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
  /** The newest repository format this build reads and writes (1: plain, 2: encrypted). */
  public static final int VERSION = 2;

  /** The version of the config frame itself (unchanged by format version 2). */
  private static final int FRAME_VERSION = 1;

  /** The encryption this build writes. */
  public static final String AES_256_GCM = "aes-256-gcm";

  /** Default target pack size: 16 MiB. */
  public static final int DEFAULT_PACK_SIZE = 16 << 20;

  static final int MAGIC = 0x47434647;
  private static final ObjectMapper JSON =
      new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  /** Defaults: 1 MiB chunks, 16 MiB packs, zstd level 1, SHA-256 ids; id and time unset. */
  public static RepositoryConfig defaults() {
    return new RepositoryConfig(
        1, null, null, Chunker.DEFAULT_FIXED_CHUNK_SIZE, DEFAULT_PACK_SIZE, 1, "sha256", null);
  }

  /** Whether records are encrypted and chunk ids keyed. */
  public boolean encrypted() {
    return encryption != null;
  }

  /** A copy that encrypts with AES-256-GCM and keys chunk ids with HMAC-SHA-256 (version 2). */
  public RepositoryConfig withEncryption() {
    return new RepositoryConfig(
        2,
        repositoryId,
        created,
        chunkSize,
        packSize,
        compressionLevel,
        "hmac-sha256",
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

  void validate() {
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
    if (!(encrypted() ? "hmac-sha256" : "sha256").equals(chunkHash)) {
      throw new IllegalArgumentException("unsupported chunk hash '" + chunkHash + "'");
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
    return c;
  }
}
