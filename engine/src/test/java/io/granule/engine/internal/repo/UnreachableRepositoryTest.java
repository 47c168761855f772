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
                      new io.granule.engine.internal.repo.maintenance.Pruner.Options(false, 0.5),
                      (phase, done, total) -> {}))
          .isInstanceOf(RepositoryUnreachableException.class);
    }
    assertThat(new LocalBlobStore(dir).list(BlobType.PACK))
        .containsExactlyInAnyOrderElementsOf(packs);
  }
}
