package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.S3Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** The lock protocol on a real S3 server (s3proxy). */
class S3LockTest extends LockContractTest {
  private static final AtomicInteger PREFIXES = new AtomicInteger();
  private static Path serverDir;
  private static S3Proxy proxy;

  @BeforeAll
  static void startServer() throws Exception {
    serverDir = Files.createTempDirectory("granule-s3proxy-locks");
    proxy = S3Proxy.start(serverDir);
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (proxy != null) {
      proxy.close();
    }
    try (var files = Files.walk(serverDir)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  @Override
  protected BlobStore newStore(Path tmp) {
    // as repositories use S3: through retries (s3proxy's file backend answers a listing that
    // races a delete with HTTP 500 now and then)
    return new io.granule.engine.internal.repo.blob.RetryingBlobStore(
        proxy.store("locks" + PREFIXES.incrementAndGet()), 5, java.time.Duration.ofMillis(20));
  }
}
