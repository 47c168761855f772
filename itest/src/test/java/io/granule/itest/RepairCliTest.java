package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code granule repair} end to end with real processes on an encrypted repository (audit15 G F1):
 * a damaged pack is found by verify, repair is killed with SIGKILL at seeded random moments and run
 * again, names the snapshots that use lost chunks and exits 5; backing up the same disks again
 * makes every earlier snapshot restore byte for byte, and verify --read-data passes.
 */
class RepairCliTest {
  @TempDir Path tmp;

  @Test
  void repairKilledAndRunAgainThenBackupsMakeEverySnapshotWhole() throws Exception {
    long seed = Long.getLong("granule.crash.seed", System.nanoTime());
    Random rnd = new Random(seed);
    String why = "seed " + seed + " (rerun with -Dgranule.crash.seed=" + seed + ")";
    Path repo = tmp.resolve("repo");
    Path first = tmp.resolve("first.img");
    Path second = tmp.resolve("second.img");
    byte[] a = new byte[24 << 20];
    rnd.nextBytes(a);
    Files.write(first, a);
    byte[] b = a.clone();
    byte[] changed = new byte[8 << 20];
    rnd.nextBytes(changed);
    System.arraycopy(changed, 0, b, 4 << 20, changed.length);
    Files.write(second, b);
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    java.util.Map<String, Path> snapshots = new java.util.LinkedHashMap<>(); // id → its disk
    for (Path img : List.of(first, second)) {
      snapshots.put(backup(repo, img), img);
    }
    // Bit flips in a third of the way into the largest pack: some of its chunks are lost.
    Path pack;
    try (Stream<Path> s = Files.walk(repo.resolve("data"))) {
      pack =
          s.filter(Files::isRegularFile)
              .max(Comparator.comparingLong(p -> p.toFile().length()))
              .orElseThrow();
    }
    byte[] bytes = Files.readAllBytes(pack);
    for (int i = bytes.length / 3; i < bytes.length / 3 + 4096; i += 512) {
      bytes[i] ^= 0x04;
    }
    Files.write(pack, bytes);

    Granule.Result v = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(v.exitCode()).as(v.out() + v.err()).isEqualTo(5);
    assertThat(v.out()).contains("damaged: data/" + pack.getFileName()).contains("granule repair");

    for (int round = 0; round < 3; round++) {
      Process p =
          Granule.command(List.of(), "repair", "--repo", repo.toString(), "--no-progress")
              .redirectErrorStream(true)
              .redirectOutput(tmp.resolve("killed-" + round + ".txt").toFile())
              .start();
      long delay = 200 + rnd.nextInt(1800);
      if (!p.waitFor(delay, TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        p.waitFor(30, TimeUnit.SECONDS);
      }
    }
    Granule.Result repaired = Granule.run(tmp, "repair", "--repo", repo.toString(), "--json");
    // a killed run may have finished the repair: snapshots still use lost chunks either way
    assertThat(repaired.exitCode()).as(why + ": " + repaired.out() + repaired.err()).isEqualTo(5);
    assertThat(Files.exists(pack)).as(why + ": the damaged pack is gone").isFalse();
    Granule.Result after = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(after.exitCode()).as(why + ": " + after.out()).isEqualTo(5);
    assertThat(after.out()).as(why).doesNotContain("damaged: data/");

    for (Path img : List.of(first, second)) {
      snapshots.put(backup(repo, img), img);
    }
    Granule.Result whole = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(whole.exitCode()).as(why + ": " + whole.out()).isZero();
    assertThat(snapshots).hasSize(4);
    int i = 0;
    for (var e : snapshots.entrySet()) {
      Path out = tmp.resolve("restored-" + i++ + ".img");
      Granule.Result r =
          Granule.run(
              tmp,
              "restore",
              "disk",
              e.getKey(),
              "--repo",
              repo.toString(),
              "--to",
              out.toString());
      assertThat(r.exitCode()).as(why + ": " + r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(out))
          .as(why + ": snapshot " + e.getKey())
          .isEqualTo(RepositoryCliTest.sha256(e.getValue()));
      Files.delete(out);
    }
  }

  /** Backs up {@code img} as disk vm; returns the snapshot's id. */
  private String backup(Path repo, Path img) throws Exception {
    Granule.Result r =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + img, "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    return Api.JSON.readTree(r.out()).get("snapshot").get("id").asText();
  }
}
