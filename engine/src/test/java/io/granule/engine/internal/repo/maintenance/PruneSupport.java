package io.granule.engine.internal.repo.maintenance;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexReader;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.FixedIndexReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/** Helpers for prune tests on unencrypted local repositories. */
final class PruneSupport {
  private PruneSupport() {}

  static BackupResult backup(Repository repo, String disk, Path image, String host)
      throws IOException {
    try (RawDiskImage img = RawDiskImage.open(image)) {
      return repo.backup(
          new BackupRequest(List.of(new NamedDisk(disk, img)), host, List.of("t"), null),
          BackupListener.NONE);
    }
  }

  /** Distinct non-zero chunk ids the snapshots of {@code dir} use. */
  static Set<ChunkId> live(Path dir) throws IOException {
    LocalBlobStore s = new LocalBlobStore(dir);
    Set<ChunkId> out = new HashSet<>();
    for (BlobName n : s.list(BlobType.SNAPSHOT)) {
      Manifest m = io.granule.engine.internal.repo.snapshot.ManifestReader.read(n, s.load(n));
      for (Manifest.DiskEntry d : m.disks()) {
        BlobName fx = new BlobName(BlobType.FIXED_INDEX, d.fixedIndex());
        FixedIndex f = FixedIndexReader.read(fx, s.load(fx));
        for (int i = 0; i < f.count(); i++) {
          if (!f.get(i).isZero()) {
            out.add(f.get(i));
          }
        }
      }
    }
    return out;
  }

  /** How many copies of each chunk the packs of {@code dir} hold. */
  static Map<ChunkId, Integer> packed(Path dir) throws IOException {
    LocalBlobStore s = new LocalBlobStore(dir);
    Map<ChunkId, Integer> out = new HashMap<>();
    for (BlobName p : s.list(BlobType.PACK)) {
      for (PackEntry e : PackReader.loadTrailer(s, p)) {
        out.merge(e.id(), 1, Integer::sum);
      }
    }
    return out;
  }

  /** Packs listed by index blobs; asserts each exists. */
  static Set<PackId> indexedPacksExist(Path dir) throws IOException {
    LocalBlobStore s = new LocalBlobStore(dir);
    Set<PackId> out = new HashSet<>();
    for (BlobName n : s.list(BlobType.INDEX)) {
      for (IndexEntry e : IndexReader.read(n, s.load(n))) {
        out.add(e.location().pack());
      }
    }
    for (PackId p : out) {
      assertThat(s.stat(new BlobName(BlobType.PACK, p.toString()))).as("pack %s", p).isPresent();
    }
    return out;
  }

  /** Every file under {@code dir} (relative path → size and mtime), to show nothing changed. */
  static Map<String, String> listing(Path dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    try (Stream<Path> all = Files.walk(dir)) {
      for (Path p : all.filter(Files::isRegularFile).toList()) {
        out.put(
            dir.relativize(p).toString(),
            Files.size(p) + " " + Files.getLastModifiedTime(p).toMillis());
      }
    }
    return out;
  }

  /**
   * Verify with read-data passes and every snapshot in {@code expected} (id → sha256 of disk "vda")
   * exists and restores bit-exact; no other snapshot exists.
   */
  static void assertValid(Repository repo, Map<String, String> expected, Path scratch)
      throws Exception {
    VerifyReport r = repo.verify(true, VerifyListener.NONE);
    assertThat(r.ok()).as("verify: %s", r.damages()).isTrue();
    assertThat(repo.snapshots())
        .extracting(Manifest::id)
        .containsExactlyInAnyOrderElementsOf(expected.keySet());
    for (Map.Entry<String, String> e : expected.entrySet()) {
      Path out = Files.createTempFile(scratch, "restore", ".raw");
      Files.delete(out);
      repo.restoreDisk(repo.resolve(e.getKey()), "vda", out);
      assertThat(TestImages.sha256(out)).as("snapshot %s", e.getKey()).isEqualTo(e.getValue());
      Files.delete(out);
    }
  }

  static void copyTree(Path from, Path to) throws IOException {
    try (Stream<Path> all = Files.walk(from)) {
      for (Path p : all.toList()) {
        Path target = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
        } else {
          Files.copy(p, target);
        }
      }
    }
  }
}
