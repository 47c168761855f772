package io.granule.engine.internal.repo.blob;

/**
 * The kinds of blob a repository holds. Each kind lives in its own namespace (a directory for
 * {@link LocalBlobStore}, a key prefix for object stores); the {@link #directory()} names are part
 * of the on-disk layout and never change.
 */
public enum BlobType {
  /** The repository config: one blob named {@code config}. */
  CONFIG("."),
  /** Key material (encryption, next issue). */
  KEY("keys"),
  /** Packs of chunks. */
  PACK("data"),
  /** Index blobs: chunk id to pack location. */
  INDEX("index"),
  /** Fixed indexes of disks: one chunk id per chunk position. */
  FIXED_INDEX("fixed"),
  /** Dynamic indexes of streams: content-defined chunks with their end offsets. */
  DYNAMIC_INDEX("dynamic"),
  /** Snapshot manifests. */
  SNAPSHOT("snapshots"),
  /** Repository locks (shared and exclusive), rewritten while held. */
  LOCK("locks");

  private final String directory;

  BlobType(String directory) {
    this.directory = directory;
  }

  /** The directory (or key prefix) of this type, relative to the repository root. */
  public String directory() {
    return directory;
  }
}
