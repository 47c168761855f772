package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A store's prefetch: a hinted range is fetched with one request and the loads inside it are served
 * from memory, within a memory budget; everything else behaves as the store underneath.
 */
class PrefetchingBlobStoreTest extends BlobStoreContractTest {
  private static final BlobName PACK = new BlobName(BlobType.PACK, "ab".repeat(32));

  private Counting counting;

  @Override
  protected BlobStore newStore(Path tmp) {
    counting = new Counting(new LocalBlobStore(tmp.resolve("repo")));
    return new PrefetchingBlobStore(
        counting, 1 << 20, 512 << 10, 2); // 1 MiB, ranges of 512 KiB at most
  }

  private PrefetchingBlobStore prefetching() {
    return (PrefetchingBlobStore) store;
  }

  /** Counts the ranged loads that reach the store underneath. */
  static final class Counting implements BlobStore {
    final BlobStore d;
    final AtomicInteger rangedLoads = new AtomicInteger();

    @Override
    public void saveNew(BlobName name, byte[] data) throws IOException {
      d.saveNew(name, data);
    }

    Counting(BlobStore d) {
      this.d = d;
    }

    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      d.save(name, data);
    }

    @Override
    public byte[] load(BlobName name) throws IOException {
      return d.load(name);
    }

    @Override
    public byte[] load(BlobName name, long offset, int length) throws IOException {
      rangedLoads.incrementAndGet();
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

  private byte[] pack(int size) throws IOException {
    byte[] data = new byte[size];
    new Random(size).nextBytes(data);
    store.save(PACK, data);
    return data;
  }

  private static byte[] slice(byte[] b, int from, int length) {
    return Arrays.copyOfRange(b, from, from + length);
  }

  @Test
  void loadsInsideAHintedRangeCostOneRequestAndTheRangeGoesWhenUsedUp() throws Exception {
    byte[] data = pack(300_000);
    // records of 40 000 bytes at 1000, 41 000 and 100 000 (a gap before the last): 120 000 useful
    store.prefetch(PACK, 1000, 139_000, 120_000);

    ByteBuffer dst = ByteBuffer.allocateDirect(40_000);
    store.load(PACK, 1000, dst);
    assertThat(copy(dst.flip())).isEqualTo(slice(data, 1000, 40_000));
    assertThat(store.load(PACK, 41_000, 40_000)).isEqualTo(slice(data, 41_000, 40_000));
    assertThat(prefetching().heldBytes()).isEqualTo(139_000);
    assertThat(store.load(PACK, 100_000, 40_000)).isEqualTo(slice(data, 100_000, 40_000));

    assertThat(counting.rangedLoads).hasValue(1);
    assertThat(prefetching().servedBytes()).isEqualTo(120_000);
    assertThat(prefetching().heldBytes()).isZero();
    // once let go, a load goes to the store again
    assertThat(store.load(PACK, 1000, 10)).isEqualTo(slice(data, 1000, 10));
    assertThat(counting.rangedLoads).hasValue(2);
  }

  private static byte[] copy(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    return out;
  }

  @Test
  void loadsOutsideTheRangeOrAcrossItsEndGoToTheStore() throws Exception {
    byte[] data = pack(100_000);
    store.prefetch(PACK, 10_000, 20_000, 20_000);
    assertThat(store.load(PACK, 25_000, 10_000)).isEqualTo(slice(data, 25_000, 10_000));
    assertThat(store.load(PACK, 50_000, 10)).isEqualTo(slice(data, 50_000, 10));
    // inside: waits for the range's own request
    assertThat(store.load(PACK, 10_000, 10)).isEqualTo(slice(data, 10_000, 10));
    assertThat(counting.rangedLoads).hasValue(3);
    assertThat(prefetching().heldBytes()).isEqualTo(20_000);
  }

  @Test
  void heldBytesStayWithinTheBudgetAndTheOldestUnusedRangeIsEvicted() throws Exception {
    byte[] data = pack(3 << 20);
    long start = System.nanoTime();
    // 5 ranges of 400 000 bytes in 1 MiB: 2 fit; nothing is loaded from them
    for (int i = 0; i < 5; i++) {
      store.prefetch(PACK, i * 400_000L, 400_000, 400_000);
      assertThat(prefetching().heldBytes()).isLessThanOrEqualTo(1 << 20);
    }
    assertThat(System.nanoTime() - start)
        .as("each hint past the budget waited for room before evicting")
        .isGreaterThanOrEqualTo(3 * PrefetchingBlobStore.WAIT_MILLIS * 1_000_000L);
    assertThat(prefetching().evictions()).isEqualTo(3);
    assertThat(prefetching().arenaBytes()).as("one arena, reused").isEqualTo(1 << 20);
    // the last two are held; the first was evicted and is loaded from the store
    for (int i = 0; i < 500 && prefetching().fetchedBytes() < 5 * 400_000L; i++) {
      Thread.sleep(10); // evicted ranges' requests complete too
    }
    int before = counting.rangedLoads.get();
    assertThat(before).isEqualTo(5);
    assertThat(store.load(PACK, 1_600_000, 1000)).isEqualTo(slice(data, 1_600_000, 1000));
    assertThat(counting.rangedLoads).hasValue(before);
    assertThat(store.load(PACK, 0, 1000)).isEqualTo(slice(data, 0, 1000));
    assertThat(counting.rangedLoads).hasValue(before + 1);
  }

  @Test
  void rangesTakeTheirLengthOfTheBudgetAndTheRingWrapsAround() throws Exception {
    byte[] data = pack(3 << 20);
    // 1 MiB holds ten ranges of 100 000 bytes at once (a slab per range would hold two)
    for (int i = 0; i < 10; i++) {
      store.prefetch(PACK, i * 100_000L, 100_000, 100_000);
    }
    assertThat(prefetching().heldBytes()).isEqualTo(1_000_000);
    // used in order, each range gives its room back, and later ranges wrap to the arena's start
    for (int i = 0; i < 25; i++) {
      if (i + 10 < 25) {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
          int next = i + 10;
          Future<?> hint =
              pool.submit(() -> store.prefetch(PACK, next * 100_000L, 100_000, 100_000));
          // two loads of 50 000 use range i up; the hint may wait for its room until then
          assertThat(store.load(PACK, i * 100_000L, 50_000))
              .isEqualTo(slice(data, i * 100_000, 50_000));
          assertThat(store.load(PACK, i * 100_000L + 50_000, 50_000))
              .isEqualTo(slice(data, i * 100_000 + 50_000, 50_000));
          hint.get();
        } finally {
          pool.shutdownNow();
        }
      } else {
        assertThat(store.load(PACK, i * 100_000L, 100_000))
            .isEqualTo(slice(data, i * 100_000, 100_000));
      }
    }
    assertThat(counting.rangedLoads).as("one request per range, none per load").hasValue(25);
    assertThat(prefetching().evictions()).isZero();
    assertThat(prefetching().heldBytes()).isZero();
    assertThat(prefetching().arenaBytes()).isEqualTo(1 << 20);
  }

