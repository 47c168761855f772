package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawFormat;
import io.granule.engine.internal.ops.BackupOperation;
import io.granule.engine.internal.ops.BackupOperation.DiskSpec;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ChangeTracking;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code backup --cbt}: incrementals of a qcow2 image that read only what its persistent dirty
 * bitmap marks, with the bitmap protocol (new bitmap before reading, parent's removed after the
 * snapshot, the new one removed on failure) and every doubtful case falling back to a full read.
 * Every restored snapshot is compared with qemu-img's own raw conversion of the image at the time.
 */
class ChangedBlockTrackingTest {
  static final long SIZE = 96L << 20;

  @TempDir Path tmp;
  Path img;
  Repository repo;
  PluginLeases<DiskImageFormat> formats;

  @BeforeEach
  void setUp() {
    Qemu.assumeAvailable();
    formats = new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
    formats.added("raw", new RawFormat(), new Origin("e", "0"), 0);
    formats.added("qcow2", new Qcow2Format(), new Origin("v", "0"), 0);
    img = tmp.resolve("vm.qcow2");
    Qemu.img("create", "-q", "-f", "qcow2", img.toString(), Long.toString(SIZE));
    write(60, 1);
    repo =
        Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(256 << 10));
  }

  /** {@code n} random writes of up to 200 KiB. */
  void write(int n, long seed) {
    Random rnd = new Random(seed);
    List<String> args = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      long off = rnd.nextLong(SIZE - (1 << 20)) & ~511L;
      args.add("-c");
      args.add(
          "write -P " + (1 + rnd.nextInt(250)) + " " + off + " " + (512 * (1 + rnd.nextInt(400))));
    }
    args.add(img.toString());
    Qemu.io(args.toArray(String[]::new));
  }

  BackupOperation op;

  BackupResult backup(String host, BackupListener listener) {
    op =
        new BackupOperation(
                formats,
                new PluginLeases<SnapshotProvider>(
                    "SnapshotProvider", SnapshotProvider::name, Duration.ofSeconds(1)))
            .withChangeTracking(true);
    return op.run(
        repo,
        List.of(DiskSpec.parse("vm=" + img, null)),
        List.of(),
        null,
        host,
        List.of(),
        listener);
  }

  List<String> bitmaps() throws Exception {
    try (ImageFile f = ImageFile.open(img)) {
      return new Qcow2Bitmaps(f, Qcow2Bitmaps.Opener.PROCESS)
          .bitmaps().stream().map(ChangeTracking.Bitmap::name).toList();
    }
  }

  void assertRestoresToTheImageNow(BackupResult r) throws Exception {
    Path expected = Qemu.toRaw(img, "qcow2", tmp.resolve("expected-" + System.nanoTime()));
    Path got = tmp.resolve("got-" + System.nanoTime());
    Manifest m = repo.resolve(r.manifest().id());
    repo.restoreDisk(m, "vm", got);
    assertThat(Files.mismatch(expected, got)).isEqualTo(-1);
  }

  @Test
  void incrementalsReadOnlyWhatTheBitmapMarksAndRestoreBitExact() throws Exception {
    BackupResult full = backup("h", p -> {});
    assertThat(full.progress().bytesUnchanged()).isZero();
    assertThat(op.notes()).anyMatch(n -> n.contains("read in full") && n.contains("no earlier"));
    Manifest.DiskEntry d1 = full.manifest().disk("vm");
    assertThat(d1.changeTracking()).startsWith("granule-");
    assertThat(bitmaps()).containsExactly(d1.changeTracking());
    assertRestoresToTheImageNow(full);

    write(5, 2);
    BackupResult incr = backup("h", p -> {});
    Manifest.DiskEntry d2 = incr.manifest().disk("vm");
    assertThat(d2.changedSince()).isEqualTo(full.manifest().id());
    assertThat(incr.manifest().parent()).isEqualTo(full.manifest().id());
    // 5 writes of at most 200 KiB touch at most 10 chunks of 256 KiB: the rest is not read
    assertThat(incr.progress().bytesUnchanged()).isGreaterThanOrEqualTo(SIZE - 10L * (256 << 10));
    assertThat(d2.bytesUnchanged()).isEqualTo(incr.progress().bytesUnchanged());
    assertThat(op.notes()).anyMatch(n -> n.contains("reading only those"));
    // the parent's bitmap is gone, the new one stays for the next backup
    assertThat(bitmaps()).containsExactly(d2.changeTracking());
    assertRestoresToTheImageNow(incr);
    // and the first snapshot still restores to what the image was then
    Path first = tmp.resolve("first");
    repo.restoreDisk(repo.resolve(full.manifest().id()), "vm", first);
    assertThat(Files.size(first)).isEqualTo(SIZE);

    // nothing written: nothing read
    BackupResult idle = backup("h", p -> {});
    assertThat(idle.progress().bytesUnchanged()).isEqualTo(SIZE);
    assertRestoresToTheImageNow(idle);
  }

  /**
   * A pack lost after the full backup (deleted by hand): the incremental does not keep the parent's
   * ids of unchanged chunks the index no longer has, it reads them again, so its snapshot restores
   * whole.
   */
  @Test
  void unchangedChunksWhosePackIsGoneAreReadAgain() throws Exception {
    BackupResult full = backup("h", p -> {});
    Path lost;
    try (var packs = Files.walk(tmp.resolve("repo").resolve("data"))) {
      lost =
          packs
              .filter(Files::isRegularFile)
              .max(java.util.Comparator.comparingLong(f -> f.toFile().length()))
              .orElseThrow();
    }
    long lostBytes = Files.size(lost);
    Files.delete(lost);
    write(3, 5);
    BackupResult incr = backup("h", p -> {});
    assertThat(incr.manifest().disk("vm").changedSince()).isEqualTo(full.manifest().id());
    // the chunks of the lost pack were read although the bitmap says they did not change
    assertThat(incr.progress().bytesUnchanged()).isLessThan(SIZE - lostBytes / 2);
    assertThat(incr.progress().bytesNew()).isPositive();
    assertRestoresToTheImageNow(incr);
  }

  @Test
  void aDisabledBitmapOrAnotherHostMeansAFullRead() throws Exception {
    BackupResult full = backup("h", p -> {});
    String bm = full.manifest().disk("vm").changeTracking();
    write(3, 3);
    Qemu.img("bitmap", "--disable", img.toString(), bm);
    BackupResult r = backup("h", p -> {});
    assertThat(r.progress().bytesUnchanged()).isZero();
    assertThat(op.notes()).anyMatch(n -> n.contains("cannot be trusted") && n.contains("disabled"));
    assertRestoresToTheImageNow(r);

    write(3, 4);
    BackupResult other = backup("other-host", p -> {});
    assertThat(other.progress().bytesUnchanged()).isZero();
    assertThat(op.notes()).anyMatch(n -> n.contains("from host other-host"));
  }

  @Test
  void aRemovedBitmapMeansAFullReadAndAFailedBackupKeepsTheOldBitmap() throws Exception {
    // committed before a listener fails on the final report: the snapshot counts, no error
    BackupResult committed =
        backup(
            "h",
            p -> {
              if (p.done()) {
                throw new IllegalStateException("display failed");
              }
            });
    assertThat(repo.snapshots()).extracting(Manifest::id).contains(committed.manifest().id());
    BackupResult full = backup("h", p -> {});
    String bm = full.manifest().disk("vm").changeTracking();
    write(4, 5);
    // the backup fails saving its manifest (the last step before it would have counted)
    Repository good = repo;
    repo =
        Repository.open(
            new ManifestFailingStore(new LocalBlobStore(tmp.resolve("repo"))),
            Clock.systemUTC(),
            tmp.resolve("cache"));
    assertThatThrownBy(() -> backup("h", p -> {})).hasMessageContaining("no room for manifests");
    repo.close();
    repo = good;
    // the failed backup's bitmap is removed; the parent's still covers every change
    assertThat(bitmaps()).containsExactly(bm);
    BackupResult r = backup("h", p -> {});
    assertThat(r.progress().bytesUnchanged()).as(op.notes().toString()).isPositive();
    assertRestoresToTheImageNow(r);

    Qemu.img("bitmap", "--remove", img.toString(), r.manifest().disk("vm").changeTracking());
    write(2, 6);
    BackupResult again = backup("h", p -> {});
    assertThat(again.progress().bytesUnchanged()).isZero();
    assertThat(op.notes()).anyMatch(n -> n.contains("is not in the image"));
    assertRestoresToTheImageNow(again);
  }

  /**
   * A root backup of a user's image opens it as him (the engine's SourceAccess): its bitmaps are
   * read through that open file and qemu-img runs as him (audit finding F-B), and tracking works
   * across backups as for root's own image.
   */
  @Test
  void aUsersImageIsTrackedAsHim() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")), "needs root to make files of another user");
    org.junit.jupiter.api.Assumptions.assumeTrue(
        io.granule.engine.internal.ops.FileCredentials.unavailableReason() == null,
        io.granule.engine.internal.ops.FileCredentials.unavailableReason());
    Files.setPosixFilePermissions(
        tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Path home = Files.createDirectories(tmp.resolve("home"));
    Path his = home.resolve("vm.qcow2");
    Files.move(img, his);
    img = his;
    for (Path p : List.of(home, his)) {
      Files.setAttribute(p, "unix:uid", 1001);
      Files.setAttribute(p, "unix:gid", 1001);
    }
    BackupResult full = backup("h", p -> {});
    String bm = full.manifest().disk("vm").changeTracking();
    assertThat(bitmaps()).containsExactly(bm);
    write(3, 7);
    BackupResult r = backup("h", p -> {});
    assertThat(r.progress().bytesUnchanged()).as(op.notes().toString()).isPositive();
    assertThat(bitmaps()).containsExactly(r.manifest().disk("vm").changeTracking());
    assertRestoresToTheImageNow(r);
    // his image, as the bitmaps left it: still his
    assertThat(Files.getAttribute(his, "unix:uid")).isEqualTo(1001);
  }

  /** A blob store that refuses to save snapshot manifests. */
  record ManifestFailingStore(BlobStore delegate) implements BlobStore {
    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      if (name.type() == BlobType.SNAPSHOT) {
        throw new IOException("no room for manifests");
      }
      delegate.save(name, data);
    }

    @Override
    public byte[] load(BlobName name) throws IOException {
      return delegate.load(name);
    }

    @Override
    public byte[] load(BlobName name, long offset, int length) throws IOException {
      return delegate.load(name, offset, length);
    }

    @Override
    public Optional<BlobInfo> stat(BlobName name) throws IOException {
      return delegate.stat(name);
    }

    @Override
    public List<BlobName> list(BlobType type) throws IOException {
      return delegate.list(type);
    }

    @Override
    public void delete(BlobName name) throws IOException {
      delegate.delete(name);
    }

    @Override
    public String location() {
      return delegate.location();
    }
  }

  @Test
  void imagesWithoutChangeTrackingAreReadInFull() throws Exception {
    Path raw = Qemu.toRaw(img, "qcow2", tmp.resolve("vm.raw"));
    op =
        new BackupOperation(
                formats,
                new PluginLeases<SnapshotProvider>(
                    "SnapshotProvider", SnapshotProvider::name, Duration.ofSeconds(1)))
            .withChangeTracking(true);
    BackupResult r =
        op.run(
            repo,
            List.of(DiskSpec.parse("vm=" + raw, null)),
            List.of(),
            null,
            "h",
            List.of(),
            p -> {});
    assertThat(r.manifest().disk("vm").changeTracking()).isNull();
    assertThat(op.notes()).anyMatch(n -> n.contains("raw images carry no change tracking"));
  }
}
