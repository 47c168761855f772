package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Each chunk hash a repository can be created with: the config and format version it records, ids
 * that are what the algorithm says, byte-identical restores, verification, and deduplication
 * against what an earlier process stored.
 */
class ChunkHashFormatsTest {
  private static final int CHUNK = 64 << 10;
  private static final String DISK = "vda";

  @TempDir Path tmp;

  private Repository init(LocalBlobStore store, String family, boolean encrypted) {
    RepositoryConfig cfg = RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(1 << 20);
    if (family != null) {
      cfg = cfg.withChunkHashFamily(family);
    }
    return Repository.init(
        store,
        cfg,
        Clock.systemUTC(),
        tmp.resolve("cache"),
        encrypted ? "pw".toCharArray() : null,
        KdfParams.TESTING);
  }

  private Repository open(LocalBlobStore store) {
    return Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"), "pw"::toCharArray);
  }

  private static Manifest backup(Repository repo, Path image) throws Exception {
    try (RawDiskImage img = RawDiskImage.open(image)) {
      return repo.backup(
              new BackupRequest(List.of(new NamedDisk(DISK, img)), List.of(), "h", List.of(), null),
              BackupListener.NONE)
          .manifest();
    }
  }

  @ParameterizedTest(name = "{0}, encrypted={1}")
  @CsvSource({
    ",      false, blake3,       3",
    ",      true,  blake3-keyed, 3",
    "blake3, false, blake3,       3",
    "blake3, true,  blake3-keyed, 3",
    "sha256, false, sha256,       1",
    "sha256, true,  hmac-sha256,  2"
  })
  void roundTripsWithItsIdsAndDeduplicatesAcrossProcesses(
      String family, boolean encrypted, String hash, int version) throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    byte[] data = TestImages.mixed(4 << 20, 17);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    Manifest first;
    try (Repository repo = init(store, family, encrypted)) {
      first = backup(repo, image);
    }
    int packs = store.list(BlobType.PACK).size();
    try (Repository repo = open(store)) {
      assertThat(repo.config().chunkHash()).isEqualTo(hash);
      assertThat(repo.config().version()).isEqualTo(version);
      assertThat(repo.config().encrypted()).isEqualTo(encrypted);

      // the id of the first non-zero chunk is the algorithm's (keyed ids are neither plain one)
      try (SnapshotDisk disk = repo.openDisk(first, DISK)) {
        FixedIndex fixed = disk.fixedIndex();
        int p = 0;
        while (fixed.get(p).isZero()) {
          p++;
        }
        ChunkId id = fixed.get(p);
        ChunkId blake3 = ChunkHasher.javaBlake3(null).hash(data, p * CHUNK, CHUNK);
        ChunkId sha = ChunkHasher.jdkSha256().hash(data, p * CHUNK, CHUNK);
        switch (hash) {
          case "blake3" -> assertThat(id).isEqualTo(blake3);
          case "sha256" -> assertThat(id).isEqualTo(sha);
          default -> assertThat(id).isNotEqualTo(blake3).isNotEqualTo(sha);
        }
      }

      // a second process finds every chunk stored: nothing new
      Manifest second = backup(repo, image);
      assertThat(store.list(BlobType.PACK)).hasSize(packs);
      repo.restoreDisk(second, DISK, tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
      assertThat(repo.verify(true, VerifyListener.NONE).ok()).isTrue();
    }
  }

  @Test
  void aRepositoryNamingChunksWithAnUnknownHashIsRefusedOnOpen() throws Exception {
    Path dir = tmp.resolve("future");
    new LocalBlobStore(dir)
        .save(
            io.granule.engine.internal.repo.blob.BlobName.CONFIG,
            new RepositoryConfig(3, "ab", "2030-01-01T00:00:00Z", CHUNK, 1 << 20, 1, "blake4", null)
                .toBytes());
    assertThatThrownBy(() -> Repository.open(dir))
        .isInstanceOf(UnsupportedRepositoryVersionException.class)
        .hasMessage(
            "repository at '"
                + dir
                + "' names chunks with 'blake4' (supported: sha256, hmac-sha256, blake3,"
                + " blake3-keyed): upgrade granule to open it");
    Path odd = tmp.resolve("odd");
    new LocalBlobStore(odd)
        .save(
            io.granule.engine.internal.repo.blob.BlobName.CONFIG,
            new RepositoryConfig(2, "ab", "2030-01-01T00:00:00Z", CHUNK, 1 << 20, 1, "blake3", null)
                .toBytes());
    assertThatThrownBy(() -> Repository.open(odd))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessage(
            "config of repository at '"
                + odd
                + "' is inconsistent: chunk hash blake3 needs format version 3, not 2");
  }

  @Test
  void anUnknownOrMismatchedChunkHashIsRefused() {
    assertThatThrownBy(() -> RepositoryConfig.defaults().withChunkHashFamily("md5"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("unknown chunk hash 'md5': choose blake3 (the default) or sha256");
    // BLAKE3 in a config that claims an older format: older builds would misread its ids
    RepositoryConfig old =
        new RepositoryConfig(2, "ab", "2026-01-01T00:00:00Z", CHUNK, 1 << 20, 1, "blake3", null);
    assertThatThrownBy(old::validate)
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("chunk hash blake3 needs format version 3, not 2");
    // a keyed hash without encryption, and a plain one with it
    RepositoryConfig keyedPlain =
        new RepositoryConfig(3, "ab", "t", CHUNK, 1 << 20, 1, "blake3-keyed", null);
    assertThatThrownBy(keyedPlain::validate)
        .hasMessage("unsupported chunk hash 'blake3-keyed' for an unencrypted repository");
    RepositoryConfig plainEncrypted =
        new RepositoryConfig(3, "ab", "t", CHUNK, 1 << 20, 1, "blake3", "aes-256-gcm");
    assertThatThrownBy(plainEncrypted::validate)
        .hasMessage("unsupported chunk hash 'blake3' for an encrypted repository");
  }
}
