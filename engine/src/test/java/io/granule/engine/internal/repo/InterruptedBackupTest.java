package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.RepositoryTest.backup;
import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.FaultyBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A backup interrupted at every possible save (as a crash or a full disk would) leaves a repository
 * that verifies, whose earlier snapshots restore, and where the next backup succeeds storing
 * exactly the chunks that did not make it.
 */
class InterruptedBackupTest {
  @TempDir Path tmp;

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

  private static long storedBytesOf(LocalBlobStore store, List<BlobName> packs) throws IOException {
    long sum = 0;
    for (BlobName p : packs) {
      for (PackEntry e : PackReader.loadTrailer(store, p)) {
        sum += e.storedLength();
      }
    }
    return sum;
  }

  @Test
  void backupInterruptedAtEverySaveLeavesAValidRepositoryAndIsResumed() throws Exception {
    Path base = tmp.resolve("base");
    byte[] dataA = TestImages.mixed(3 << 20, 31);
    byte[] dataB = TestImages.mixed(3 << 20, 32);
    System.arraycopy(dataA, 0, dataB, 1 << 20, 1 << 20);
    Path imageA = TestImages.write(tmp.resolve("a.raw"), dataA);
    Path imageB = TestImages.write(tmp.resolve("b.raw"), dataB);
    RepositoryConfig cfg =
        RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(192 << 10);
    Manifest a;
    try (Repository repo = Repository.init(base, cfg)) {
      a = backup(repo, "vda", imageA, "h").manifest();
    }
    List<BlobName> basePacks = new LocalBlobStore(base).list(BlobType.PACK);

    Path reference = tmp.resolve("reference");
    copyTree(base, reference);
    long fullNew;
    FaultyBlobStore counting = new FaultyBlobStore(new LocalBlobStore(reference), 0);
    try (Repository repo = Repository.open(counting, Clock.systemUTC(), tmp.resolve("cache"))) {
      fullNew = backup(repo, "vda", imageB, "h").progress().bytesNew();
    }
    assertThat(counting.saves())
        .as("packs, an index, a fixed index and a manifest")
        .isGreaterThan(4);
    assertThat(fullNew).isPositive();

    int interrupted = 0;
    int savesOfTheFirstWholeRun = -1;
    for (int k = 1; ; k++) {
      Path dir = tmp.resolve("run" + k);
      copyTree(base, dir);
      FaultyBlobStore faulty = new FaultyBlobStore(new LocalBlobStore(dir), k);
      try (Repository repo = Repository.open(faulty, Clock.systemUTC(), tmp.resolve("cache"))) {
        try {
          backup(repo, "vda", imageB, "h");
          assertThat(faulty.fired()).isFalse();
          savesOfTheFirstWholeRun = faulty.saves();
          break;
        } catch (RepositoryException e) {
          assertThat(faulty.fired()).as("save %d", k).isTrue();
          assertThat(e)
              .hasMessageStartingWith("backup failed writing to the repository at " + dir)
              .hasMessageContaining("injected fault: save #");
          // packs are saved on three threads: a later save may fail (and be reported) first
          java.util.regex.Matcher m =
              java.util.regex.Pattern.compile("injected fault: save #(\\d+)")
                  .matcher(e.getMessage());
          assertThat(m.find()).isTrue();
          assertThat(Integer.parseInt(m.group(1))).as("failed save").isGreaterThanOrEqualTo(k);
          interrupted++;
        }
      }
      LocalBlobStore plain = new LocalBlobStore(dir);
      List<BlobName> leftPacks = new ArrayList<>(plain.list(BlobType.PACK));
      leftPacks.removeAll(basePacks);
      long leftBytes = storedBytesOf(plain, leftPacks);
      try (Repository repo = Repository.open(dir)) {
        VerifyReport r = repo.verify(true, VerifyListener.NONE);
        assertThat(r.ok()).as("after fault at save %d: %s", k, r.damages()).isTrue();
        assertThat(repo.snapshots()).extracting(Manifest::id).containsExactly(a.id());
        repo.restoreDisk(a, "vda", tmp.resolve("a" + k));
        assertThat(sha256(tmp.resolve("a" + k))).isEqualTo(sha256(dataA));

        BackupResult again = backup(repo, "vda", imageB, "h");
        assertThat(again.progress().bytesNew())
            .as("save %d: only what did not make it is stored again", k)
            .isEqualTo(fullNew - leftBytes);
        repo.restoreDisk(again.manifest(), "vda", tmp.resolve("b" + k));
        assertThat(sha256(tmp.resolve("b" + k))).isEqualTo(sha256(dataB));
        assertThat(repo.verify(false, VerifyListener.NONE).ok()).isTrue();
      }
    }
    // Two workers fill a pack each, so the number of packs (and saves) may differ by one or two
    // from run to run. Runs 1 to k - 1 failed at saves 1 to k - 1 in turn; the first whole run
    // needed no more than k - 1 saves, so each of its saves was interrupted in an earlier run.
    assertThat(savesOfTheFirstWholeRun).isLessThanOrEqualTo(interrupted);
    assertThat(interrupted)
        .as("every save of the backup was interrupted once")
        .isBetween(counting.saves() - 2, counting.saves() + 2);
  }

