package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * kill -9 of a real {@code granule backup} process at seeded random moments: after every kill the
 * repository verifies and the earlier snapshot restores byte for byte; the next backup succeeds and
 * reuses what the killed ones had already stored.
 */
class CrashTest {
  @TempDir Path tmp;

  @Test
  void killDuringBackupLeavesAValidRepository() throws Exception {
    long seed = Long.getLong("granule.crash.seed", System.nanoTime());
    Random rnd = new Random(seed);
    String why = "seed " + seed + " (rerun with -Dgranule.crash.seed=" + seed + ")";
    Path repo = tmp.resolve("repo");
    Path img = tmp.resolve("vm.img");
    writeRandom(img, 0, 48 << 20, rnd);
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result first =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + img);
    assertThat(first.exitCode()).as(first.err()).isZero();
    String firstSha = RepositoryCliTest.sha256(img);

    // Change most of the disk, so that an interrupted backup has much to store.
    writeRandom(img, 0, 40 << 20, rnd);
    int killsThatLeftPacks = 0;
    for (int round = 0; round < 6; round++) {
      long packsBefore = packs(repo);
      Process p =
          Granule.command(
                  List.of(),
                  "backup",
                  "--repo",
                  repo.toString(),
                  "--disk",
                  "vm=" + img,
                  "--no-progress")
              .redirectErrorStream(true)
              .redirectOutput(tmp.resolve("killed-" + round + ".txt").toFile())
              .start();
      long delay = 300 + rnd.nextInt(2200);
      if (!p.waitFor(delay, TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        p.waitFor(30, TimeUnit.SECONDS);
      }
      if (packs(repo) > packsBefore) {
        killsThatLeftPacks++;
      }
      Granule.Result v = Granule.run(tmp, "verify", "--repo", repo.toString());
      assertThat(v.exitCode()).as(why + ", round " + round + ": " + v.out() + v.err()).isZero();
      Path out = tmp.resolve("first-" + round + ".img");
      Granule.Result r =
          Granule.run(
              tmp,
              "restore",
              "disk",
              first.out().substring(9, 21),
              "--repo",
              repo.toString(),
              "--to",
              out.toString());
      assertThat(r.exitCode()).as(why + ": " + r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(out)).as(why).isEqualTo(firstSha);
      Files.delete(out);
    }

    Granule.Result last =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + img, "--json");
    assertThat(last.exitCode()).as(why + ": " + last.err()).isZero();
    JsonNode res = Api.JSON.readTree(last.out());
    if (killsThatLeftPacks > 0) {
      // What the killed backups stored is reused: less than the 40 MiB that changed is new.
      assertThat(res.get("bytesNew").asLong()).as(why).isLessThan(40L << 20);
    }
    Path out = tmp.resolve("last.img");
    Granule.Result r =
        Granule.run(
            tmp, "restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(why + ": " + r.err()).isZero();
    assertThat(RepositoryCliTest.sha256(out)).as(why).isEqualTo(RepositoryCliTest.sha256(img));
    Granule.Result v = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(v.exitCode()).as(why + ": " + v.out()).isZero();
  }

  private static long packs(Path repo) throws Exception {
    Path data = repo.resolve("data");
    if (!Files.isDirectory(data)) {
      return 0;
    }
    try (Stream<Path> s = Files.walk(data)) {
      return s.filter(Files::isRegularFile)
          .filter(p -> !p.getFileName().toString().startsWith("."))
          .count();
    }
  }

  private static void writeRandom(Path img, long from, long to, Random rnd) throws Exception {
    byte[] buf = new byte[1 << 20];
    try (FileChannel ch =
        FileChannel.open(img, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      for (long pos = from; pos < to; pos += buf.length) {
        rnd.nextBytes(buf);
        ch.write(ByteBuffer.wrap(buf), pos);
      }
    }
  }
}
