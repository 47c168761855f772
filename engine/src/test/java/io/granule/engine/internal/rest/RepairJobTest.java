package io.granule.engine.internal.rest;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.cli.RepairCommand;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.maintenance.Repairer;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The error a repair job ends with, and when it fails (as the CLI's exit code 5). */
class RepairJobTest {
  private static final Repairer.PackRepair PACK =
      new Repairer.PackRepair("data/ab12", false, 10, 6, 1, 3, "chunk ab does not read");

  private static Repository.RepairResult result(
      boolean dryRun,
      List<Repairer.PackRepair> damaged,
      List<String> snapshots,
      List<String> other) {
    Repairer.Report report =
        new Repairer.Report(
            dryRun,
            4,
            damaged,
            List.of(),
            List.of(),
            damaged.isEmpty() ? 0 : 6,
            damaged.isEmpty() ? 0 : 3,
            0,
            snapshots,
            dryRun || damaged.isEmpty() ? 0 : 1,
            dryRun || damaged.isEmpty() ? 0 : 2,
            damaged.isEmpty() ? 0 : 1,
            dryRun || damaged.isEmpty() ? 0 : 1,
            0.1,
            List.of(),
            List.of());
    return new Repository.RepairResult(report, 1000, other, List.of());
  }

  @Test
  void aRepairThatLeavesNoSnapshotUsingLostChunksSucceeds() {
    assertThat(RepairCommand.damaged(result(false, List.of(), List.of(), List.of()))).isFalse();
    assertThat(RepairCommand.damaged(result(false, List.of(PACK), List.of(), List.of()))).isFalse();
  }

  @Test
  void snapshotsUsingLostChunksFailTheJobNamingThem() {
    Repository.RepairResult r = result(false, List.of(PACK), List.of("s1", "s2"), List.of());
    assertThat(RepairCommand.damaged(r)).isTrue();
    assertThat(ApiServlet.repairFailure(r))
        .isEqualTo(
            "snapshots that use lost chunks: s1, s2 (back up their disks again, or forget them)");
  }

  @Test
  void aDryRunThatFindsDamagedPacksFailsSayingNothingChanged() {
    Repository.RepairResult r = result(true, List.of(PACK), List.of("s1"), List.of());
    assertThat(RepairCommand.damaged(r)).isTrue();
    assertThat(ApiServlet.repairFailure(r))
        .isEqualTo(
            "dry run: 1 damaged packs found, 3 chunks would be lost; nothing was changed;"
                + " snapshots that would use lost chunks: s1 (back up their disks again, or"
                + " forget them)");
  }

  @Test
  void damageThatIsNotInPacksIsNamed() {
    Repository.RepairResult r =
        new Repository.RepairResult(
            result(false, List.of(), List.of(), List.of()).repair(),
            0,
            List.of("index/cd34"),
            List.of("s3"));
    assertThat(RepairCommand.damaged(r)).isTrue();
    assertThat(ApiServlet.repairFailure(r))
        .isEqualTo(
            "damaged, not packs (repair leaves them): index/cd34; snapshots they affect: s3");
  }

  /** audit L8: a job that failed only for a pack left alone (or a damaged copy) said nothing. */
  @Test
  void packsLeftAloneAndDamagedCopiesAreNamed() {
    Repairer.Report base = result(false, List.of(), List.of(), List.of()).repair();
    Repairer.Report report =
        new Repairer.Report(
            false,
            4,
            List.of(),
            List.of(),
            List.of("data/ab12: its trailer and index blob [index/cd34] do not read"),
            0,
            0,
            0,
            List.of(),
            0,
            0,
            0,
            0,
            0.1,
            List.of("data/ef56"),
            List.of());
    Repository.RepairResult r = new Repository.RepairResult(report, 1000, List.of(), List.of());
    assertThat(base.leftAlone()).isEmpty();
    assertThat(RepairCommand.damaged(r)).isTrue();
    assertThat(ApiServlet.repairFailure(r))
        .isEqualTo(
            "damaged packs left alone (not all their records can be located): data/ab12: its"
                + " trailer and index blob [index/cd34] do not read; damaged too (a copy of a"
                + " chunk there does not read; repair them next): data/ef56");
  }

  @Test
  void progressIsThePhaseAndItsCounts() {
    assertThat(ApiServlet.repairProgress("salvage", 1, 2))
        .containsExactly(
            java.util.Map.entry("phase", "salvage"),
            java.util.Map.entry("done", 1L),
            java.util.Map.entry("total", 2L));
  }
}
