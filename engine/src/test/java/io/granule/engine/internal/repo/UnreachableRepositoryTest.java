package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.cli.Cli;
import io.granule.engine.internal.cli.ExitCodes;
import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.blob.TransientBlobStoreException;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A repository that does not answer (past the retries) while verify or a restore reads it: they
 * stop with exit code 3 naming the outage, never report intact packs, indexes or snapshots as
 * damaged (exit 5, which sends users to forget intact snapshots).
 */
class UnreachableRepositoryTest {
  @TempDir Path tmp;

  @Test
  void anOutageIsNotDamage() throws Exception {
    Path dir = tmp.resolve("repo");
    byte[] data = TestImages.mixed(3 << 20, 21);
    Manifest m;
    try (Repository r =
            Repository.init(
                dir, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10));
        RawDiskImage d = RawDiskImage.open(TestImages.write(tmp.resolve("d.raw"), data))) {
      m =
          r.backup(
                  new BackupRequest(List.of(new NamedDisk("vda", d)), "h", null, null),
                  BackupListener.NONE)
              .manifest();
    }
    AtomicReference<BlobType> down = new AtomicReference<>();
    ForwardingBlobStore flaky =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          private void check(BlobName n) throws IOException {
            if (n.type() == down.get()) {
              throw new TransientBlobStoreException("HTTP 503 Service Unavailable", null);
            }
          }

          @Override
          public byte[] load(BlobName n) throws IOException {
            check(n);
            return super.load(n);
          }

          @Override
          public byte[] load(BlobName n, long offset, int length) throws IOException {
            check(n);
            return super.load(n, offset, length);
          }

