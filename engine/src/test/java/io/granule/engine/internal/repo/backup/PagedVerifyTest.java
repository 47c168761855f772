package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.spi.DiskImage;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Verify with its tables over their memory budget (1 MiB, {@code granule.index.memory-mib}): index
 * entries checked against the trailers, and a disk's 80 000 chunks against the index, through
 * lookups sorted by where they land in the paged tables. Intact, it counts every chunk; with a pack
 * or an index blob gone, it names the file and the snapshot as with tables in memory.
 */
class PagedVerifyTest {
  private static final int CHUNK = 4096;
  private static final int CHUNKS = 80_000;

  @TempDir Path tmp;
  Path repo;
  String snapshot;
  String before;

  /** A virtual disk of distinct, compressible chunks: each one's number, then zeros. */
  private static DiskImage numbered() {
    return new DiskImage() {
      @Override
      public long size() {
        return (long) CHUNKS * CHUNK;
      }

      @Override
      public String format() {
        return "virtual";
      }

      @Override
      public void read(long offset, ByteBuffer dst) {
        while (dst.hasRemaining()) {
          int n = (int) Math.min(dst.remaining(), CHUNK - offset % CHUNK);
          for (int i = 0; i < n; i++) {
            long at = (offset + i) % CHUNK;
            dst.put(at < 8 ? (byte) ((offset / CHUNK + 1) >>> (8 * at)) : 0);
          }
          offset += n;
        }
      }

      @Override
      public void close() {}
    };
  }

  @BeforeEach
  void backUpAndShrinkTheBudget() {
    repo = tmp.resolve("repo");
    try (Repository r =
        Repository.init(
            repo, RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(64 << 10))) {
      snapshot =
          r.backup(
                  new BackupRequest(
                      List.of(new BackupRequest.NamedDisk("d", numbered())), "h", null, null),
                  BackupListener.NONE)
              .manifest()
              .id();
    }
    before = System.getProperty("granule.index.memory-mib");
    System.setProperty("granule.index.memory-mib", "1");
  }

  @AfterEach
  void restoreTheBudget() {
    if (before == null) {
      System.clearProperty("granule.index.memory-mib");
    } else {
      System.setProperty("granule.index.memory-mib", before);
    }
  }

  private VerifyReport verify() {
    assertThat(ChunkIndex.defaultMemory()).isEqualTo(1 << 20);
    try (Repository r =
        Repository.open(new LocalBlobStore(repo), Clock.systemUTC(), tmp.resolve("cache"))) {
      return r.verify(false, VerifyListener.NONE);
    }
  }

  @Test
  void intactRepositoryVerifiesEveryChunk() {
    VerifyReport report = verify();
    assertThat(report.ok()).as("%s", report.damages()).isTrue();
    assertThat(report.chunks()).isEqualTo(CHUNKS);
  }

  @Test
  void aMissingPackIsNamedWithTheSnapshotItAffects() throws Exception {
    LocalBlobStore store = new LocalBlobStore(repo);
    BlobName pack = store.list(BlobType.PACK).get(3);
    Files.delete(store.path(pack));
    VerifyReport report = verify();
    assertThat(report.damages())
        .anySatisfy(
            d -> {
              assertThat(d.file()).isEqualTo(pack.toString());
              assertThat(d.problems()).anyMatch(p -> p.startsWith("missing, listed by index/"));
              assertThat(d.snapshots()).containsExactly(snapshot);
            });
    assertThat(report.affectedSnapshots()).containsExactly(snapshot);
  }

  @Test
  void chunksNoIndexListsAreCountedOnTheDiskThatUsesThem() throws Exception {
    LocalBlobStore store = new LocalBlobStore(repo);
    List<BlobName> indexes = store.list(BlobType.INDEX);
    assertThat(indexes).hasSizeGreaterThan(1);
    BlobName gone = indexes.get(0);
    Files.delete(store.path(gone));
    VerifyReport report = verify();
    assertThat(report.chunks()).isPositive().isLessThan(CHUNKS);
    long missing = CHUNKS - report.chunks();
    assertThat(report.damages())
        .anySatisfy(
            d -> {
              assertThat(d.file()).startsWith("fixed/");
              assertThat(d.problems())
                  .anyMatch(
                      p ->
                          p.contains(
                              "references " + missing + " chunks that no intact index lists"));
              assertThat(d.snapshots()).containsExactly(snapshot);
            });
  }
}
