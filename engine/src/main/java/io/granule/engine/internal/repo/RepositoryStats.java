package io.granule.engine.internal.repo;

/**
 * Sizes of a repository.
 *
 * @param snapshots number of readable snapshots
 * @param disks disks over all snapshots
 * @param logicalBytes sum of the sizes of those disks
 * @param storedBytes sum of the sizes of all packs
 * @param chunks chunks listed by the index
 * @param packs number of packs
 */
public record RepositoryStats(
    int snapshots, int disks, long logicalBytes, long storedBytes, long chunks, int packs) {

  /** Logical bytes per stored byte; 0 for an empty repository. */
  public double dedupRatio() {
    return storedBytes == 0 ? 0 : (double) logicalBytes / storedBytes;
  }
}
