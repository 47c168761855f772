package io.granule.engine.internal.repo.backup;

/**
 * The outcome of restoring one disk.
 *
 * @param bytes size of the disk restored
 * @param chunksFetched chunks read from packs
 * @param zeroChunks zero chunks (skipped on a fresh file, written as zeros otherwise)
 * @param sparse whether zero chunks were skipped (target was a fresh file)
 */
public record RestoreResult(long bytes, long chunksFetched, long zeroChunks, boolean sparse) {}
