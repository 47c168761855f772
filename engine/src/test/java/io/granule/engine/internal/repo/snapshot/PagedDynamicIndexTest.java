package io.granule.engine.internal.repo.snapshot;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.AesGcmCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A dynamic index of more chunks than the heap keeps (a stream of over ~200 GiB) moves to temporary
 * files as it grows, and is written and read a step at a time: the same blob as the array path,
 * plain and encrypted.
 */
class PagedDynamicIndexTest {
  @TempDir Path tmp;
  private Path temporaries;

  /** 300 000 chunks: 12 MB of entries, over the heap's limit. */
  private static final int N = 300_000;

  @BeforeEach
  void temporaries() throws Exception {
    temporaries = Files.createDirectories(tmp.resolve("temporaries"));
    System.setProperty("granule.tmpdir", temporaries.toString());
  }

  @AfterEach
  void clearProperty() {
    System.clearProperty("granule.tmpdir");
  }

  private static ChunkId id(long seed) {
    return seed == 0 ? ChunkId.ZERO : new ChunkId(seed, ~seed, seed * 7, seed * 0x9E3779B9L);
  }

  @Test
  void aLongStreamsIndexMovesToTemporaryFilesAndRoundTrips() throws Exception {
    byte[] key = new byte[32];
    new Random(3).nextBytes(key);
    int[] lengths = new int[N];
    Random r = new Random(8);
    for (BlobCodec codec : new BlobCodec[] {BlobCodec.IDENTITY, new AesGcmCodec(key)}) {
      LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo-" + codec.transforms()));
      BlobName name = new BlobName(BlobType.DYNAMIC_INDEX, "long" + codec.transforms());
      byte[] whole;
      long size = 0;
      try (DynamicIndex d = new DynamicIndex(1000)) {
        for (int p = 0; p < N; p++) {
          lengths[p] = 1 + r.nextInt(4 << 20);
          assertThat(d.append(lengths[p])).isEqualTo(p);
          size += lengths[p];
          if (p == 999) {
            assertThat(d.paged()).isFalse();
          }
        }
        assertThat(d.paged()).as("moved to files past 1000 chunks").isTrue();
        for (int p = N - 1; p >= 0; p--) { // ids set in any order, as workers do
          d.set(p, id(p % 5 == 0 ? 0 : p));
        }
        assertThat(d.size()).isEqualTo(size);
        DynamicIndexWriter.save(store, codec, name, d);
        whole = DynamicIndexWriter.write(d);
      }
      assertThat(codec.decode(name, store.load(name))).isEqualTo(whole);
      try (DynamicIndex back = DynamicIndexReader.load(store, codec, name)) {
        assertThat(back.paged()).isTrue();
        assertThat(back.count()).isEqualTo(N);
        assertThat(back.size()).isEqualTo(size);
        long start = 0;
        for (int p = 0; p < N; p++) {
          assertThat(back.start(p)).isEqualTo(start);
          assertThat(back.length(p)).isEqualTo(lengths[p]);
          assertThat(back.get(p)).isEqualTo(id(p % 5 == 0 ? 0 : p));
          start += lengths[p];
        }
      }
    }
    try (var left = Files.list(temporaries)) {
      assertThat(left).as("temporary files deleted").isEmpty();
    }
  }
}
