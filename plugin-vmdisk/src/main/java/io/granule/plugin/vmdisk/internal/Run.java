package io.granule.plugin.vmdisk.internal;

/**
 * Where a run of virtual disk bytes comes from, as a reader's block map answers it. A run never has
 * length 0.
 */
sealed interface Run {
  long length();

  /** Bytes stored verbatim in {@code file} from {@code fileOffset}: allocated. */
  record Data(long length, ImageFile file, long fileOffset) implements Run {}

  /** Bytes that read as zeros and are not allocated (sparse, or marked zero). */
  record Zero(long length) implements Run {}

  /** Bytes this image does not hold: they come from the backing image at the same offset. */
  record Backing(long length) implements Run {}

  /**
   * Bytes stored encoded (compressed) in one block that must be decoded whole: the run is {@code
   * length} bytes from {@code skip} in the decoded block. {@code key} identifies the block for the
   * decoded-block cache and is what the reader's decoder receives.
   */
  record Encoded(long length, Object key, int skip) implements Run {}
}
