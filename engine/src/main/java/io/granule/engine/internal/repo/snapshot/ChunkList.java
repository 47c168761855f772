package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;

/**
 * An ordered list of chunk ids that a backup fills in as workers hash chunks: a {@link FixedIndex}
 * for a disk, a {@link DynamicIndex} for a stream. {@link #set} is safe from several threads.
 */
public interface ChunkList {
  /** Records the id of the chunk at {@code position}. */
  void set(int position, ChunkId id);
}
