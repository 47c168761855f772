package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code verify --read-data} reads and decodes packs on several threads at once (one per core, up
 * to 2), and still reports them in list order, with the same damage a one-pack-at-a-time check
 * finds.
 */
class ParallelVerifyTest {
  @TempDir Path tmp;

  /**
   * Counts whole-pack loads (from offset 0) in flight; each takes 50 ms, so that loads on two
   * threads overlap.
   */
  static final class Counting extends ForwardingBlobStore {
    final AtomicInteger inFlight = new AtomicInteger();
    final AtomicInteger most = new AtomicInteger();

    Counting(Path dir) {
      super(new LocalBlobStore(dir));
    }

    @Override
    public void load(BlobName name, long offset, java.nio.ByteBuffer dst) throws IOException {
      if (name.type() != BlobType.PACK || offset != 0) { // a trailer's range loads
        super.load(name, offset, dst);
        return;
      }
      most.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
      try {
        Thread.sleep(50);
        super.load(name, offset, dst);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException(e);
      } finally {
        inFlight.decrementAndGet();
      }
    }
  }

  @Test
  void packsAreCheckedAtOnceAndReportedInOrderWithTheirDamage() throws Exception {
    if ("true".equals(System.getenv("CI"))) {
      assertThat(Verifier.PACK_THREADS).as("CI runs on 2 cores").isGreaterThanOrEqualTo(2);
    }
    assumeTrue(Verifier.PACK_THREADS >= 2, "one core: packs are checked one at a time");
    Path dir = tmp.resolve("repo");
    Counting store = new Counting(dir);
    Path img = TestImages.write(tmp.resolve("vm.raw"), TestImages.mixed(6 << 20, 5));
    try (Repository repo =
        Repository.init(
            store,
            RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(512 << 10),
            Clock.systemUTC(),
            tmp.resolve("cache"))) {
      try (RawDiskImage d = RawDiskImage.open(img)) {
        repo.backup(
            new BackupRequest(List.of(new NamedDisk("vda", d)), "h", null, null),
            BackupListener.NONE);
      }
      List<BlobName> packs = store.list(BlobType.PACK);
      assertThat(packs.size()).as("packs to check").isGreaterThanOrEqualTo(4);
      BlobName damaged = packs.get(packs.size() / 2);
      try (FileChannel ch =
          FileChannel.open(
              new LocalBlobStore(dir).path(damaged),
              StandardOpenOption.READ,
              StandardOpenOption.WRITE)) {
        ch.truncate(ch.size() / 2);
      }

      List<String> order = new CopyOnWriteArrayList<>();
      VerifyReport r =
          repo.verify(
              true,
              (file, done, total) -> {
                if (file.startsWith("data/")) {
                  order.add(file);
                }
              });
      assertThat(store.most.get()).as("pack loads in flight at once").isGreaterThanOrEqualTo(2);
      assertThat(order).isEqualTo(packs.stream().map(BlobName::toString).toList());
      assertThat(r.ok()).isFalse();
      assertThat(r.damages())
          .anySatisfy(dmg -> assertThat(dmg.file()).isEqualTo(damaged.toString()));
      assertThat(r.damages().stream().map(Damage::file).filter(f -> f.startsWith("data/")))
          .as("damaged packs")
          .containsExactly(damaged.toString());
    }
  }
}
