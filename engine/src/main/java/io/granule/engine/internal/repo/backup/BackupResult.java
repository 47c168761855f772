package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.snapshot.Manifest;

/**
 * The outcome of a backup that completed.
 *
 * @param manifest the snapshot written
 * @param progress the final progress report
 * @param packsWritten packs saved by this backup
 */
public record BackupResult(Manifest manifest, BackupProgress progress, long packsWritten) {}
