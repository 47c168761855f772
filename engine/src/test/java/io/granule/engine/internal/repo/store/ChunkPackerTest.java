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
}
