package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The metadata cache of a remote repository ($XDG_CACHE_HOME/granule/ID) damaged on this host: a
 * bad copy is dropped and the blob read again from the repository, so an intact repository is never
 * reported damaged, restores work and 'latest' is the latest. Damage in the repository itself is
 * still damage.
 */
class CachedMetadataDamageTest {
  @TempDir Path tmp;

  @Test
  @org.junit.jupiter.api.Timeout(300)
  void damagedCachedCopiesAreReadAgainFromTheRepository() throws Exception {
    Path dir = tmp.resolve("remote");
    Path cache = tmp.resolve("xdg/granule");
    PasswordSource pw = "pw"::toCharArray;
    byte[] older = TestImages.mixed(3 << 20, 5);
    byte[] newer = older.clone();
    TestImages.modify(newer, 20, 16, 6);
    List<Manifest> made = new ArrayList<>();
    String id;
    Files.createDirectories(dir);
    try (Repository r =
        Repository.init(
            new LocalBlobStore(dir),
            RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10),
            Clock.systemUTC(),
            tmp.resolve("idx"),
            "pw".toCharArray(),
            KdfParams.TESTING,
            cache)) {
      id = r.config().repositoryId();
      for (byte[] data : List.of(older, newer)) {
        Path img = TestImages.write(tmp.resolve("d" + made.size() + ".raw"), data);
        try (RawDiskImage d = RawDiskImage.open(img)) {
          made.add(
              r.backup(
                      new BackupRequest(List.of(new NamedDisk("vda", d)), "h", null, null),
                      BackupListener.NONE)
                  .manifest());
        }
      }
    }
    Path copies = cache.resolve(id);
    List<Path> damaged = new ArrayList<>();
    for (String type : List.of("snapshots", "index", "fixed")) {
      try (Stream<Path> files = Files.list(copies.resolve(type))) {
        for (Path f : files.toList()) {
          byte[] b = Files.readAllBytes(f);
          b[b.length / 2] ^= 0x10;
          Files.write(f, b);
          damaged.add(f);
        }
      }
    }
    assertThat(damaged).hasSizeGreaterThanOrEqualTo(5);

    try (Repository r =
        Repository.open(
            new LocalBlobStore(dir), Clock.systemUTC(), tmp.resolve("idx2"), pw, cache)) {
      assertThat(r.snapshots()).extracting(Manifest::id).containsExactlyElementsOf(ids(made));
      Manifest latest = r.resolve("latest", SnapshotFilter.ANY, "vda");
      assertThat(latest.id()).isEqualTo(made.get(1).id());
      r.restoreDisk(latest, "vda", tmp.resolve("out"));
      assertThat(TestImages.sha256(tmp.resolve("out"))).isEqualTo(TestImages.sha256(newer));
      r.restoreDisk(made.get(0), "vda", tmp.resolve("out0"));
      assertThat(TestImages.sha256(tmp.resolve("out0"))).isEqualTo(TestImages.sha256(older));
      VerifyReport v = r.verify(true, VerifyListener.NONE); // the repository's copies
      assertThat(v.ok()).as("%s", v.damages()).isTrue();
    }
    for (Path f : damaged) {
      Path original = dir.resolve(copies.relativize(f));
      assertThat(Files.readAllBytes(f))
          .as("copy of %s healed", original)
          .isEqualTo(Files.readAllBytes(original));
    }

    // copies that cannot be read or deleted: a directory in place of a manifest, a FIFO in place
    // of an index blob (its read blocked forever), a damaged copy in a directory that cannot be
    // changed (here: a non-empty directory). Read around, never reported as damage.
    Path snapCopy = copies.resolve("snapshots").resolve(made.get(1).id());
    Files.delete(snapCopy);
    Files.createDirectories(snapCopy.resolve("junk"));
    Path indexCopy;
    try (Stream<Path> files = Files.list(copies.resolve("index"))) {
      indexCopy = files.findFirst().orElseThrow();
    }
    Files.delete(indexCopy);
    Process mk = new ProcessBuilder("mkfifo", indexCopy.toString()).start();
    assertThat(mk.waitFor()).isZero();
    try (Repository r =
        Repository.open(
            new LocalBlobStore(dir), Clock.systemUTC(), tmp.resolve("idx3"), pw, cache)) {
      assertThat(r.snapshots()).extracting(Manifest::id).containsExactlyElementsOf(ids(made));
      Manifest latest = r.resolve("latest", SnapshotFilter.ANY, "vda");
      assertThat(latest.id()).isEqualTo(made.get(1).id());
      r.restoreDisk(latest, "vda", tmp.resolve("out2"));
      assertThat(TestImages.sha256(tmp.resolve("out2"))).isEqualTo(TestImages.sha256(newer));
      VerifyReport v = r.verify(true, VerifyListener.NONE);
      assertThat(v.ok()).as("%s", v.damages()).isTrue();
    }
    assertThat(snapCopy).as("not ours to delete").isDirectory();
    Files.delete(snapCopy.resolve("junk"));
    Files.delete(snapCopy);

    // the repository's own copy damaged: still damage, named
    Path snap = dir.resolve("snapshots").resolve(made.get(0).id());
    byte[] b = Files.readAllBytes(snap);
    b[b.length / 2] ^= 0x10;
    Files.write(snap, b);
    Files.delete(copies.resolve("snapshots").resolve(made.get(0).id()));
    try (Repository r =
        Repository.open(
            new LocalBlobStore(dir), Clock.systemUTC(), tmp.resolve("idx2"), pw, cache)) {
      assertThatThrownBy(() -> r.resolve(made.get(0).id()))
          .isInstanceOf(RepositoryCorruptedException.class);
      assertThat(r.verify(false, VerifyListener.NONE).affectedSnapshots())
          .containsExactly(made.get(0).id());
    }
  }

  private static List<String> ids(List<Manifest> ms) {
    return ms.stream().map(Manifest::id).toList();
  }
}
