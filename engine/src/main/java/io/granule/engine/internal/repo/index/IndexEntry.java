package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.ChunkId;

/** One line of an index blob: a chunk and where it is stored. */
public record IndexEntry(ChunkId id, ChunkLocation location) {}
