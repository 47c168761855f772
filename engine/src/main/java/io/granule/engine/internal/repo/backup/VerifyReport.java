package io.granule.engine.internal.repo.backup;

import java.util.List;
import java.util.Set;

/**
 * What verify found.
 *
 * @param damages each damaged file with its problems and the snapshots it affects, sorted by file
 * @param affectedSnapshots ids of every snapshot that cannot be restored completely
 * @param snapshots snapshots checked
 * @param packs packs checked
 * @param chunks index entries checked
 * @param dataRead whether every chunk was read and checked ({@code --read-data})
 */
public record VerifyReport(
    List<Damage> damages,
    Set<String> affectedSnapshots,
    int snapshots,
    int packs,
    long chunks,
    boolean dataRead) {

  /** Whether nothing is damaged. */
  public boolean ok() {
    return damages.isEmpty() && affectedSnapshots.isEmpty();
  }
}
