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
 * @param dataSubset the packs whose data was asked for: "none", "all", or as given to {@code
 *     --read-data-subset} ({@code 1/7}, {@code 5%}, {@code 10G})
 * @param dataPacks packs whose data was read and checked
 * @param dataBytes their bytes
 */
public record VerifyReport(
    List<Damage> damages,
    Set<String> affectedSnapshots,
    int snapshots,
    int packs,
    long chunks,
    boolean dataRead,
    String dataSubset,
    int dataPacks,
    long dataBytes) {

  /** Whether nothing is damaged. */
  public boolean ok() {
    return damages.isEmpty() && affectedSnapshots.isEmpty();
  }
}
