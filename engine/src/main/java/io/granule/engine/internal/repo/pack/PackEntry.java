package io.granule.engine.internal.repo.pack;

import io.granule.engine.internal.repo.ChunkId;

/**
 * One chunk record of a pack, as listed in its trailer.
 *
 * @param id the chunk id (hash of the plaintext)
 * @param offset where the stored bytes start in the pack file
 * @param storedLength length of the stored bytes (after compression and {@code BlobCodec})
 * @param rawLength length of the plaintext
 * @param flags {@link ChunkFlags}
 * @param crc CRC32C of the stored bytes
 */
public record PackEntry(
    ChunkId id, long offset, int storedLength, int rawLength, int flags, int crc) {}
