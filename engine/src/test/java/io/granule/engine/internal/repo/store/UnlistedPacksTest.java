package io.granule.engine.internal.repo.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link UnlistedPacks#checkRecords} decodes each record of a pack once at most, whatever list of
 * entries it is handed: entries that repeat or overlap one record are refused before any decode
 * (audit12 M1: a trailer of N copies of one entry cost N decodes of that record).
 */
class UnlistedPacksTest {
  @TempDir Path tmp;
  private final ChunkHasher hasher = ChunkHasher.sha256();

  /** The identity codec, counting its decodes. */
  private static final class CountingCodec implements BlobCodec {
    final AtomicInteger decodes = new AtomicInteger();

    @Override
    public byte[] encode(BlobName name, byte[] plain) {
      return BlobCodec.IDENTITY.encode(name, plain);
    }

    @Override
    public byte[] decode(BlobName name, byte[] stored) {
      decodes.incrementAndGet();
      return BlobCodec.IDENTITY.decode(name, stored);
    }

    @Override
    public int encodedLength(int plainLength) {
      return plainLength;
    }
  }

  /** One pack of {@code n} compressible chunks written by the packer, on disk. */
  private BlobName pack(LocalBlobStore store, int n) throws Exception {
    try (ChunkIndex index = new ChunkIndex(tmp, 0);
        ChunkCompressor c = new ChunkCompressor(1)) {
      ChunkPacker packer = new ChunkPacker(store, BlobCodec.IDENTITY, index, 64 << 20, 16, p -> {});
      Random random = new Random(3);
      for (int i = 0; i < n; i++) {
        byte[] b = new byte[20_000 + 1000 * i];
        for (int j = 0; j < b.length; j += 64) {
          b[j] = (byte) random.nextInt();
        }
        ChunkId id = hasher.hash(b, 0, b.length);
        assertThat(packer.claim(id)).isTrue();
        packer.add(id, c.compress(b, 0, b.length), b.length);
      }
      packer.flush();
    }
    List<BlobName> packs = store.list(BlobType.PACK);
    assertThat(packs).hasSize(1);
    return packs.get(0);
  }

  @Test
  void eachRecordOfAGenuinePackIsDecodedOnce() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("r"));
    BlobName p = pack(store, 12);
    CountingCodec codec = new CountingCodec();
    List<PackEntry> entries = PackReader.loadTrailer(store, p);
    ChunkReader reader = new ChunkReader(store, codec, null, hasher);
    assertThat(UnlistedPacks.checkRecords(store, p, entries, reader, null)).isEqualTo(entries);
    assertThat(codec.decodes.get()).isEqualTo(12);
  }

  @Test
  void entriesRepeatingOneRecordAreRefusedBeforeAnyDecode() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("r"));
    BlobName p = pack(store, 12);
    List<PackEntry> entries = PackReader.loadTrailer(store, p);
    PackEntry largest =
        entries.stream().max(Comparator.comparingInt(PackEntry::storedLength)).orElseThrow();
    CountingCodec codec = new CountingCodec();
    ChunkReader reader = new ChunkReader(store, codec, null, hasher);
    List<PackEntry> repeated = Collections.nCopies(5000, largest);
    assertThatThrownBy(() -> UnlistedPacks.checkRecords(store, p, repeated, reader, null))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("overlaps");
    // also when told of bad records one by one, as prune asks
    List<PackEntry> told = new ArrayList<>();
    assertThatThrownBy(
            () -> UnlistedPacks.checkRecords(store, p, repeated, reader, (e, ex) -> told.add(e)))
        .isInstanceOf(RepositoryCorruptedException.class);
    // overlapping, not equal: a second entry starting inside the largest record
    PackEntry inside =
        new PackEntry(
            entries.get(0).id(),
            largest.offset() + 1,
            largest.storedLength() - 1,
            largest.rawLength(),
            largest.flags(),
            largest.crc());
    assertThatThrownBy(
            () -> UnlistedPacks.checkRecords(store, p, List.of(largest, inside), reader, null))
        .isInstanceOf(RepositoryCorruptedException.class);
    assertThat(codec.decodes.get()).as("no record decoded").isZero();
    assertThat(told).isEmpty();
  }
}
