package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.nio.file.Path;

class LocalLockTest extends LockContractTest {
  @Override
  protected BlobStore newStore(Path tmp) {
    return new LocalBlobStore(tmp.resolve("repo"));
  }
}
