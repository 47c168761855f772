package io.granule.engine.internal.repo;

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
 * @param chunkHash chunk id algorithm ({@code sha256})
 */
public record RepositoryConfig(
    int version,
    String repositoryId,
    String created,
    int chunkSize,
    int packSize,
    int compressionLevel,
    String chunkHash) {
  /** The newest repository format this build reads and writes. */
  public static final int VERSION = 1;

  /** Default target pack size: 16 MiB. */
  public static final int DEFAULT_PACK_SIZE = 16 << 20;

  static final int MAGIC = 0x47434647;
  private static final ObjectMapper JSON =
      new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  /** Defaults: 1 MiB chunks, 16 MiB packs, zstd level 1, SHA-256 ids; id and time unset. */
  public static RepositoryConfig defaults() {
    return new RepositoryConfig(
        VERSION, null, null, Chunker.DEFAULT_FIXED_CHUNK_SIZE, DEFAULT_PACK_SIZE, 1, "sha256");
  }

  /** A copy with another chunk size. */
  public RepositoryConfig withChunkSize(int size) {
    return new RepositoryConfig(
        version, repositoryId, created, size, packSize, compressionLevel, chunkHash);
  }

  /** A copy with another pack size. */
  public RepositoryConfig withPackSize(int size) {
    return new RepositoryConfig(
        version, repositoryId, created, chunkSize, size, compressionLevel, chunkHash);
  }

  RepositoryConfig withIdentity(String id, Instant time) {
    return new RepositoryConfig(
        version, id, time.toString(), chunkSize, packSize, compressionLevel, chunkHash);
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
    if (!"sha256".equals(chunkHash)) {
      throw new IllegalArgumentException("unsupported chunk hash '" + chunkHash + "'");
    }
  }

  byte[] toBytes() {
    try {
      return BlobFrames.frame(MAGIC, VERSION, JSON.writeValueAsBytes(this));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static RepositoryConfig fromBytes(String where, byte[] bytes) {
    BlobName name = BlobName.CONFIG;
    ByteBuffer p;
    try {
      p = BlobFrames.unframe(name, bytes, MAGIC, VERSION).payload();
    } catch (UnsupportedRepositoryVersionException e) {
      throw new UnsupportedRepositoryVersionException(
          "repository at '"
              + where
              + "' has a newer format than this build supports (supported: "
              + VERSION
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
    return c;
  }
}