  @Test
  void aHintWaitsForRoomThatLoadsFree() throws Exception {
    byte[] data = pack(2 << 20);
    store.prefetch(PACK, 0, 500_000, 500_000);
    store.prefetch(PACK, 500_000, 500_000, 500_000);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<?> third = pool.submit(() -> store.prefetch(PACK, 1_000_000, 500_000, 500_000));
      Thread.sleep(100);
      assertThat(third).isNotDone();
      assertThat(store.load(PACK, 0, 500_000)).isEqualTo(slice(data, 0, 500_000));
      third.get();
    } finally {
      pool.shutdownNow();
    }
    assertThat(prefetching().evictions()).isZero();
    assertThat(store.load(PACK, 1_200_000, 300_000)).isEqualTo(slice(data, 1_200_000, 300_000));
    assertThat(counting.rangedLoads).as("one request per range, none per load").hasValue(3);
  }

  @Test
  void loadsMadeBeforeTheHintAreNotWaitedFor() throws Exception {
    byte[] data = pack(100_000);
    // the writers were ahead of the read-ahead: they loaded these records on their own
    assertThat(store.load(PACK, 0, 1000)).isEqualTo(slice(data, 0, 1000));
    assertThat(store.load(PACK, 5000, 1000)).isEqualTo(slice(data, 5000, 1000));
    int before = counting.rangedLoads.get();

    store.prefetch(PACK, 0, 1000, 1000); // all loaded already: not fetched
    assertThat(prefetching().heldBytes()).isZero();
    store.prefetch(PACK, 5000, 3000, 2000); // half loaded: held until the other half is
    assertThat(store.load(PACK, 7000, 1000)).isEqualTo(slice(data, 7000, 1000));
    assertThat(prefetching().heldBytes()).isZero();
    assertThat(counting.rangedLoads).hasValue(before + 1);
    assertThat(prefetching().evictions()).isZero();
  }

  @Test
  void aFailedFetchIsDroppedAndTheLoadReportsTheStoresError() throws Exception {
    BlobName missing = new BlobName(BlobType.PACK, "cd".repeat(32));
    store.prefetch(missing, 0, 1000, 1000);
    assertThatThrownBy(() -> store.load(missing, 0, 100)).isInstanceOf(NoSuchFileException.class);
    for (int i = 0; i < 100 && prefetching().heldBytes() > 0; i++) {
      Thread.sleep(10);
    }
    assertThat(prefetching().heldBytes()).isZero();
    // nonsense hints are ignored
    store.prefetch(PACK, -1, 10, 10);
    store.prefetch(PACK, 0, 1 << 20, 1 << 20); // longer than the longest range
    store.prefetch(PACK, 0, 10, 0);
    assertThat(prefetching().heldBytes()).isZero();
  }

  @Test
  void writersLoadingChunksWhileTheReadAheadHintsGetTheRightBytes() throws Exception {
    int chunk = 10_000;
    int chunks = 400;
    byte[] data = pack(chunk * chunks);
    PrefetchingBlobStore store = new PrefetchingBlobStore(counting, 8 * (256 << 10), 256 << 10, 2);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      // the read-ahead: ranges of 20 chunks, in order
      Future<?> ahead =
          pool.submit(
              () -> {
                for (int c = 0; c < chunks; c += 20) {
                  store.prefetch(PACK, (long) c * chunk, 20L * chunk, 20L * chunk);
                }
                return null;
              });
      // three writers, each chunk taking a while to write, as a restore's writers do, starting
      // once the read-ahead has begun
      for (int i = 0; i < 500 && store.heldBytes() == 0; i++) {
        Thread.sleep(1);
      }
      List<Future<?>> writers = new ArrayList<>();
      for (int w = 0; w < 3; w++) {
        int first = w;
        writers.add(
            pool.submit(
                () -> {
                  // runs of 20 chunks handed out in turn, as a raw restore hands out runs
                  for (int run = first; run * 20 < chunks; run += 3) {
                    for (int c = run * 20; c < run * 20 + 20; c++) {
                      ByteBuffer dst = ByteBuffer.allocate(chunk);
                      store.load(PACK, (long) c * chunk, dst);
                      assertThat(dst.array()).isEqualTo(slice(data, c * chunk, chunk));
                      java.util.concurrent.locks.LockSupport.parkNanos(200_000);
                    }
                  }
                  return null;
                }));
      }
      for (Future<?> f : writers) {
        f.get();
      }
      ahead.get();
    } finally {
      pool.shutdownNow();
    }
    // Right bytes, no deadlock, memory bounded: the point here. How many requests it saves depends
    // on the scheduling (about 20 for 400 chunks on an idle machine, 160 on a loaded one, where
    // writers overtake the read-ahead); the exact counts are the single-threaded tests' to check.
    assertThat(counting.rangedLoads.get()).as("requests for %d chunks", chunks).isLessThan(chunks);
    assertThat(store.heldBytes()).isLessThanOrEqualTo(8 * (256 << 10));
    assertThat(store.arenaBytes()).isEqualTo(8 * (256 << 10));
  }
}
