package io.granule.engine.internal.repo.pack;

/** Bits of the per-chunk flags recorded in pack trailers and index blobs. */
public final class ChunkFlags {
  /** The stored bytes are a zstd frame; without it they are the plaintext itself. */
  public static final int ZSTD = 1;

  private ChunkFlags() {}
}
