package io.granule.engine.internal.repo.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.FaultyBlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChunkPackerTest {
  @TempDir Path tmp;
  private final ChunkHasher hasher = ChunkHasher.sha256();

  private byte[] chunk(long seed) {
    byte[] b = new byte[10_000];
    new Random(seed).nextBytes(b);
    return b;
  }

  private static java.nio.ByteBuffer direct(byte[] b) {
    return java.nio.ByteBuffer.allocateDirect(b.length).put(b).flip();
  }

  private ChunkId id(byte[] b) {
    return hasher.hash(b, 0, b.length);
  }

  @Test
  void claimsEachNewChunkOnceAndReadsItBackAfterFlush() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("r"));
    java.util.Set<io.granule.engine.internal.repo.PackId> indexed = new java.util.HashSet<>();
    try (ChunkIndex index = new ChunkIndex(tmp, 0);
        ChunkCompressor c = new ChunkCompressor(1)) {
      ChunkPacker packer =
          new ChunkPacker(store, BlobCodec.IDENTITY, index, 25_000, 2, indexed::add);
      for (int i = 0; i < 7; i++) {
        byte[] b = chunk(i);
        assertThat(packer.claim(id(b))).isTrue();
        assertThat(packer.claim(id(b))).as("in flight").isFalse();
        packer.add(id(b), c.compress(b, 0, b.length), b.length);
        assertThat(packer.claim(id(b))).as("indexed").isFalse();
      }
      assertThat(store.list(BlobType.PACK)).as("3 chunks of 10 kB fill a pack").hasSize(2);
      assertThat(store.list(BlobType.INDEX)).as("one index per 2 packs").hasSize(1);
      packer.flush();
      assertThat(store.list(BlobType.PACK)).hasSize(3);
      assertThat(store.list(BlobType.INDEX)).hasSize(2);
      assertThat(indexed).hasSize(3);
      ChunkReader reader = new ChunkReader(store, BlobCodec.IDENTITY, index, hasher);
      assertThat(reader.read(id(chunk(6)))).isEqualTo(chunk(6));
    }
  }

  @Test
  void afterAFailedSaveEveryCallReportsThatFailure() throws Exception {
    FaultyBlobStore store = new FaultyBlobStore(new LocalBlobStore(tmp.resolve("r")), 1);
    try (ChunkIndex index = new ChunkIndex(tmp, 0);
        ChunkCompressor c = new ChunkCompressor(1)) {
      ChunkPacker packer = new ChunkPacker(store, BlobCodec.IDENTITY, index, 5_000, 16, p -> {});
      byte[] a = chunk(1);
      packer.claim(id(a));
      Throwable first =
          org.assertj.core.api.Assertions.catchThrowable(
              () -> packer.add(id(a), c.compress(a, 0, a.length), a.length));
      assertThat(first).hasMessageStartingWith("injected fault: save #1");
      assertThat(store.fired()).isTrue();
      byte[] b = chunk(2);
      packer.claim(id(b));
      assertThatThrownBy(() -> packer.add(id(b), c.compress(b, 0, b.length), b.length))
          .isSameAs(first);
      assertThatThrownBy(packer::flush).isSameAs(first);
    }
  }

  @Test
  void lanesOfTwoThreadsWithBackgroundSavesStoreEveryChunkOnce() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("r"));
    java.util.Set<io.granule.engine.internal.repo.PackId> indexed =
        java.util.concurrent.ConcurrentHashMap.newKeySet();
    byte[] key = new byte[32];
    new Random(3).nextBytes(key);
    BlobCodec codec = new io.granule.engine.internal.repo.crypto.AesGcmCodec(key);
    int chunks = 400;
    try (ChunkIndex index = new ChunkIndex(tmp, 0);
        ChunkPacker packer = new ChunkPacker(store, codec, index, 100_000, 3, indexed::add, 2)) {
      java.util.concurrent.atomic.AtomicInteger stored =
          new java.util.concurrent.atomic.AtomicInteger();
      Runnable writer =
          () -> {
            ChunkPacker.Lane lane = packer.lane();
            ChunkHasher h = hasher.copy(); // one per thread
            try (ChunkCompressor c = new ChunkCompressor(1)) {
              // both threads offer every chunk: each is stored once, by whoever claims it first
              for (int i = 0; i < chunks; i++) {
                byte[] b = i % 2 == 0 ? chunk(i) : new byte[10_000];
                if (i % 2 != 0) {
                  java.util.Arrays.fill(b, (byte) i); // compressible
                }
                ChunkId id = h.hash(b, 0, b.length);
                if (packer.claim(id)) {
                  lane.add(id, direct(b), c);
                  stored.incrementAndGet();
                }
              }
            } catch (java.io.IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          };
      Thread t1 = new Thread(writer);
      Thread t2 = new Thread(writer);
      t1.start();
      t2.start();
      t1.join();
      t2.join();
      packer.flush();
      // 200 random chunks plus the odd fills (their byte values repeat every 256)
      java.util.Set<ChunkId> distinct = new java.util.HashSet<>();
      for (int i = 0; i < chunks; i++) {
        byte[] b = i % 2 == 0 ? chunk(i) : new byte[10_000];
        if (i % 2 != 0) {
          java.util.Arrays.fill(b, (byte) i);
        }
        distinct.add(id(b));
      }
      assertThat(stored.get()).isEqualTo(distinct.size());
      assertThat(index.size()).isEqualTo(distinct.size());
      assertThat(indexed).hasSize(store.list(BlobType.PACK).size());
      assertThat(packer.packsWritten()).isEqualTo(store.list(BlobType.PACK).size());
      ChunkReader reader = new ChunkReader(store, codec, index, hasher);
      for (int i = 0; i < chunks; i += 2) {
        assertThat(reader.read(id(chunk(i)))).isEqualTo(chunk(i));
      }
      // the index blobs list every chunk: a fresh index rebuilt from them finds them all
      long listed = 0;
      for (var n : store.list(BlobType.INDEX)) {
        listed +=
            io.granule.engine.internal.repo.index.IndexReader.read(
                    n, codec.decode(n, store.load(n)))
                .size();
      }
      assertThat(listed).isEqualTo(distinct.size());
    }
  }

  @Test
  void aFailedBackgroundSaveIsReportedByTheNextAddAndByFlush() throws Exception {
    FaultyBlobStore store = new FaultyBlobStore(new LocalBlobStore(tmp.resolve("r")), 2);
    try (ChunkIndex index = new ChunkIndex(tmp, 0);
        ChunkCompressor c = new ChunkCompressor(1);
        ChunkPacker packer =
            new ChunkPacker(store, BlobCodec.IDENTITY, index, 15_000, 16, p -> {}, 1)) {
      ChunkPacker.Lane lane = packer.lane();
      Throwable failure = null;
      for (int i = 0; i < 50 && failure == null; i++) {
        byte[] b = chunk(i);
        packer.claim(id(b));
        try {
          lane.add(id(b), direct(b), c);
        } catch (java.io.IOException e) {
          failure = e;
        }
      }
      assertThat(failure).as("a later add reports the failed save").isNotNull();
      assertThat(failure).hasMessageStartingWith("injected fault: save #2");
      Throwable first = failure;
      assertThatThrownBy(packer::flush).isSameAs(first);
      assertThat(store.list(BlobType.INDEX))
          .as("no index lists a pack that was not saved")
          .isEmpty();
    }
  }
}
