package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.EOFException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The behaviour every {@link BlobStore} must show; each implementation runs it by subclassing. */
public abstract class BlobStoreContractTest {
  @TempDir Path tmp;
  protected BlobStore store;

  /** A new, empty store. */
  protected abstract BlobStore newStore(Path tmp) throws Exception;

  @BeforeEach
  void setUp() throws Exception {
    store = newStore(tmp);
  }

  private static byte[] bytes(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void saveThenLoadReturnsTheSameBytes() throws Exception {
    byte[] data = bytes(100_000, 1);
    BlobName name = new BlobName(BlobType.PACK, "ab12cd");
    store.save(name, data);
    assertThat(store.load(name)).isEqualTo(data);
    assertThat(sized(store.stat(name))).contains(new BlobInfo(name, data.length));
  }

  /**
   * {@code saveNew} at once from several threads: exactly one saves, the others find it there (two
   * {@code init}s of one S3 prefix at once both succeeded, and the first password then no longer
   * opened the repository). Rounds with fresh names, started together.
   */
  @Test
  void saveNewAtOnceSavesExactlyOne() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      for (int round = 0; round < 10; round++) {
        BlobName name = new BlobName(BlobType.KEY, "new" + round);
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(4);
        List<Future<Boolean>> tries = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
          byte[] data = bytes(1000, round * 10 + t);
          tries.add(
              pool.submit(
                  () -> {
                    start.await();
                    try {
                      store.saveNew(name, data);
                      return true;
                    } catch (java.nio.file.FileAlreadyExistsException e) {
                      return false;
                    }
                  }));
        }
        int saved = 0;
        for (Future<Boolean> f : tries) {
          saved += f.get() ? 1 : 0;
        }
        assertThat(saved).as("round %d: saves that succeeded", round).isEqualTo(1);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void emptyBlobRoundTrips() throws Exception {
    BlobName name = new BlobName(BlobType.INDEX, "empty");
    store.save(name, new byte[0]);
    assertThat(store.load(name)).isEmpty();
  }

  @Test
  void loadRangeReturnsThoseBytesOnly() throws Exception {
    byte[] data = bytes(4096, 2);
    BlobName name = new BlobName(BlobType.PACK, "ff00");
    store.save(name, data);
    assertThat(store.load(name, 1000, 24))
        .isEqualTo(java.util.Arrays.copyOfRange(data, 1000, 1024));
    assertThat(store.load(name, 4096, 0)).isEmpty();
  }

  @Test
  void saveFromABufferHeapOrDirectStoresWhatRemainsAndLeavesItsPosition() throws Exception {
    byte[] data = bytes(300_000, 9);
    int i = 0;
    for (java.nio.ByteBuffer b :
        List.of(
            java.nio.ByteBuffer.allocate(300_100), java.nio.ByteBuffer.allocateDirect(300_100))) {
      b.position(50).put(data).flip().position(50);
      BlobName name = new BlobName(BlobType.PACK, "ab0" + i++);
      java.util.concurrent.atomic.AtomicInteger released =
          new java.util.concurrent.atomic.AtomicInteger();
      store.save(name, b, released::incrementAndGet);
      assertThat(released).hasValue(1);
      assertThat(b.position()).isEqualTo(50);
      assertThat(b.remaining()).isEqualTo(data.length);
      assertThat(store.load(name)).isEqualTo(data);
      assertThat(store.stat(name).orElseThrow().size()).isEqualTo(data.length);
    }
  }

  /**
   * A blob saved from a file (a large fixed index, streamed into a temporary file) holds the file's
   * first {@code length} bytes, read with positional reads: the channel's position is untouched.
   */
  @Test
  void saveFromAFileStoresItsFirstBytesAndLeavesItsPosition() throws Exception {
    byte[] data = new byte[(3 << 20) + 4321];
    new java.util.Random(3).nextBytes(data);
    Path file = tmp.resolve("source.bin");
    java.nio.file.Files.write(file, data);
    BlobName name = new BlobName(BlobType.FIXED_INDEX, "fromfile");
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file)) {
      ch.position(77);
      store.save(name, ch, data.length - 1000);
      assertThat(ch.position()).isEqualTo(77);
    }
    assertThat(store.load(name)).isEqualTo(java.util.Arrays.copyOf(data, data.length - 1000));
    assertThat(sized(store.stat(name))).contains(new BlobInfo(name, data.length - 1000));
  }

  @Test
  void loadRangePastTheEndFails() throws Exception {
    BlobName name = new BlobName(BlobType.PACK, "ff01");
    store.save(name, bytes(100, 3));
    assertThatThrownBy(() -> store.load(name, 90, 11)).isInstanceOf(EOFException.class);
  }

  @Test
  void loadRangeIntoABufferFillsWhatRemainsOfItHeapOrDirect() throws Exception {
    byte[] data = bytes(300_000, 4);
    BlobName name = new BlobName(BlobType.PACK, "ff02");
    store.save(name, data);
    for (java.nio.ByteBuffer b :
        List.of(
            java.nio.ByteBuffer.allocate(200_020), java.nio.ByteBuffer.allocateDirect(200_020))) {
      b.position(10).limit(200_010);
      store.load(name, 50_000, b);
      assertThat(b.position()).isEqualTo(200_010);
      byte[] got = new byte[200_000];
      b.position(10);
      b.get(got);
      assertThat(got).isEqualTo(java.util.Arrays.copyOfRange(data, 50_000, 250_000));
    }
    assertThatThrownBy(() -> store.load(name, 299_990, java.nio.ByteBuffer.allocateDirect(11)))
        .isInstanceOf(EOFException.class);
    BlobName missing = new BlobName(BlobType.PACK, "ff03");
    assertThatThrownBy(() -> store.load(missing, 0, java.nio.ByteBuffer.allocate(1)))
        .isInstanceOf(NoSuchFileException.class);
  }

  @Test
  void missingBlobIsNoSuchFileAndStatIsEmpty() throws Exception {
    BlobName name = new BlobName(BlobType.SNAPSHOT, "missing");
    assertThatThrownBy(() -> store.load(name)).isInstanceOf(NoSuchFileException.class);
    assertThatThrownBy(() -> store.load(name, 0, 1)).isInstanceOf(NoSuchFileException.class);
    assertThat(store.stat(name)).isEmpty();
  }

  @Test
  void saveReplacesExistingBlob() throws Exception {
    BlobName name = new BlobName(BlobType.INDEX, "again");
    store.save(name, bytes(10, 4));
    store.save(name, bytes(20, 5));
    assertThat(store.load(name)).isEqualTo(bytes(20, 5));
  }

  @Test
  void listReturnsExactlyTheBlobsOfOneType() throws Exception {
    List<BlobName> packs = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      BlobName n =
          new BlobName(
              BlobType.PACK, String.format(java.util.Locale.ROOT, "%02x%06d", i * 7 % 256, i));
      packs.add(n);
      store.save(n, bytes(10, i));
    }
    store.save(new BlobName(BlobType.INDEX, "i1"), bytes(5, 1));
    store.save(BlobName.CONFIG, bytes(5, 1));
    assertThat(store.list(BlobType.PACK)).containsExactlyInAnyOrderElementsOf(packs);
    assertThat(store.list(BlobType.INDEX)).containsExactly(new BlobName(BlobType.INDEX, "i1"));
    assertThat(store.list(BlobType.CONFIG)).containsExactly(BlobName.CONFIG);
    assertThat(store.list(BlobType.SNAPSHOT)).isEmpty();
  }

  @Test
  void listInfoGivesEveryBlobWithItsSize() throws Exception {
    BlobName a = new BlobName(BlobType.PACK, "aa01");
    BlobName b = new BlobName(BlobType.PACK, "bb02");
    store.save(a, bytes(1234, 7));
    store.save(b, new byte[0]);
    store.save(new BlobName(BlobType.INDEX, "i9"), bytes(5, 8));
    java.time.Instant before = java.time.Instant.now().minusSeconds(120);
    java.util.List<BlobInfo> infos = store.listInfo(BlobType.PACK);
    assertThat(infos.stream().map(i -> new BlobInfo(i.name(), i.size())))
        .containsExactlyInAnyOrder(new BlobInfo(a, 1234), new BlobInfo(b, 0));
    // every blob says when it was written (prune spares recent ones), by a clock close to ours
    assertThat(infos)
        .allSatisfy(
            i ->
                assertThat(i.modified())
                    .isAfter(before)
                    .isBefore(java.time.Instant.now().plusSeconds(120)));
    assertThat(store.stat(a).orElseThrow().modified()).isAfter(before);
    assertThat(store.listInfo(BlobType.SNAPSHOT)).isEmpty();
  }

  @Test
  void deleteRemovesAndIsIdempotent() throws Exception {
    BlobName name = new BlobName(BlobType.SNAPSHOT, "s1");
    store.save(name, bytes(10, 1));
    store.delete(name);
    store.delete(name);
    assertThat(store.stat(name)).isEmpty();
    assertThat(store.list(BlobType.SNAPSHOT)).isEmpty();
  }

  @Test
  void concurrentSavesOfDistinctNamesAllLand() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<?>> fs = new ArrayList<>();
      for (int i = 0; i < 32; i++) {
        int k = i;
        fs.add(
            pool.submit(
                () -> {
                  store.save(new BlobName(BlobType.PACK, "c" + k + "x"), bytes(1000, k));
                  return null;
                }));
      }
      for (Future<?> f : fs) {
        f.get();
      }
    } finally {
      pool.shutdown();
    }
    assertThat(store.list(BlobType.PACK)).hasSize(32);
    assertThat(store.load(new BlobName(BlobType.PACK, "c7x"))).isEqualTo(bytes(1000, 7));
  }

  /** The name and size of a blob's info, without its time: what a test can compare exactly. */
  static java.util.Optional<BlobInfo> sized(java.util.Optional<BlobInfo> info) {
    return info.map(i -> new BlobInfo(i.name(), i.size()));
  }
}
