package io.granule.engine.internal.repo.snapshot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.AesGcmCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A fixed index over {@link FixedIndex#HEAP_MAX} (a disk of more than 128 GiB at 512 KiB chunks)
 * lives in a temporary file and is written and read a step at a time: the same blob, byte for byte,
 * as the whole-array path makes and reads, plain and encrypted.
 */
class PagedFixedIndexTest {
  @TempDir Path tmp;
  private Path temporaries;

  /** 300 000 positions: 9.6 MiB of ids, over the heap limit. */
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
    return new ChunkId(seed * 0x9E3779B97F4A7C15L, seed, ~seed, seed * 31);
  }

  /** Chunk ids at random positions, a third of them repeated, half the disk zeros. */
  private static long[] fill(FixedIndex f) {
    Random r = new Random(42);
    long[] seeds = new long[f.count()];
    for (int p = 0; p < seeds.length; p++) {
      seeds[p] = r.nextBoolean() ? 0 : 1 + (r.nextInt(3) == 0 ? r.nextInt(1000) : p + 1000);
      if (seeds[p] != 0) {
        f.set(p, id(seeds[p]));
      }
    }
    return seeds;
  }

  @Test
  void largeIndexesRoundTripThroughTemporaryFilesPlainAndEncrypted() throws Exception {
    byte[] key = new byte[32];
    new Random(1).nextBytes(key);
    for (BlobCodec codec : new BlobCodec[] {BlobCodec.IDENTITY, new AesGcmCodec(key)}) {
      LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo-" + codec.transforms()));
      BlobName name = new BlobName(BlobType.FIXED_INDEX, "big" + codec.transforms());
      long[] seeds;
      byte[] whole;
      try (FixedIndex f = new FixedIndex(4096, (long) N * 4096 - 100)) {
        assertThat(f.paged()).isTrue();
        seeds = fill(f);
        FixedIndexWriter.save(store, codec, name, f);
        whole = FixedIndexWriter.write(f);
      }
      // what was streamed decodes, as one record, to the frame the array path makes
      assertThat(codec.decode(name, store.load(name))).isEqualTo(whole);
      try (FixedIndex back = FixedIndexReader.load(store, codec, name)) {
        assertThat(back.paged()).isTrue();
        assertThat(back.count()).isEqualTo(N);
        assertThat(back.diskSize()).isEqualTo((long) N * 4096 - 100);
        for (int p = 0; p < N; p++) {
          assertThat(back.get(p)).isEqualTo(seeds[p] == 0 ? ChunkId.ZERO : id(seeds[p]));
        }
      }
      // and a blob encoded as one record is read a step at a time
      store.save(name, codec.encode(name, whole));
      try (FixedIndex back = FixedIndexReader.load(store, codec, name)) {
        assertThat(back.get(N - 1)).isEqualTo(seeds[N - 1] == 0 ? ChunkId.ZERO : id(seeds[N - 1]));
      }
    }
    try (Stream<Path> left = Files.list(temporaries)) {
      assertThat(left).as("temporary files deleted").isEmpty();
    }
  }

  @Test
  void damageInALargeIndexIsNamedAndFreesItsTemporaryFile() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    BlobName name = new BlobName(BlobType.FIXED_INDEX, "damaged");
    try (FixedIndex f = new FixedIndex(4096, (long) N * 4096)) {
      fill(f);
      FixedIndexWriter.save(store, BlobCodec.IDENTITY, name, f);
    }
    Path file = store.path(name);
    byte[] b = Files.readAllBytes(file);
    b[b.length / 2] ^= 0x10; // an id in the middle
    Files.write(file, b);
    assertThatThrownBy(() -> FixedIndexReader.load(store, BlobCodec.IDENTITY, name))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining(name.toString())
        .hasMessageContaining("checksum mismatch");
    Files.write(file, java.util.Arrays.copyOf(b, b.length - 1000)); // cut short
    assertThatThrownBy(() -> FixedIndexReader.load(store, BlobCodec.IDENTITY, name))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining(name.toString());

    byte[] key = new byte[32];
    AesGcmCodec aes = new AesGcmCodec(key);
    try (FixedIndex f = new FixedIndex(4096, (long) N * 4096)) {
      fill(f);
      FixedIndexWriter.save(store, aes, name, f);
    }
    b = Files.readAllBytes(file);
    b[b.length - 300_000] ^= 1;
    Files.write(file, b);
    assertThatThrownBy(() -> FixedIndexReader.load(store, aes, name))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(AesGcmCodec.AUTH_FAILED);
    try (Stream<Path> left = Files.list(temporaries)) {
      assertThat(left).isEmpty();
    }
  }

  /** The duplicate chains of a large index (kept in a temporary file) are those of a plain map. */
  @Test
  void duplicateChainsOfALargeIndexAgreeWithAPlainMap() {
    try (FixedIndex f = new FixedIndex(4096, (long) N * 4096);
        FixedIndex.NextSame next = fillAndLink(f)) {
      assertThat(f.paged()).isTrue();
      Random r = new Random(42);
      java.util.Map<Long, Integer> last = new java.util.HashMap<>();
      int[] expected = new int[N];
      java.util.Arrays.fill(expected, -1);
      for (int p = 0; p < N; p++) {
        long seed = r.nextBoolean() ? 0 : 1 + (r.nextInt(3) == 0 ? r.nextInt(1000) : p + 1000);
        if (seed != 0) {
          Integer q = last.put(seed, p);
          if (q != null) {
            expected[q] = p;
          }
        }
      }
      assertThat(next.toArray()).isEqualTo(expected);
    }
  }

  private static FixedIndex.NextSame fillAndLink(FixedIndex f) {
    fill(f);
    return f.nextSame();
  }
}
