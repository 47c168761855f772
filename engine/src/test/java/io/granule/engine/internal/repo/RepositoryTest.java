package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupProgress;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CyclicBarrier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RepositoryTest {
  @TempDir Path tmp;

  private static final RepositoryConfig SMALL =
      RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(1 << 20);

  private Repository init() {
    return Repository.init(tmp.resolve("repo"), SMALL);
  }

  static BackupResult backup(Repository repo, String name, Path image, String host)
      throws IOException {
    try (RawDiskImage img = RawDiskImage.open(image)) {
      return repo.backup(
          new BackupRequest(List.of(new NamedDisk(name, img)), host, List.of("t"), null),
          BackupListener.NONE);
    }
  }

  @Test
  void mixedImageRoundTripsByteForByte() throws Exception {
    byte[] data = TestImages.mixed(24 << 20, 1);
    data = Arrays.copyOf(data, data.length - 1234);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init()) {
      List<BackupProgress> reports = new CopyOnWriteArrayList<>();
      BackupResult r;
      try (RawDiskImage img = RawDiskImage.open(image)) {
        r =
            repo.backup(
                new BackupRequest(List.of(new NamedDisk("vda", img)), "h1", List.of("x"), null),
                reports::add);
      }
      BackupProgress last = r.progress();
      assertThat(last.done()).isTrue();
      assertThat(last.bytesRead()).isEqualTo(data.length).isEqualTo(last.bytesTotal());
      assertThat(reports.get(reports.size() - 1)).isEqualTo(last);
      double seconds = last.elapsed().toNanos() / 1e9;
      assertThat(reports.size())
          .as("at most ~10 reports a second")
          .isLessThanOrEqualTo((int) (seconds * 10) + 2);
      assertThat(reports.stream().filter(BackupProgress::done)).hasSize(1);
      assertThat(last.bytesZero()).isPositive();
      assertThat(last.bytesDeduplicated()).isPositive();
      assertThat(last.bytesNew()).isLessThan(data.length - last.bytesZero());
      Manifest m = r.manifest();
      assertThat(m.host()).isEqualTo("h1");
      assertThat(m.tags()).containsExactly("x");
      assertThat(m.disks()).hasSize(1);
      assertThat(m.disks().get(0).size()).isEqualTo(data.length);
      assertThat(m.disks().get(0).bytesStored()).isEqualTo(last.bytesNew());

      Path out = tmp.resolve("restored.raw");
      RestoreResult rr = repo.restoreDisk(repo.resolve("latest"), "vda", out);
      assertThat(rr.sparse()).isTrue();
      assertThat(rr.zeroChunks()).isPositive();
      assertThat(sha256(out)).isEqualTo(sha256(data));

      Path existing = tmp.resolve("existing.raw");
      byte[] junk = new byte[data.length + 5000];
      Arrays.fill(junk, (byte) 0xff);
      Files.write(existing, junk);
      RestoreResult over = repo.restoreDisk(m, "vda", existing);
      assertThat(over.sparse()).isFalse();
      assertThat(sha256(existing)).isEqualTo(sha256(data));

      assertThat(repo.verify(true, VerifyListener.NONE).ok()).isTrue();
      RepositoryStats s = repo.stats();
      assertThat(s.snapshots()).isEqualTo(1);
      assertThat(s.logicalBytes()).isEqualTo(data.length);
      assertThat(s.dedupRatio()).isGreaterThan(1.0);
    }
  }

  @Test
  void allZeroAndAllRandomImagesRoundTrip() throws Exception {
    byte[] zeros = new byte[5 << 20];
    byte[] random = new byte[3 << 20];
    new Random(9).nextBytes(random);
    Path z = TestImages.write(tmp.resolve("z.raw"), zeros);
    Path rnd = TestImages.write(tmp.resolve("r.raw"), random);
    try (Repository repo = init();
        RawDiskImage zi = RawDiskImage.open(z);
        RawDiskImage ri = RawDiskImage.open(rnd)) {
      BackupResult r =
          repo.backup(
              new BackupRequest(
                  List.of(new NamedDisk("zero", zi), new NamedDisk("rand", ri)), "h", null, null),
              BackupListener.NONE);
      assertThat(r.progress().bytesZero()).isEqualTo(zeros.length);
      assertThat(r.manifest().disk("zero").bytesStored()).isZero();
      assertThat(r.manifest().disk("rand").bytesNew()).isEqualTo(random.length);
      repo.restoreDisk(r.manifest(), "zero", tmp.resolve("z.out"));
      repo.restoreDisk(r.manifest(), "rand", tmp.resolve("r.out"));
      assertThat(sha256(tmp.resolve("z.out"))).isEqualTo(sha256(zeros));
      assertThat(sha256(tmp.resolve("r.out"))).isEqualTo(sha256(random));
    }
  }

  @Test
  void secondBackupOfTheSameImageStoresNothing() throws Exception {
    Path image = TestImages.write(tmp.resolve("vm.raw"), TestImages.mixed(8 << 20, 2));
    try (Repository repo = init()) {
      BackupResult first = backup(repo, "vda", image, "h");
      long packs = repo.stats().packs();
      BackupResult second = backup(repo, "vda", image, "h");
      assertThat(second.progress().bytesNew()).isZero();
      assertThat(second.packsWritten()).isZero();
      assertThat(repo.stats().packs()).isEqualTo(packs);
      assertThat(second.progress().bytesDeduplicated())
          .isEqualTo(first.progress().bytesRead() - first.progress().bytesZero());
    }
  }

  @Test
  void incrementalAfterChangingOnePercentStoresAboutTheChangedChunksOnly() throws Exception {
    byte[] data = TestImages.mixed(32 << 20, 3);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init()) {
      Manifest base = backup(repo, "vda", image, "h").manifest();
      long changed = TestImages.modify(data, 1.0, 16, 4);
      Files.write(image, data);
      BackupResult inc;
      try (RawDiskImage img = RawDiskImage.open(image)) {
        inc =
            repo.backup(
                new BackupRequest(List.of(new NamedDisk("vda", img)), "h", null, base.id()),
                BackupListener.NONE);
      }
      assertThat(inc.manifest().parent()).isEqualTo(base.id());
      assertThat(inc.progress().bytesNew()).isPositive().isLessThanOrEqualTo(3 * changed);
      repo.restoreDisk(inc.manifest(), "vda", tmp.resolve("inc.out"));
      assertThat(sha256(tmp.resolve("inc.out"))).isEqualTo(sha256(data));
    }
  }

  @Test
  void randomAccessReadsFetchOnlyTheChunksTouched() throws Exception {
    byte[] data = TestImages.mixed(16 << 20, 5);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init()) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      try (SnapshotDisk disk = repo.openDisk(m, "vda", 1 << 20)) {
        assertThat(disk.size()).isEqualTo(data.length);
        ByteBuffer one = ByteBuffer.allocate(100);
        long at = (3L << 16) + 10;
        disk.read(at, one);
        assertThat(one.array()).isEqualTo(Arrays.copyOfRange(data, (int) at, (int) at + 100));
        assertThat(disk.chunksFetched()).isLessThanOrEqualTo(1);
        ByteBuffer span = ByteBuffer.allocate(70_000);
        long at2 = (10L << 16) - 1000;
        disk.read(at2, span);
        assertThat(span.array()).isEqualTo(Arrays.copyOfRange(data, (int) at2, (int) at2 + 70_000));
        assertThat(disk.chunksFetched()).isLessThanOrEqualTo(3);
        long before = disk.chunksFetched();
        disk.read(at2, span.clear());
        assertThat(disk.chunksFetched()).as("served from cache").isEqualTo(before);
        Random r = new Random(6);
        for (int i = 0; i < 200; i++) {
          int len = 1 + r.nextInt(200_000);
          int off = r.nextInt(data.length - len);
          ByteBuffer b = ByteBuffer.allocate(len);
          disk.read(off, b);
          assertThat(b.array()).isEqualTo(Arrays.copyOfRange(data, off, off + len));
        }
        assertThatThrownBy(() -> disk.read(data.length - 10, ByteBuffer.allocate(11)))
            .isInstanceOf(java.io.EOFException.class);
      }
    }
  }

  @Test
  void concurrentRandomReadsReturnTheRightBytes() throws Exception {
    byte[] data = TestImages.mixed(8 << 20, 13);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init()) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      try (SnapshotDisk disk = repo.openDisk(m, "vda", 512 << 10)) {
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        for (int t = 0; t < 4; t++) {
          long seed = t;
          Thread th =
              new Thread(
                  () -> {
                    Random r = new Random(seed);
                    try {
                      for (int i = 0; i < 300; i++) {
                        int len = 1 + r.nextInt(150_000);
                        int off = r.nextInt(data.length - len);
                        ByteBuffer b = ByteBuffer.allocate(len);
                        disk.read(off, b);
                        if (!Arrays.equals(b.array(), Arrays.copyOfRange(data, off, off + len))) {
                          throw new AssertionError("wrong bytes at " + off + " seed " + seed);
                        }
                      }
                    } catch (Throwable e) {
                      errors.add(e);
                    }
                  });
          th.start();
          threads.add(th);
        }
        for (Thread th : threads) {
          th.join(60_000);
          assertThat(th.isAlive()).isFalse();
        }
        assertThat(errors).isEmpty();
      }
    }
  }

  @Test
  void readersOfAChunkBeingFetchedWaitForItInsteadOfFetchingItAgain() throws Exception {
    byte[] data = TestImages.mixed(8 << 20, 17);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init()) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      try (SnapshotDisk disk = repo.openDisk(m, "vda", 1 << 20)) {
        int position = 0;
        while (disk.location(position) == null) {
          position++;
        }
        long at = (long) position * disk.fixedIndex().chunkSize() + 100;
        int readers = 8;
        CyclicBarrier start = new CyclicBarrier(readers);
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < readers; t++) {
          Thread th =
              new Thread(
                  () -> {
                    try {
                      ByteBuffer b = ByteBuffer.allocate(1000);
                      start.await();
                      disk.read(at, b);
                      assertThat(b.array())
                          .isEqualTo(Arrays.copyOfRange(data, (int) at, (int) at + 1000));
                    } catch (Throwable e) {
                      errors.add(e);
                    }
                  });
          th.start();
          threads.add(th);
        }
        for (Thread th : threads) {
          th.join(60_000);
          assertThat(th.isAlive()).isFalse();
        }
        assertThat(errors).isEmpty();
        assertThat(disk.chunksFetched()).as("one fetch for %d readers", readers).isEqualTo(1);
      }
    }
  }

  @Test
  void uncachedReadsAreRightAndFetchEachTime() throws Exception {
    byte[] data = TestImages.mixed(4 << 20, 19);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init()) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      try (SnapshotDisk disk = repo.openDisk(m, "vda", 0)) {
        int position = 0;
        while (disk.location(position) == null) {
          position++;
        }
        long at = (long) position * disk.fixedIndex().chunkSize() + 5;
        for (int i = 1; i <= 3; i++) {
          ByteBuffer b = ByteBuffer.allocate(4096);
          disk.read(at, b);
          assertThat(b.array()).isEqualTo(Arrays.copyOfRange(data, (int) at, (int) at + 4096));
          assertThat(disk.chunksFetched()).isEqualTo(i);
        }
        ByteBuffer all = ByteBuffer.allocate(data.length);
        disk.read(0, all);
        assertThat(all.array()).isEqualTo(data);
      }
    }
  }

  @Test
  void unallocatedExtentsAreNeitherReadNorStored() throws Exception {
    int size = 4 << 20;
    byte[] data = new byte[size];
    new Random(7).nextBytes(data);
    List<Extent> allocated = List.of(new Extent(0, 1 << 20), new Extent(3 << 20, 1 << 20));
    DiskImage sparse =
        new DiskImage() {
          @Override
          public long size() {
            return size;
          }

          @Override
          public String format() {
            return "test";
          }

          @Override
          public void read(long offset, ByteBuffer dst) throws IOException {
            for (Extent e : List.of(new Extent(1 << 20, 2 << 20))) {
              if (offset < e.end() && offset + dst.remaining() > e.offset()) {
                throw new IOException("read of unallocated range at " + offset);
              }
            }
            dst.put(data, (int) offset, dst.remaining());
          }

          @Override
          public List<Extent> allocation(long offset, long length) {
            return allocated;
          }

          @Override
          public void close() {}
        };
    try (Repository repo = init()) {
      BackupResult r =
          repo.backup(
              new BackupRequest(List.of(new NamedDisk("d", sparse)), "h", null, null),
              BackupListener.NONE);
      assertThat(r.progress().bytesZero()).isEqualTo(2 << 20);
      assertThat(r.manifest().disk("d").format()).isEqualTo("test");
      Arrays.fill(data, 1 << 20, 3 << 20, (byte) 0);
      repo.restoreDisk(r.manifest(), "d", tmp.resolve("d.out"));
      assertThat(sha256(tmp.resolve("d.out"))).isEqualTo(sha256(data));
    }
  }

  @Test
  void unreadableSourceFailsCleanlyAndTheNextBackupSucceeds() throws Exception {
    byte[] data = TestImages.mixed(6 << 20, 8);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    try (Repository repo = init();
        RawDiskImage good = RawDiskImage.open(image)) {
      DiskImage failing =
          new DiskImage() {
            @Override
            public long size() {
              return good.size();
            }

            @Override
            public String format() {
              return "raw";
            }

            @Override
            public void read(long offset, ByteBuffer dst) throws IOException {
              if (offset >= (4 << 20)) {
                throw new IOException("input/output error");
              }
              good.read(offset, dst);
            }

            @Override
            public void close() {}

            @Override
            public String toString() {
              return "/dev/bad";
            }
          };
      assertThatThrownBy(
              () ->
                  repo.backup(
                      new BackupRequest(List.of(new NamedDisk("vda", failing)), "h", null, null),
                      BackupListener.NONE))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageStartingWith(
              "unable to read disk 'vda' (/dev/bad) at offset 4194304: input/output error");
      assertThat(repo.snapshots()).isEmpty();
      assertThat(repo.verify(false, VerifyListener.NONE).ok()).isTrue();
      BackupResult r = backup(repo, "vda", image, "h");
      repo.restoreDisk(r.manifest(), "vda", tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
    }
  }

  @Test
  void resolvesIdsPrefixesAndLatest() throws Exception {
    Path image = TestImages.write(tmp.resolve("small.raw"), new byte[] {1, 2, 3});
    try (Repository repo = init()) {
      List<Manifest> made = new ArrayList<>();
      for (int i = 0; i < 17; i++) {
        made.add(backup(repo, "vda", image, "h" + i).manifest());
      }
      assertThat(repo.snapshots()).hasSize(17);
      Manifest any = made.get(5);
      assertThat(repo.resolve(any.id())).isEqualTo(any);
      assertThat(repo.resolve("latest").id()).isEqualTo(repo.snapshots().get(16).id());
      String shared = null;
      for (Manifest a : made) {
        for (Manifest b : made) {
          if (a != b && a.id().charAt(0) == b.id().charAt(0)) {
            shared = a.id().substring(0, 1);
          }
        }
      }
      String prefix = shared;
      assertThat(prefix).as("pigeonhole: 17 ids share a first digit").isNotNull();
      assertThatThrownBy(() -> repo.resolve(prefix))
          .isInstanceOf(AmbiguousSnapshotException.class)
          .hasMessageStartingWith("snapshot prefix '" + prefix + "' is ambiguous: it matches ");
      String unique = any.id().substring(0, 12);
      assertThat(repo.resolve(unique)).isEqualTo(any);
      assertThatThrownBy(() -> repo.resolve("0000000000000000000000000000"))
          .isInstanceOf(SnapshotNotFoundException.class)
          .hasMessageStartingWith("no snapshot matches '0000000000000000000000000000'");
      assertThatThrownBy(() -> repo.resolve("../etc"))
          .isInstanceOf(SnapshotNotFoundException.class)
          .hasMessage(
              "invalid snapshot reference '../etc': give an id, a unique id prefix, or 'latest'");
      assertThatThrownBy(() -> repo.openDisk(any, "vdb"))
          .isInstanceOf(SnapshotNotFoundException.class)
          .hasMessageContaining("has no disk 'vdb'");
    }
  }

  @Test
  void aSnapshotDiskIsADiskImageAndBacksUpToNothingNew() throws Exception {
    Path image = TestImages.write(tmp.resolve("vm.raw"), TestImages.mixed(4 << 20, 12));
    try (Repository repo = init()) {
      Manifest m = backup(repo, "vda", image, "h").manifest();
      try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
        BackupResult again =
            repo.backup(
                new BackupRequest(List.of(new NamedDisk("copy", disk)), "h", null, m.id()),
                BackupListener.NONE);
        assertThat(again.progress().bytesNew()).isZero();
        assertThat(again.progress().bytesZero())
            .isEqualTo(m.disk("vda").size() - again.progress().bytesDeduplicated());
        assertThat(disk.chunksFetched()).isLessThan(disk.fixedIndex().count());
      }
    }
  }

  @Test
  void damagedConfigIsReportedAsCorruption() throws Exception {
    init().close();
    Path config = tmp.resolve("repo/config");
    byte[] b = Files.readAllBytes(config);
    b[20] ^= 1;
    Files.write(config, b);
    assertThatThrownBy(() -> Repository.open(tmp.resolve("repo")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageStartingWith("config: checksum mismatch: actual=");
  }

  @Test
  void latestOfAnEmptyRepositoryIsNotFound() {
    try (Repository repo = init()) {
      assertThatThrownBy(() -> repo.resolve("latest"))
          .isInstanceOf(SnapshotNotFoundException.class)
          .hasMessageContaining("run a backup first");
    }
  }

  @Test
  void reopenedRepositoryFindsItsSnapshotsAndChunks() throws Exception {
    Path image = TestImages.write(tmp.resolve("vm.raw"), TestImages.mixed(4 << 20, 10));
    Manifest m;
    try (Repository repo = init()) {
      m = backup(repo, "vda", image, "h").manifest();
    }
    try (Repository repo = Repository.open(tmp.resolve("repo"))) {
      assertThat(repo.config().chunkSize()).isEqualTo(64 << 10);
      assertThat(repo.resolve("latest")).isEqualTo(m);
      assertThat(backup(repo, "vda", image, "h").progress().bytesNew()).isZero();
      repo.restoreDisk(m, "vda", tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(image));
    }
  }

  @Test
  void openingAPathWithoutRepositoryNamesItAndTheNextStep() throws Exception {
    Path empty = Files.createDirectory(tmp.resolve("empty"));
    assertThatThrownBy(() -> Repository.open(empty))
        .isInstanceOf(NotARepositoryException.class)
        .hasMessage(
            "no repository at '"
                + empty
                + "': config file missing (create one with 'granule init --repo "
                + empty
                + "')");
    assertThatThrownBy(() -> Repository.open(tmp.resolve("nope")))
        .isInstanceOf(NotARepositoryException.class)
        .hasMessageContaining("not a directory");
  }

  @Test
  void newerRepositoryFormatIsRefused() throws Exception {
    Path dir = tmp.resolve("future");
    new LocalBlobStore(dir)
        .save(
            BlobName.CONFIG,
            new RepositoryConfig(
                    99, "ab", "2030-01-01T00:00:00Z", 1 << 20, 16 << 20, 1, "sha256", null)
                .toBytes());
    assertThatThrownBy(() -> Repository.open(dir))
        .isInstanceOf(UnsupportedRepositoryVersionException.class)
        .hasMessage(
            "repository at '"
                + dir
                + "' has format version 99 (supported: 3): upgrade granule to open it");
  }

  @Test
  void initRefusesAnExistingRepositoryOrANonEmptyDirectory() throws Exception {
    init().close();
    assertThatThrownBy(this::init)
        .isInstanceOf(RepositoryException.class)
        .hasMessageStartingWith("a repository already exists at ");
    Path other = Files.createDirectory(tmp.resolve("other"));
    Files.writeString(other.resolve("f"), "x");
    assertThatThrownBy(() -> Repository.init(other, SMALL))
        .hasMessageContaining("the directory is not empty");
  }

  /**
   * audit14 B L1: two inits of one directory at once both reported success, the second's config
   * renamed over the first's, and the repository opened with neither password. The config is saved
   * only if none is there: the init that comes second fails, keeps nothing of its own, and the
   * first's repository opens with its password.
   */
  @Test
  void anInitThatFindsAConfigSavedMeanwhileFailsAndKeepsNothing() throws Exception {
    Path dir = tmp.resolve("race");
    Path first = tmp.resolve("first");
    Repository.init(first, SMALL, "one".toCharArray()).close();
    LocalBlobStore local = new LocalBlobStore(dir);
    // the other init finishes while this one derives its key: its key blob and config land
    io.granule.engine.internal.repo.blob.BlobStore racing =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(local) {
          @Override
          public void saveNew(BlobName name, byte[] data) throws java.io.IOException {
            try (var keys = Files.list(first.resolve("keys"))) {
              for (Path k : keys.toList()) {
                Files.copy(k, dir.resolve("keys").resolve(k.getFileName()));
              }
            }
            Files.copy(first.resolve("config"), dir.resolve("config"));
            super.saveNew(name, data);
          }
        };
    assertThatThrownBy(
            () ->
                Repository.init(
                    racing,
                    SMALL,
                    java.time.Clock.systemUTC(),
                    tmp.resolve("cache"),
                    "two".toCharArray(),
                    io.granule.engine.internal.repo.crypto.KdfParams.TESTING))
        .isInstanceOf(RepositoryException.class)
        .hasMessageContaining("by another 'granule init' while this one ran");
    assertThat(Files.readAllBytes(dir.resolve("config")))
        .isEqualTo(Files.readAllBytes(first.resolve("config")));
    try (var keys = Files.list(dir.resolve("keys"))) {
      assertThat(keys.count()).as("its own key blob removed").isEqualTo(1);
    }
    try (Repository r = Repository.open(dir, () -> "one".toCharArray(), null)) {
      assertThat(r.config().encrypted()).isTrue();
    }
    // the atomic save itself: a second saveNew of a name fails, the first's bytes stay
    local.saveNew(
        new BlobName(io.granule.engine.internal.repo.blob.BlobType.SNAPSHOT, "ab".repeat(32)),
        new byte[] {1});
    assertThatThrownBy(
            () ->
                local.saveNew(
                    new BlobName(
                        io.granule.engine.internal.repo.blob.BlobType.SNAPSHOT, "ab".repeat(32)),
                    new byte[] {2}))
        .isInstanceOf(java.nio.file.FileAlreadyExistsException.class);
    assertThat(
            local.load(
                new BlobName(
                    io.granule.engine.internal.repo.blob.BlobType.SNAPSHOT, "ab".repeat(32))))
        .containsExactly(1);
  }

  /**
   * An init killed after its key blob was saved and before the config (saved last) left a directory
   * every command refused ("config file missing") and init too ("not empty") until it was removed
   * by hand (audit12). Init now clears such leftovers, and only them.
   */
  @Test
  void initRedoesAnInterruptedInitButNothingElse() throws Exception {
    Path dir = tmp.resolve("killed");
    Files.createDirectories(dir.resolve("keys"));
    Path key = Files.write(dir.resolve("keys").resolve("ab".repeat(32)), new byte[300]);
    Files.write(dir.resolve("keys").resolve(".tmp-" + "cd".repeat(32) + "-1f"), new byte[10]);
    Files.write(dir.resolve(".tmp-config-7a"), new byte[10]);
    // written just now: perhaps an init still running (audit14 B L1: a second init removed its
    // key blob and both reported success over a repository no password opened): left, refused
    assertThatThrownBy(() -> Repository.init(dir, SMALL, "pw".toCharArray()))
        .hasMessageContaining("another 'granule init' may be creating a repository there");
    assertThat(key).exists();
    try (var keys = Files.list(dir.resolve("keys"))) {
      for (Path k : keys.toList()) {
        Files.setLastModifiedTime(
            k,
            java.nio.file.attribute.FileTime.from(
                java.time.Instant.now().minus(Repository.INIT_LEFTOVER_AGE).minusSeconds(1)));
      }
    }
    try (Repository r = Repository.init(dir, SMALL, "pw".toCharArray())) {
      assertThat(r.config().encrypted()).isTrue();
    }
    try (var keys = Files.list(dir.resolve("keys"))) {
      assertThat(keys.map(p -> p.getFileName().toString()))
          .hasSize(1)
          .doesNotContain("ab".repeat(32));
    }
    assertThat(dir.resolve(".tmp-config-7a")).doesNotExist();

    // keys/ a link to another repository's keys (audit12 recheck N1: swapped in as the leftovers
    // were removed, it made init delete that repository's key blob): refused, nothing removed
    Path victim = tmp.resolve("victim");
    Repository.init(victim, SMALL, "pw".toCharArray()).close();
    long victimKeys;
    try (var keys = Files.list(victim.resolve("keys"))) {
      victimKeys = keys.count();
    }
    Path linked = tmp.resolve("linked");
    Files.createDirectories(linked);
    Files.createSymbolicLink(linked.resolve("keys"), victim.resolve("keys"));
    assertThatThrownBy(() -> Repository.init(linked, SMALL))
        .hasMessageContaining("the directory is not empty");
    try (var keys = Files.list(victim.resolve("keys"))) {
      assertThat(keys.count()).isEqualTo(victimKeys);
    }
    if ("root".equals(System.getProperty("user.name"))) {
      // a key blob another user put there is not this user's leftover
      Path planted = tmp.resolve("planted");
      Files.createDirectories(planted.resolve("keys"));
      Path his = Files.write(planted.resolve("keys").resolve("ef".repeat(32)), new byte[300]);
      Files.setAttribute(his, "unix:uid", 1001);
      assertThatThrownBy(() -> Repository.init(planted, SMALL))
          .hasMessageContaining("the directory is not empty");
      assertThat(his).exists();
    }

    // an empty directory named through a link of this user's: init works there (audit13 core L1:
    // the held open of the clean-up refused the link, and init failed)
    Path target = Files.createDirectory(tmp.resolve("target"));
    Path link = Files.createSymbolicLink(tmp.resolve("link"), target);
    Repository.init(link, SMALL).close();
    assertThat(target.resolve("config")).exists();

    // anything else there: left alone, and refused
    for (String other : new String[] {"notes.txt", "keys/README"}) {
      Path d = tmp.resolve("kept-" + other.replace('/', '-'));
      Files.createDirectories(d.resolve("keys"));
      Files.write(d.resolve("keys").resolve("ab".repeat(32)), new byte[300]);
      Files.writeString(d.resolve(other), "mine");
      assertThatThrownBy(() -> Repository.init(d, SMALL))
          .as(other)
          .hasMessageContaining("the directory is not empty");
      assertThat(d.resolve(other)).hasContent("mine");
      assertThat(d.resolve("keys").resolve("ab".repeat(32))).exists();
    }
  }
}