  @Test
  void damagedPackLeftByACrashIsNotReusedAndCompletedPacksAreNotReread() throws Exception {
    Path dir = tmp.resolve("repo");
    byte[] data = TestImages.mixed(3 << 20, 34);
    Path image = TestImages.write(tmp.resolve("b.raw"), data);
    Repository.init(
            dir, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(192 << 10))
        .close();
    FaultyBlobStore faulty = new FaultyBlobStore(new LocalBlobStore(dir), 4);
    try (Repository repo = Repository.open(faulty, Clock.systemUTC(), tmp.resolve("cache"))) {
      assertThatThrownBy(() -> backup(repo, "vda", image, "h"))
          .isInstanceOf(RepositoryException.class);
    }
    LocalBlobStore plain = new LocalBlobStore(dir);
    List<BlobName> orphans = plain.list(BlobType.PACK);
    assertThat(orphans).hasSize(3);
    BlobName victim = orphans.get(0);
    PackEntry e = PackReader.loadTrailer(plain, victim).get(0);
    byte[] bytes = Files.readAllBytes(plain.path(victim));
    bytes[(int) e.offset() + 1] ^= 1;
    Files.write(plain.path(victim), bytes);

    FaultyBlobStore counting = new FaultyBlobStore(plain, 0);
    try (Repository repo = Repository.open(counting, Clock.systemUTC(), tmp.resolve("cache"))) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      assertThat(counting.footerLoads()).as("each orphan read once").isEqualTo(3);
      assertThat(counting.wholePackLoads()).as("record by record, never whole").isZero();
      backup(repo, "vda", image, "h");
      assertThat(counting.footerLoads()).as("indexed packs are not read again").isEqualTo(3);
      repo.restoreDisk(m, "vda", tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
      VerifyReport r = repo.verify(true, VerifyListener.NONE);
      assertThat(r.affectedSnapshots()).isEmpty();
      assertThat(r.damages()).extracting(d -> d.file()).containsExactly(victim.toString());
    }
  }

  @Test
  void failedBackupInTheSameProcessDoesNotPoisonTheChunkIndex() throws Exception {
    Path dir = tmp.resolve("repo");
    Path image = TestImages.write(tmp.resolve("b.raw"), TestImages.mixed(2 << 20, 33));
    Repository.init(dir, RepositoryConfig.defaults().withChunkSize(64 << 10)).close();
    FaultyBlobStore faulty = new FaultyBlobStore(new LocalBlobStore(dir), 1);
    try (Repository repo = Repository.open(faulty, Clock.systemUTC(), tmp.resolve("cache"))) {
      assertThatThrownBy(() -> backup(repo, "vda", image, "h"))
          .isInstanceOf(RepositoryException.class);
      assertThat(repo.stats().chunks()).isZero();
    }
  }
}
