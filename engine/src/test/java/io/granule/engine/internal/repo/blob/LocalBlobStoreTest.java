package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class LocalBlobStoreTest extends BlobStoreContractTest {

  @Override
  protected BlobStore newStore(Path tmp) {
    return new LocalBlobStore(tmp.resolve("repo"));
  }

  @Test
  void packsAreFannedOutByTheirFirstTwoCharacters() throws Exception {
    BlobName name = new BlobName(BlobType.PACK, "3fa2beef");
    store.save(name, new byte[] {1});
    assertThat(tmp.resolve("repo/data/3f/3fa2beef")).isRegularFile();
  }

  @Test
  void leftoverTemporaryFilesAreNotListed() throws Exception {
    store.save(new BlobName(BlobType.INDEX, "real"), new byte[] {1});
    Files.write(tmp.resolve("repo/index/.tmp-real-123"), new byte[] {2});
    Files.write(tmp.resolve("repo/index/README.TXT"), new byte[] {3});
    assertThat(store.list(BlobType.INDEX)).containsExactly(new BlobName(BlobType.INDEX, "real"));
  }
}
