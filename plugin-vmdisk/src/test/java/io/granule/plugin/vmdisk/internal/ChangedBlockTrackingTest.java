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
    write(img, n, seed);
  }

  /** {@code n} random writes of up to 200 KiB into {@code img}. */
  static void write(Path img, int n, long seed) {
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

  /** Skips a test that needs root and uid 1001; under CI=true fails it instead. */
  static void requireRootAndAnotherUser() throws IOException {
    String why = null;
    if (!"root".equals(System.getProperty("user.name"))) {
      why = "needs root to make files of another user";
    } else if (io.granule.engine.internal.ops.FileCredentials.unavailableReason() != null) {
      why = io.granule.engine.internal.ops.FileCredentials.unavailableReason();
    } else if (Files.readAllLines(Path.of("/etc/passwd"), java.nio.charset.StandardCharsets.UTF_8)
        .stream()
        .noneMatch(l -> l.contains(":1001:"))) {
      why = "needs a user of uid 1001";
    }
    if (why != null) {
      if ("true".equals(System.getenv("CI"))) {
        org.junit.jupiter.api.Assertions.fail(why + " and CI=true");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(false, why);
    }
  }

  BackupResult backupBoth(Path his) {
    op =
        new BackupOperation(
                formats,
                new PluginLeases<SnapshotProvider>(
                    "SnapshotProvider", SnapshotProvider::name, Duration.ofSeconds(1)))
            .withChangeTracking(true);
    return op.run(
        repo,
        List.of(DiskSpec.parse("vm=" + img, null), DiskSpec.parse("his=" + his, null)),
        List.of(),
        null,
        "h",
        List.of(),
        p -> {});
  }

  static String sha256(Path f) throws Exception {
    java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
    try (java.io.InputStream in = Files.newInputStream(f)) {
      byte[] b = new byte[1 << 20];
      for (int n; (n = in.read(b)) > 0; ) {
        md.update(b, 0, n);
      }
    }
    return io.granule.engine.internal.repo.Hex.encode(md.digest());
  }

  /** Both disks of {@code r} restore to what qemu-img reads from the images now (SHA-256). */
  void assertBothRestore(BackupResult r, Path his) throws Exception {
    Manifest m = repo.resolve(r.manifest().id());
    for (var disk : List.of(java.util.Map.entry("vm", img), java.util.Map.entry("his", his))) {
      Path expected =
          Qemu.toRaw(disk.getValue(), "qcow2", tmp.resolve("expected-" + System.nanoTime()));
      Path got = tmp.resolve("got-" + System.nanoTime());
      repo.restoreDisk(m, disk.getKey(), got);
      assertThat(sha256(got)).as(disk.getKey()).isEqualTo(sha256(expected));
      Files.delete(expected);
      Files.delete(got);
    }
  }

  List<String> bitmapsOf(Path image) throws Exception {
    try (ImageFile f = ImageFile.open(image)) {
      return new Qcow2Bitmaps(f, Qcow2Bitmaps.Opener.PROCESS)
          .bitmaps().stream().map(ChangeTracking.Bitmap::name).toList();
    }
  }

  /**
   * audit11 F3: a user makes his image read-only (0444). His disk, opened as him, cannot get a
   * bitmap: it is read in full with a note naming it, and root's disk in the same backup is still
   * tracked; the backup succeeds. While it stays read-only every backup reads it in full; the
   * bitmap of a snapshot from before it became read-only is not trusted afterwards (it is removed
   * once tracking works again), and tracking resumes once it is writable.
   */
  @Test
  void aDiskWhoseReadersCannotWriteItIsReadInFullAndTheOthersAreTracked() throws Exception {
    requireRootAndAnotherUser();
    Files.setPosixFilePermissions(
        tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Path home = Files.createDirectories(tmp.resolve("home"));
    Path his = home.resolve("his.qcow2");
    Qemu.img("create", "-q", "-f", "qcow2", his.toString(), Long.toString(SIZE));
    write(his, 40, 11);
    for (Path p : List.of(home, his)) {
      Files.setAttribute(p, "unix:uid", 1001);
      Files.setAttribute(p, "unix:gid", 1001);
    }
    // tracked while he may write it: his bitmap from before
    BackupResult before = backupBoth(his);
    String old = before.manifest().disk("his").changeTracking();
    assertThat(old).startsWith("granule-");

    Files.setPosixFilePermissions(
        his, java.nio.file.attribute.PosixFilePermissions.fromString("r--r--r--"));
    write(his, 5, 12); // root writes it (qemu records it in the old bitmap too)
    write(5, 13);
    BackupResult r1 = backupBoth(his);
    Manifest.DiskEntry h1 = r1.manifest().disk("his");
    Manifest.DiskEntry v1 = r1.manifest().disk("vm");
    assertThat(h1.changeTracking()).isNull();
    assertThat(h1.untracked()).contains("uid 1001").contains("cannot write it");
    assertThat(h1.bytesUnchanged()).isZero();
    assertThat(h1.changedSince()).isNull();
    assertThat(op.notes())
        .anyMatch(
            n ->
                n.startsWith("disk 'his': not tracked, read in full: image '" + his + "'")
                    && n.contains("cannot write it")
                    && n.contains("chmod u+w"));
    // root's disk: tracked, an incremental
    assertThat(v1.changeTracking()).startsWith("granule-");
    assertThat(v1.changedSince()).isEqualTo(before.manifest().id());
    assertThat(v1.bytesUnchanged()).isPositive();
    // nothing was created in his image; the old bitmap could not be removed
    assertThat(bitmapsOf(his)).containsExactly(old);
    assertBothRestore(r1, his);

    // still read-only: read in full again
    write(his, 3, 14);
    BackupResult r2 = backupBoth(his);
    assertThat(r2.manifest().disk("his").untracked()).isNotNull();
    assertThat(r2.manifest().disk("his").bytesUnchanged()).isZero();
    assertThat(r2.manifest().disk("vm").bytesUnchanged()).isPositive();
    assertBothRestore(r2, his);

    // writable again: a new bitmap, but the old one is not trusted (snapshots were read untracked
    // since), so this one reads in full and removes the old bitmap
    Files.setPosixFilePermissions(
        his, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    write(his, 3, 15);
    BackupResult r3 = backupBoth(his);
    Manifest.DiskEntry h3 = r3.manifest().disk("his");
    assertThat(h3.untracked()).isNull();
    assertThat(h3.changeTracking()).startsWith("granule-");
    assertThat(h3.bytesUnchanged()).isZero();
    assertThat(op.notes())
        .anyMatch(
            n ->
                n.startsWith("disk 'his': read in full: snapshot ")
                    && n.contains("could not track"));
    assertThat(bitmapsOf(his)).containsExactly(h3.changeTracking());
    assertBothRestore(r3, his);

    // and from then on it is tracked
    write(his, 3, 16);
    BackupResult r4 = backupBoth(his);
    Manifest.DiskEntry h4 = r4.manifest().disk("his");
    assertThat(h4.changedSince()).isEqualTo(r3.manifest().id());
    assertThat(h4.bytesUnchanged()).isPositive();
    assertThat(bitmapsOf(his)).containsExactly(h4.changeTracking());
    assertBothRestore(r4, his);
    assertThat(Files.getAttribute(his, "unix:uid")).isEqualTo(1001);
  }

  /**
   * audit13 M1: a user whose VM holds his image (qemu's write lock) made qemu-img bitmap fail, and
   * with it the whole backup of every disk (exit 6, no snapshot). A bitmap failure of an image
   * opened as its users leaves that disk untracked; the others are tracked, the backup succeeds.
   */
  @Test
  void aUsersImageHeldByHisVmIsReadInFullAndTheOthersAreTracked() throws Exception {
    requireRootAndAnotherUser();
    Files.setPosixFilePermissions(
        tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Path home = Files.createDirectories(tmp.resolve("home"));
    Path his = home.resolve("held.qcow2");
    Qemu.img("create", "-q", "-f", "qcow2", his.toString(), Long.toString(SIZE));
    write(his, 20, 31);
    for (Path p : List.of(home, his)) {
      Files.setAttribute(p, "unix:uid", 1001);
      Files.setAttribute(p, "unix:gid", 1001);
    }
    Process vm =
        new ProcessBuilder(
                "setpriv",
                "--reuid=1001",
                "--regid=1001",
                "--clear-groups",
                "sh",
                "-c",
                "sleep 120 | exec qemu-io -f qcow2 " + his)
            .redirectErrorStream(true)
            .start();
    BackupResult r;
    try {
      // qemu-io holds the image's write lock once it opened it
      long deadline = System.nanoTime() + 20_000_000_000L;
      while (!heldByQemu(his)) {
        assertThat(System.nanoTime()).as("qemu-io opened the image").isLessThan(deadline);
        Thread.sleep(100);
      }
      write(7, 32);
      r = backupBoth(his);
    } finally {
      vm.toHandle().descendants().forEach(ProcessHandle::destroy);
      vm.destroy();
      vm.waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
    }
    Manifest.DiskEntry h = r.manifest().disk("his");
    assertThat(h.changeTracking()).isNull();
    assertThat(h.untracked()).contains("failed");
    assertThat(r.manifest().disk("vm").changeTracking()).startsWith("granule-");
    assertThat(op.notes()).anyMatch(n -> n.startsWith("disk 'his': not tracked, read in full"));
    long deadline = System.nanoTime() + 20_000_000_000L;
    while (heldByQemu(his)) { // released once qemu-io is gone (it wrote nothing)
      assertThat(System.nanoTime()).as("qemu-io ended").isLessThan(deadline);
      Thread.sleep(100);
    }
    assertBothRestore(r, his);
  }

  /** Whether a qemu process holds {@code img}'s write lock (qemu-img info -U cannot tell). */
  private static boolean heldByQemu(Path img) throws Exception {
    Process p =
        new ProcessBuilder("qemu-img", "info", img.toString()).redirectErrorStream(true).start();
    String out =
        new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    p.waitFor();
    return p.exitValue() != 0 && out.contains("lock");
  }

  /**
   * audit11 F3/t4: root's own image (0644) in his directory is opened as him, who can never write
   * it: it goes untracked, read in full, and the backup succeeds.
   */
  @Test
  void rootsImageInAUsersDirectoryIsReadInFull() throws Exception {
    requireRootAndAnotherUser();
    Files.setPosixFilePermissions(
        tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Path home = Files.createDirectories(tmp.resolve("home"));
    Files.setAttribute(home, "unix:uid", 1001);
    Files.setAttribute(home, "unix:gid", 1001);
    Path his = home.resolve("rootimg.qcow2");
    Qemu.img("create", "-q", "-f", "qcow2", his.toString(), Long.toString(SIZE));
    write(his, 20, 21);
    Files.setPosixFilePermissions(
        his, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    for (int i = 0; i < 2; i++) {
      BackupResult r = backupBoth(his);
      assertThat(r.manifest().disk("his").untracked()).contains("cannot write it");
      assertThat(r.manifest().disk("his").bytesUnchanged()).isZero();
      assertThat(r.manifest().disk("vm").changeTracking()).startsWith("granule-");
      assertBothRestore(r, his);
      write(his, 2, 22 + i);
    }
    assertThat(bitmapsOf(his)).isEmpty();
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
