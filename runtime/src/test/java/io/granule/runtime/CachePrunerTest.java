package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The user's cache is pruned of what was not used for a month (class-data-sharing archives of jars
 * that are gone, caches of repositories that are gone), at most once a day, and nothing else.
 */
class CachePrunerTest {
  private static final Duration MONTH = Duration.ofDays(30);
  private static final String ID_A = "a".repeat(64);
  private static final String ID_B = "b".repeat(64);
  private static final String ID_C = "c".repeat(64);

  @TempDir Path root;

  private final Instant now = Instant.parse("2026-12-03T10:00:00Z");

  private Path file(String name, Duration age) throws IOException {
    Path f = root.resolve(name);
    Files.createDirectories(f.getParent());
    Files.writeString(f, name);
    age(f, age);
    return f;
  }

  private void age(Path p, Duration age) throws IOException {
    Files.setLastModifiedTime(p, FileTime.from(now.minus(age)));
  }

  @Test
  void deletesWhatWasNotUsedForTheGivenTimeAndKeepsTheRest() throws IOException {
    Path oldArchive = file("cds/granule-1-2-backup.jsa", Duration.ofDays(31));
    Path newArchive = file("cds/granule-3-4-backup.jsa", Duration.ofDays(29));
    Path oldNoCds = file("cds/granule-5-6.nocds", Duration.ofDays(40));
    Path oldDump = file("cds/granule-3-4-restore.jsa.tmp.1234", Duration.ofHours(25));
    Path newDump = file("cds/granule-3-4-init.jsa.tmp.1235", Duration.ofHours(1));
    Path foreign = file("cds/notes.txt", Duration.ofDays(400));
    // a repository last used 31 days ago, with files of any age inside
    Path goneRepo = file(ID_A + "/catalog/x.json", Duration.ZERO).getParent().getParent();
    age(Files.createFile(goneRepo.resolve(CachePruner.USED)), Duration.ofDays(31));
    // one used yesterday, whose directory itself is old
    Path liveRepo = file(ID_B + "/index/y", Duration.ofDays(90)).getParent().getParent();
    age(Files.createFile(liveRepo.resolve(CachePruner.USED)), Duration.ofDays(1));
    age(liveRepo, Duration.ofDays(90));
    // one from before the marker existed: its directory's time decides
    Path legacyRepo = Files.createDirectories(root.resolve(ID_C));
    age(legacyRepo, Duration.ofDays(60));
    Path otherDir = Files.createDirectories(root.resolve("runtime-0123456789abcdef"));
    age(otherDir, Duration.ofDays(365));

    assertThat(CachePruner.prune(root, now, MONTH)).isEqualTo(5);

    assertThat(oldArchive).doesNotExist();
    assertThat(oldNoCds).doesNotExist();
    assertThat(oldDump).doesNotExist();
    assertThat(goneRepo).doesNotExist();
    assertThat(legacyRepo).doesNotExist();
    assertThat(newArchive).exists();
    assertThat(newDump).exists();
    assertThat(foreign).exists();
    assertThat(liveRepo.resolve("index/y")).exists();
    assertThat(otherDir).exists();
    assertThat(root).isDirectoryNotContaining("glob:**/removing-*");
  }

  @Test
  void prunesAtMostOnceADay() throws IOException {
    assertThat(CachePruner.prune(root, now, MONTH)).isZero();
    Path old = file("cds/granule-1-2-backup.jsa", Duration.ofDays(31));

    assertThat(CachePruner.prune(root, now.plus(Duration.ofHours(23)), MONTH)).isEqualTo(-1);
    assertThat(old).exists();

    assertThat(CachePruner.prune(root, now.plus(Duration.ofHours(25)), MONTH)).isEqualTo(1);
    assertThat(old).doesNotExist();
  }

  @Test
  void aMappedArchiveIsMarkedUsedOnceADay() throws IOException {
    Path archive = file("cds/granule-1-2-backup.jsa", Duration.ofDays(31));
    CachePruner.markUsed(archive, now);
    assertThat(Files.getLastModifiedTime(archive).toInstant()).isEqualTo(now);

    // within the day its time is left alone (no write on every start)
    CachePruner.markUsed(archive, now.plus(Duration.ofHours(20)));
    assertThat(Files.getLastModifiedTime(archive).toInstant()).isEqualTo(now);

    assertThat(CachePruner.prune(root, now, MONTH)).isZero();
    assertThat(archive).exists();
  }

  @Test
  void aMissingOrForeignCacheIsNoError() throws IOException {
    assertThat(CachePruner.prune(root.resolve("absent"), now, MONTH)).isZero();
    CachePruner.markUsed(root.resolve("cds/absent.jsa"), now);
    Files.writeString(root.resolve(CachePruner.PRUNED), "");
    // a root that is a file
    Path f = file("plain", Duration.ZERO);
    assertThat(CachePruner.prune(f, now, MONTH)).isZero();
  }
}
