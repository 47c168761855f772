package io.granule.engine.internal.repo.blob;

import java.time.Instant;

/**
 * What {@link BlobStore#stat} and {@link BlobStore#listInfo} know about a blob: its name, its size
 * in bytes and when it was last written, by the store's clock ({@code null} if the store does not
 * say: treat it as written just now).
 */
public record BlobInfo(BlobName name, long size, Instant modified) {

  /** A blob whose modification time is not known. */
  public BlobInfo(BlobName name, long size) {
    this(name, size, null);
  }

  /**
   * Whether the blob was written after {@code cutoff}; a blob of unknown time counts as written
   * after any cutoff (the safe answer for whoever spares recent blobs).
   */
  public boolean writtenAfter(Instant cutoff) {
    return modified == null || modified.isAfter(cutoff);
  }
}
