package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A blob too large to read whole (one sparse stray file under snapshots/ or index/ costs nothing on
 * disk) is refused naming it, instead of running the process out of memory.
 */
class LargeBlobTest {
  @TempDir Path tmp;

  @Test
  void aBlobLargerThanTheProcessCanHoldIsRefusedNamingIt() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    BlobName small = new BlobName(BlobType.SNAPSHOT, "a".repeat(64));
    store.save(small, new byte[] {1, 2, 3});
    assertThat(store.load(small)).containsExactly(1, 2, 3);

    BlobName big = new BlobName(BlobType.SNAPSHOT, "b".repeat(64));
    store.save(big, new byte[] {0});
    Path file;
    try (var files = Files.walk(tmp.resolve("repo"))) {
      file =
          files
              .filter(p -> p.getFileName().toString().startsWith("bbbb"))
              .findFirst()
              .orElseThrow();
    }
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.setLength(3L << 30);
    }
    assertThatThrownBy(() -> store.load(big))
        .isInstanceOf(BlobTooLargeException.class)
        .hasMessageContaining(big.toString())
        .hasMessageContaining("3221225472 bytes")
        .hasMessageContaining("granule verify");
  }

  /** A store named by one relative name ("repo") saves its first blob (its parent is the cwd). */
  @Test
  void aStoreNamedByOneRelativeNameSaves() throws Exception {
    Path cwd = Path.of("").toAbsolutePath();
    Path name = Path.of("granule-test-" + ProcessHandle.current().pid());
    LocalBlobStore store = new LocalBlobStore(name);
    try {
      store.save(BlobName.CONFIG, new byte[] {1});
      assertThat(store.load(BlobName.CONFIG)).containsExactly(1);
    } finally {
      try (var all = Files.walk(cwd.resolve(name))) {
        for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.delete(p);
        }
      }
    }
  }
}
