package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Restoring or reading one disk of a repository much larger than it builds an index of that disk's
 * chunks alone (memory for the disk, not the repository), and reads it byte for byte; a chunk no
 * index blob lists is named, never read as something else.
 */
class ScopedChunkIndexTest {
  @TempDir Path tmp;

  private static byte[] random(int size, long seed) {
    byte[] b = new byte[size];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void oneSmallDiskOfALargeRepositoryIsReadThroughAnIndexOfItsOwn() throws Exception {
    Path dir = tmp.resolve("repo");
    byte[] big = random(64 << 20, 1); // 16 384 chunks of 4 KiB
    byte[] small = random(16 << 20, 2); // 4 096
    Path bigImage = TestImages.write(tmp.resolve("big.raw"), big);
    Path smallImage = TestImages.write(tmp.resolve("small.raw"), small);
    Set<BlobName> bigIndexes;
    Manifest s;
    RepositoryConfig cfg = RepositoryConfig.defaults().withChunkSize(4096).withPackSize(4 << 20);
    try (Repository repo = Repository.init(dir, cfg)) {
      RepositoryTest.backup(repo, "big", bigImage, "h");
      bigIndexes = new HashSet<>(new LocalBlobStore(dir).list(BlobType.INDEX));
      s = RepositoryTest.backup(repo, "small", smallImage, "h").manifest();
    }
    try (Repository repo = Repository.open(dir)) {
      try (SnapshotDisk disk = repo.openDisk(s, "small")) {
        ByteBuffer all = ByteBuffer.allocate(small.length);
        disk.read(0, all);
        assertThat(all.array()).isEqualTo(small);
      }
      Path out = tmp.resolve("restored.raw");
      repo.restoreDisk(s, "small", out);
      assertThat(Files.readAllBytes(out)).isEqualTo(small);
      assertThat(repo.chunkIndexLoaded()).as("the repository's index never loaded").isFalse();
    }

    // The small disk's index blob gone: its chunks are reserved, never filled, and named.
    LocalBlobStore store = new LocalBlobStore(dir);
    for (BlobName n : store.list(BlobType.INDEX)) {
      if (!bigIndexes.contains(n)) {
        store.delete(n);
      }
    }
    try (Repository repo = Repository.open(dir)) {
      assertThatThrownBy(() -> repo.restoreDisk(s, "small", tmp.resolve("again.raw")))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("not in any index");
      assertThat(repo.chunkIndexLoaded()).isFalse();
    }
  }
}
