package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.RestoreReadAhead.Range;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RestoreReadAheadTest {
  @TempDir Path tmp;

  private static final PackId A = new PackId(1, 1);
  private static final PackId B = new PackId(2, 0);

  private static ChunkLocation at(PackId pack, long offset, int stored) {
    return new ChunkLocation(pack, offset, stored, 524288, 0);
  }

  @Test
  void recordsOfOnePackCloseTogetherBecomeOneRangeWhateverTheirOrder() {
    // two writers' lanes interleave their packs along the disk: A, B, A, B, ...
    List<ChunkLocation> locations =
        List.of(
            at(A, 8, 1000),
            at(B, 8, 500),
            at(A, 1008, 1000),
            at(B, 508, 500),
            at(A, 2008 + RestoreReadAhead.GAP, 100));

    assertThat(RestoreReadAhead.ranges(locations))
        .containsExactly(
            new Range(A, 8, 2000 + RestoreReadAhead.GAP + 100, 2100), new Range(B, 8, 1000, 1000));
  }

  @Test
  void aGapWiderThanTheLimitOrAFullRangeStartsANewRange() {
    int big = (int) (RestoreReadAhead.MAX_RANGE / 2);
    long far = 100 + RestoreReadAhead.GAP + 1;
    List<ChunkLocation> locations =
        List.of(
            at(A, 0, 100), at(A, far, 100), at(B, 0, big), at(B, big, big), at(B, 2L * big, 10));

    assertThat(RestoreReadAhead.ranges(locations))
        .containsExactly(
            new Range(A, 0, 100, 100),
            new Range(A, far, 100, 100),
            new Range(B, 0, 2L * big, 2L * big),
            new Range(B, 2L * big, 10, 10));
  }

  @Test
  void theSameRecordTwiceIsReadOnceAndCountedAsLoadedTwice() {
    // duplicated regions of a disk point at the same record, which the writers load twice
    assertThat(RestoreReadAhead.ranges(List.of(at(A, 64, 4096), at(A, 64, 4096))))
        .containsExactly(new Range(A, 64, 4096, 8192));
  }

  /** A local store that records prefetches and pack loads; pack loads take a millisecond. */
  static final class Recording implements BlobStore {
    final LocalBlobStore d;
    final List<long[]> prefetched = new CopyOnWriteArrayList<>();
    final List<long[]> loaded = new CopyOnWriteArrayList<>();
    volatile boolean failPrefetch;
    volatile boolean gaveUp;

    Recording(Path dir) {
      d = new LocalBlobStore(dir);
    }

    private static long key(BlobName n) {
      return n.name().hashCode();
    }

    boolean covered(long[] l) {
      return prefetched.stream().anyMatch(p -> p[0] == l[0] && p[1] <= l[1] && l[2] <= p[2]);
    }

    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      d.save(name, data);
    }

    @Override
    public void prefetch(BlobName name, long offset, long length, long useful) {
      if (failPrefetch) {
        throw new IllegalStateException("prefetch failed");
      }
      prefetched.add(new long[] {key(name), offset, offset + length});
      d.prefetch(name, offset, length, useful);
    }

    @Override
    public byte[] load(BlobName name) throws IOException {
      return d.load(name);
    }

    @Override
    public byte[] load(BlobName name, long offset, int length) throws IOException {
      if (name.type() == BlobType.PACK) {
        long[] l = {key(name), offset, offset + length};
        loaded.add(l);
        // Wait (up to 5 s) for the read-ahead to ask for this record first: on a loaded machine its
        // thread may not have run yet, and it skips what the writers have read already. A writer
        // waiting here holds the read-ahead's lower bound at this record, so a read-ahead that
        // works always gets to it; one that never does fails the test below.
        long deadline = System.nanoTime() + 5_000_000_000L;
        try {
          while (!failPrefetch && !gaveUp && !covered(l)) {
            if (System.nanoTime() > deadline) {
              gaveUp = true; // the test fails below; the other loads need not wait
            }
            Thread.sleep(1);
          }
          Thread.sleep(1);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      return d.load(name, offset, length);
    }

    @Override
    public Optional<BlobInfo> stat(BlobName name) throws IOException {
      return d.stat(name);
    }

    @Override
    public List<BlobName> list(BlobType type) throws IOException {
      return d.list(type);
    }

    @Override
    public void delete(BlobName name) throws IOException {
      d.delete(name);
    }

    @Override
    public String location() {
      return d.location();
    }
  }

  private byte[] restoreThrough(Recording store) throws Exception {
    byte[] data = TestImages.mixed(6 << 20, 11);
    Path img = TestImages.write(tmp.resolve("vm.raw"), data);
    Path out = tmp.resolve("out-" + System.nanoTime() + ".raw");
    try (Repository repo =
        Repository.init(
            store,
            RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(1 << 20),
            Clock.systemUTC(),
            tmp.resolve("cache"))) {
      Manifest m;
      try (RawDiskImage d = RawDiskImage.open(img)) {
        m =
            repo.backup(
                    new BackupRequest(List.of(new NamedDisk("vda", d)), "h", null, null),
                    BackupListener.NONE)
                .manifest();
      }
      try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
        DiskRestorer.restore(disk, out, 4, false, 0, DiskRestorer.WRITEBACK, RestoreListener.NONE);
      }
    }
    assertThat(Files.readAllBytes(out)).isEqualTo(data);
    return data;
  }

  @Test
  void aRestoreReadsItsPacksAheadInMergedRangesThatCoverEveryRecordItLoads() throws Exception {
    Recording store = new Recording(tmp.resolve("repo"));
    restoreThrough(store);

    assertThat(store.loaded).isNotEmpty();
    assertThat(store.prefetched.size())
        .as("ranges merge records: fewer prefetches than loads")
        .isLessThan(store.loaded.size());
    for (long[] l : store.loaded) {
      assertThat(store.covered(l))
          .as("a prefetched range covers the load of [%d, %d)", l[1], l[2])
          .isTrue();
    }
  }

  @Test
  void aFailingPrefetchDoesNotFailTheRestore() throws Exception {
    Recording store = new Recording(tmp.resolve("repo"));
    store.failPrefetch = true;
    restoreThrough(store);
    assertThat(store.loaded).isNotEmpty();
  }
}
