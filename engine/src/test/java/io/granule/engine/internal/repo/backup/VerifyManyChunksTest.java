package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChildJvm;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.spi.DiskImage;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code verify} of a repository of 400 000 chunks in a child JVM limited to a 24 MiB heap: what
 * verify learns per chunk (each pack trailer's entries, each index blob's locations) is kept off
 * the heap, so the number of chunks in a repository does not bound the heap verify needs. (The pack
 * trailers it used to hold on the heap took ~150 bytes per chunk: ~60 MB here, and 15 GB for the
 * 10^8 chunks the chunk index is made for.)
 */
class VerifyManyChunksTest {
  private static final int CHUNK = 4096;
  private static final int CHUNKS = 400_000;

  @TempDir Path tmp;

  /** Entry point of the child JVM: args are the repository directory; prints the report. */
  public static void main(String[] args) throws Exception {
    VerifyMemoryTest.verifyAndPrint(Path.of(args[0]), Boolean.parseBoolean(args[1]));
  }

  @Test
  void aRepositoryOfManyChunksVerifiesInASmallHeap() throws Exception {
    Path repo = tmp.resolve("repo");
    DiskImage numbered = TestImages.numbered(CHUNK, CHUNKS);
    try (Repository r =
        Repository.init(
            repo, RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(1 << 20))) {
      r.backup(
          new BackupRequest(List.of(new BackupRequest.NamedDisk("d", numbered)), "h", null, null),
          BackupListener.NONE);
    }
    int packs = new LocalBlobStore(repo).list(BlobType.PACK).size();
    for (String readData : List.of("false", "true")) {
      String out =
          ChildJvm.run(
              List.of("-Xmx32m", "-XX:MaxDirectMemorySize=64m"),
              VerifyManyChunksTest.class,
              repo.toString(),
              readData);
      assertThat(out)
          .as(out)
          .contains("packs=" + packs + " chunks=" + CHUNKS)
          .contains("affected=0")
          .doesNotContain("damaged");
    }
  }
}
