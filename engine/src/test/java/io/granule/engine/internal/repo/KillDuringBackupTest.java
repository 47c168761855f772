package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.RepositoryTest.backup;
import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kills a backup process with SIGKILL at seeded random moments: the repository must verify, the
 * earlier snapshot restore byte for byte, and the next backup succeed.
 */
class KillDuringBackupTest {
  private static final long SEED = 20261125L;

  @TempDir Path tmp;

  /** Child JVM: backs up args[1] into the repository at args[0], announcing the start. */
  public static void main(String[] args) throws Exception {
    try (Repository repo = Repository.open(Path.of(args[0]))) {
      System.out.println("started");
      System.out.flush();
      backup(repo, "vda", Path.of(args[1]), "child");
      System.out.println("finished");
    }
  }

  private static void copyTree(Path from, Path to) throws IOException {
    try (Stream<Path> all = Files.walk(from)) {
      for (Path p : all.toList()) {
        Path target = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
        } else {
          Files.copy(p, target);
        }
      }
    }
  }

  @Test
  void repositorySurvivesKillNineAtRandomMoments() throws Exception {
    Random random = new Random(SEED);
    byte[] dataA = TestImages.mixed(4 << 20, 51);
    byte[] dataB = TestImages.mixed(32 << 20, 52);
    Path imageA = TestImages.write(tmp.resolve("a.raw"), dataA);
    Path imageB = TestImages.write(tmp.resolve("b.raw"), dataB);
    Path base = tmp.resolve("base");
    Manifest a;
    try (Repository repo =
        Repository.init(
            base, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10))) {
      a = backup(repo, "vda", imageA, "h").manifest();
    }
    String java = ProcessHandle.current().info().command().orElse("java");
    int killed = 0;
    int interrupted = 0;
    for (int run = 0; run < 6; run++) {
      Path dir = tmp.resolve("run" + run);
      copyTree(base, dir);
      Process p =
          new ProcessBuilder(
                  java,
                  "-Xmx128m",
                  "-cp",
                  System.getProperty("java.class.path"),
                  KillDuringBackupTest.class.getName(),
                  dir.toString(),
                  imageB.toString())
              .redirectErrorStream(true)
              .start();
      BufferedReader out =
          new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
      String line;
      while ((line = out.readLine()) != null && !line.equals("started")) {
        // skip log lines until the backup starts
      }
      assertThat(line).as("seed %d run %d: child started", SEED, run).isEqualTo("started");
      int delayMs = random.nextInt(250);
      Thread.sleep(delayMs);
      if (p.isAlive()) {
        p.destroyForcibly();
        killed++;
      }
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
      try (Repository repo = Repository.open(dir)) {
        if (repo.snapshots().size() == 1) {
          interrupted++;
        }
        VerifyReport r = repo.verify(true, VerifyListener.NONE);
        assertThat(r.ok())
            .as("seed %d run %d killed after %d ms: %s", SEED, run, delayMs, r.damages())
            .isTrue();
        repo.restoreDisk(a, "vda", tmp.resolve("a" + run));
        assertThat(sha256(tmp.resolve("a" + run))).isEqualTo(sha256(dataA));
        Manifest b = backup(repo, "vda", imageB, "h").manifest();
        repo.restoreDisk(b, "vda", tmp.resolve("b" + run));
        assertThat(sha256(tmp.resolve("b" + run))).isEqualTo(sha256(dataB));
      }
    }
    assertThat(killed).as("seed %d: some runs were killed", SEED).isPositive();
    assertThat(interrupted).as("seed %d: some kills landed before the manifest", SEED).isPositive();
  }
}
