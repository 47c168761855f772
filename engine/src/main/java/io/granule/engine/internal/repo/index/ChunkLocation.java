package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.PackId;

/**
 * Where a chunk is stored.
 *
 * @param pack the pack holding it
 * @param offset offset of its stored bytes in the pack file
 * @param storedLength length of the stored bytes
 * @param rawLength length of the plaintext (at most {@link ChunkIndex#MAX_RAW_LENGTH})
 * @param flags {@code ChunkFlags} (8 bits)
 */
public record ChunkLocation(PackId pack, long offset, int storedLength, int rawLength, int flags) {}