          @Override
          public void load(BlobName n, long offset, ByteBuffer dst) throws IOException {
            check(n);
            super.load(n, offset, dst);
          }
        };
    try (Repository r = Repository.open(flaky, Clock.systemUTC(), tmp.resolve("cache"))) {
      for (BlobType t :
          List.of(BlobType.PACK, BlobType.FIXED_INDEX, BlobType.SNAPSHOT, BlobType.INDEX)) {
        down.set(t);
        assertThatThrownBy(() -> r.verify(true, VerifyListener.NONE))
            .as("verify with %s unreachable", t)
            .isInstanceOf(RepositoryUnreachableException.class)
            .hasMessageContaining("HTTP 503")
            .hasMessageContaining("nothing is known to be damaged")
            .satisfies(e -> assertThat(Cli.exitCode(e)).isEqualTo(ExitCodes.REPOSITORY));
      }
      // an unreadable manifest is not a damaged one: listings and 'latest' stop (they skipped it,
      // or refused 'latest' as if it were damaged)
      down.set(BlobType.SNAPSHOT);
      assertThatThrownBy(r::snapshots).isInstanceOf(RepositoryUnreachableException.class);
      assertThatThrownBy(() -> r.resolve("latest"))
          .isInstanceOf(RepositoryUnreachableException.class)
          .satisfies(e -> assertThat(Cli.exitCode(e)).isEqualTo(ExitCodes.REPOSITORY));
      down.set(BlobType.PACK);
      assertThatThrownBy(() -> r.restoreDisk(m, "vda", tmp.resolve("out")))
          .isInstanceOf(RepositoryUnreachableException.class)
          .satisfies(e -> assertThat(Cli.exitCode(e)).isEqualTo(ExitCodes.REPOSITORY));
      down.set(null);
      assertThat(r.verify(true, VerifyListener.NONE).ok()).isTrue();
    }

    // Packs no index lists (here: every one) whose trailers cannot be read for an outage: prune
    // stops before deleting anything (they were deleted as unreadable)
    try (var blobs = java.nio.file.Files.list(dir.resolve("index"))) {
      for (Path p : blobs.toList()) {
        java.nio.file.Files.delete(p);
      }
    }
    List<BlobName> packs = new LocalBlobStore(dir).list(BlobType.PACK);
    assertThat(packs).isNotEmpty();
    try (Repository r = Repository.open(flaky, Clock.systemUTC(), tmp.resolve("cache2"))) {
      r.lock(
          io.granule.engine.internal.repo.lock.LockKind.EXCLUSIVE,
          "prune",
          java.time.Duration.ZERO);
      down.set(BlobType.PACK);
      assertThatThrownBy(
              () ->
                  r.prune(
                      new io.granule.engine.internal.repo.maintenance.Pruner.Options(
                          false, 0.5, java.time.Duration.ZERO),
                      (phase, done, total) -> {}))
          .isInstanceOf(RepositoryUnreachableException.class);
    }
    assertThat(new LocalBlobStore(dir).list(BlobType.PACK))
        .containsExactlyInAnyOrderElementsOf(packs);
  }

  /**
   * A store that answers 404 for a manifest it has just listed (a lagging or misrouted store):
   * prune stops without deleting anything. It took the 404 for a snapshot forgotten meanwhile,
   * which cannot happen under its exclusive lock, and deleted the snapshot's data.
   */
  @Test
  void pruneStopsWhenAListedManifestIsNotFound() throws Exception {
    Path dir = tmp.resolve("repo404");
    byte[] a = TestImages.mixed(2 << 20, 31);
    byte[] b = TestImages.mixed(2 << 20, 32);
    List<Manifest> made = backUp(dir, a, b);
    String hidden = made.get(1).id();
    java.util.concurrent.atomic.AtomicBoolean lagging =
        new java.util.concurrent.atomic.AtomicBoolean(true);
    ForwardingBlobStore store =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          @Override
          public byte[] load(BlobName n) throws IOException {
            if (lagging.get() && n.type() == BlobType.SNAPSHOT && n.name().equals(hidden)) {
              throw new java.nio.file.NoSuchFileException(n.toString());
            }
            return super.load(n);
          }
        };
    List<BlobName> packs = new LocalBlobStore(dir).list(BlobType.PACK);
    try (Repository r = Repository.open(store, Clock.systemUTC(), tmp.resolve("cache404"))) {
      r.lock(
          io.granule.engine.internal.repo.lock.LockKind.EXCLUSIVE,
          "prune",
          java.time.Duration.ZERO);
      assertThatThrownBy(
              () ->
                  r.prune(
                      new io.granule.engine.internal.repo.maintenance.Pruner.Options(
                          false, 0.5, java.time.Duration.ZERO),
                      (phase, done, total) -> {}))
          .isInstanceOf(RepositoryUnreachableException.class)
          .hasMessageContaining("listed snapshots/" + hidden)
          .hasMessageContaining("prune stopped without changing anything");
      assertThat(new LocalBlobStore(dir).list(BlobType.PACK))
          .containsExactlyInAnyOrderElementsOf(packs);
      lagging.set(false);
      r.prune(
          new io.granule.engine.internal.repo.maintenance.Pruner.Options(
              false, 0.5, java.time.Duration.ZERO),
          (phase, done, total) -> {});
      for (int i = 0; i < 2; i++) {
        Path out = tmp.resolve("out404-" + i);
        r.restoreDisk(made.get(i), "vda", out);
        assertThat(java.nio.file.Files.readAllBytes(out)).isEqualTo(i == 0 ? a : b);
      }
    }
  }

  /** A repository at {@code dir} with a snapshot of each image, in order. */
  private List<Manifest> backUp(Path dir, byte[]... images) throws IOException {
    List<Manifest> made = new java.util.ArrayList<>();
    try (Repository r =
        Repository.init(
            dir, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10))) {
      for (byte[] data : images) {
        try (RawDiskImage d =
            RawDiskImage.open(TestImages.write(tmp.resolve("d" + made.size() + ".raw"), data))) {
          made.add(
              r.backup(
                      new BackupRequest(List.of(new NamedDisk("vda", d)), "h", null, null),
                      BackupListener.NONE)
                  .manifest());
        }
      }
    }
    return made;
  }

  /**
   * A store that lists a manifest and answers "not found" to every read and deletion of it (a file
   * readdir shows and stat misses): verify names it damaged, as no forget ran, and forget fails
   * saying it is still listed, and {@code latest}, which it may be, is refused. They took it for a
   * snapshot forgotten meanwhile: verify found no damage (exit 0), forget said "removed" and the
   * snapshot stayed (audit Q4); {@code latest} was the one before it (T-L2).
   */
  @Test
  void aManifestListedAndNeverFoundIsNotTakenForForgotten() throws Exception {
    Path dir = tmp.resolve("repoQ4");
    List<Manifest> made = backUp(dir, TestImages.mixed(2 << 20, 41), TestImages.mixed(2 << 20, 42));
    String hidden = made.get(1).id();
    java.util.concurrent.atomic.AtomicBoolean lying =
        new java.util.concurrent.atomic.AtomicBoolean(true);
    ForwardingBlobStore store =
        new ForwardingBlobStore(new LocalBlobStore(dir)) {
          private boolean hides(BlobName n) {
            return lying.get() && n.type() == BlobType.SNAPSHOT && n.name().equals(hidden);
          }

          @Override
          public byte[] load(BlobName n) throws IOException {
            if (hides(n)) {
              throw new java.nio.file.NoSuchFileException(n.toString());
            }
            return super.load(n);
          }

          @Override
          public void delete(BlobName n) throws IOException {
            if (!hides(n)) { // a deletion of what is not found is done
              super.delete(n);
            }
          }
        };
    try (Repository r = Repository.open(store, Clock.systemUTC(), tmp.resolve("cacheQ4"))) {
      var report = r.verify(false, VerifyListener.NONE);
      assertThat(report.ok()).isFalse();
      assertThat(report.snapshots()).isEqualTo(2);
      assertThat(report.affectedSnapshots()).containsExactly(hidden);
      assertThat(report.damages())
          .singleElement()
          .satisfies(
              d -> {
                assertThat(d.file()).isEqualTo("snapshots/" + hidden);
                assertThat(d.problems())
                    .singleElement(org.assertj.core.api.InstanceOfAssertFactories.STRING)
                    .contains("listed, then not found, and listed again");
              });
      assertThatThrownBy(() -> r.forgetSnapshots(List.of(hidden.substring(0, 8)), false))
          .isInstanceOf(RepositoryException.class)
          .hasMessageContaining("forget deleted 0 of 1 snapshots")
          .hasMessageContaining("still listed after their deletion: " + hidden)
          .satisfies(e -> assertThat(Cli.exitCode(e)).isEqualTo(ExitCodes.REPOSITORY));
      // nor is it taken for forgotten by a listing, or by 'latest', which it may be (T-L2)
      assertThat(r.snapshots()).extracting(Manifest::id).containsExactly(made.get(0).id());
      assertThatThrownBy(() -> r.resolve("latest"))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("snapshot " + hidden + " is listed, then not found, and listed")
          .hasMessageContaining("'latest' is refused");
      lying.set(false);
      assertThat(r.verify(false, VerifyListener.NONE).ok()).isTrue();
      assertThat(r.forgetSnapshots(List.of(hidden), false)).containsExactly(hidden);
      assertThat(r.snapshots()).extracting(Manifest::id).containsExactly(made.get(0).id());
    }
  }
}
