package io.granule.engine.internal.repo.backup;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RestoreTargetException;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.pack.ChunkFlags;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.repo.store.ChunkReader;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The raw restore's write path on real targets: direct and buffered writes, disk sizes that are and
 * are not multiples of the block and chunk sizes, new and existing targets, filesystems that refuse
 * {@code O_DIRECT} (ramfs) or take it (tmpfs on recent kernels), a full filesystem, and a loop
 * device. Every result is compared byte for byte with the image. Tests that need root (mounts, loop
 * devices) skip without it, and fail without it under {@code CI=true}.
 */
class DiskRestorerTest {
  private static final int CHUNK = 64 << 10;
  private static final boolean CI = "true".equals(System.getenv("CI"));

  @TempDir Path tmp;

  /** Disk sizes: chunk-aligned, block-aligned with a short last chunk, unaligned, under a block. */
  private static final int ALIGNED = 6 << 20;

  private static final int SHORT_LAST_CHUNK = (6 << 20) + 12 * 1024;
  private static final int UNALIGNED = (6 << 20) - 1234;
  private static final int TINY = 1000;

  private static void assumeRoot(String why) {
    boolean root = "root".equals(System.getProperty("user.name"));
    if (CI) {
      assertThat(root).as("CI runs as root: " + why).isTrue();
    }
    assumeTrue(root, "needs root: " + why);
  }

  private static String run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out;
    try (InputStream in = p.getInputStream()) {
      out = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
    }
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("%s finished", List.of(cmd)).isTrue();
    assertThat(p.exitValue()).as("%s: %s", List.of(cmd), out).isZero();
    return out;
  }

  /** A seeded image of {@code size} bytes with zero, random, text and repeated runs. */
  private static byte[] image(int size, long seed) {
    byte[] data = TestImages.mixed(Math.max(size, 64 << 10), seed);
    data = Arrays.copyOf(data, size);
    // Data right up to the end, so the tail is written (not left to the file's size).
    data[size - 1] = (byte) 0x5a;
    return data;
  }

  /** A repository in {@code tmp} holding {@code data} as disk "vda" of one snapshot. */
  private static Manifest backup(Repository repo, Path dir, byte[] data) throws IOException {
    Path file = TestImages.write(dir.resolve("vm-" + data.length + ".raw"), data);
    try (RawDiskImage img = RawDiskImage.open(file)) {
      return repo.backup(
              new BackupRequest(List.of(new NamedDisk("vda", img)), "h", null, null),
              BackupListener.NONE)
          .manifest();
    }
  }

  private Repository repo() {
    return Repository.init(
        tmp.resolve("repo"),
        RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(2 << 20));
  }

  private static RestoreResult restore(
      Repository repo, Manifest m, Path target, int threads, boolean direct) {
    return restore(repo, m, target, threads, direct, DiskRestorer.WRITEBACK);
  }

  private static RestoreResult restore(
      Repository repo, Manifest m, Path target, int threads, boolean direct, long writeback) {
    try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
      return DiskRestorer.restore(
          disk, target, threads, direct, 0, writeback, RestoreListener.NONE);
    }
  }

  private static long allocatedBytes(Path file) throws Exception {
    return Long.parseLong(run("stat", "-c", "%b", file.toString())) * 512;
  }

  @ParameterizedTest
  @ValueSource(ints = {ALIGNED, SHORT_LAST_CHUNK, UNALIGNED, TINY})
  void newFileIsTheImageAndSparseWithDirectAndBufferedWrites(int size) throws Exception {
    byte[] data = image(size, size);
    try (Repository repo = repo()) {
      Manifest m = backup(repo, tmp, data);
      for (boolean direct : new boolean[] {true, false}) {
        for (int threads : new int[] {1, 4}) {
          Path out = tmp.resolve("out-" + direct + "-" + threads);
          RestoreResult r = restore(repo, m, out, threads, direct);
          assertThat(r.sparse()).isTrue();
          assertThat(r.bytes()).isEqualTo(size);
          assertThat(Files.size(out)).isEqualTo(size);
          assertThat(sha256(out))
              .as("direct=%s threads=%d", direct, threads)
              .isEqualTo(sha256(data));
          if (size > CHUNK) {
            assertThat(r.zeroChunks()).isPositive();
            assertThat(allocatedBytes(out))
                .as("zero chunks stay holes")
                .isLessThanOrEqualTo(size - r.zeroChunks() * CHUNK + 8192);
          }
        }
      }
    }
  }

  @Test
  void filesTakeOnlyLongWritesDirectAndBlockDevicesAllUnlessTheModeSaysOtherwise()
      throws Exception {
    Path file = Files.write(tmp.resolve("existing"), new byte[10]);
    Path fresh = tmp.resolve("new");
    assertThat(DiskRestorer.minDirect(fresh, "auto")).isEqualTo(DiskRestorer.MIN_DIRECT_FILE);
    assertThat(DiskRestorer.minDirect(file, "auto")).isEqualTo(DiskRestorer.MIN_DIRECT_FILE);
    assertThat(DiskRestorer.MIN_DIRECT_FILE).isEqualTo(4 << 20);
    assertThat(DiskRestorer.minDirect(fresh, "always")).isZero();
    Path dev = Path.of("/dev/loop0");
    if (Files.exists(dev)) {
      assertThat(DiskRestorer.minDirect(dev, "auto")).isZero();
    }
  }

  @Test
  void writesShorterThanTheDirectMinimumGoThroughThePageCache() throws Exception {
    Path f = tmp.resolve("mixed");
    int min = 4 * 4096;
    try (FileChannel ch =
            FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        RawTarget t = RawTarget.open(f, ch, true, CHUNK, min, 0, true)) {
      if (!t.direct()) {
        assumeTrue(CI, "the temporary directory refuses O_DIRECT");
      }
      ByteBuffer b = t.allocate(min);
      for (int i = 0; i < min; i++) {
        b.put(i, (byte) (i * 7));
      }
      t.write(b.duplicate().limit(min - 4096), 0);
      assertThat(t.directBytes()).as("a write below the minimum").isZero();
      t.write(b.duplicate(), min);
      assertThat(t.directBytes()).as("a write of the minimum").isEqualTo(min);
      t.finish();
    }
    byte[] got = Files.readAllBytes(f);
    assertThat(got).hasSize(2 * min);
    for (int i = 0; i < min; i++) {
      assertThat(got[min + i]).isEqualTo((byte) (i * 7));
      assertThat(got[i]).isEqualTo(i < min - 4096 ? (byte) (i * 7) : 0);
    }
  }

  @Test
  void reservedRangesAreAllocatedBeforeAnyWriteAndTakeShortWritesDirect() throws Exception {
    Path f = tmp.resolve("reserved");
    int min = 4 << 20;
    try (FileChannel ch =
            FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        RawTarget t = RawTarget.open(f, ch, true, CHUNK, min, 0, true)) {
      ch.truncate(0);
      try (java.io.RandomAccessFile r = new java.io.RandomAccessFile(f.toFile(), "rw")) {
        r.setLength(8 << 20); // sparse, as a restore sizes a new file
      }
      if (!t.direct()) {
        assumeTrue(CI, "the temporary directory refuses O_DIRECT");
      }
      assertThat(allocatedBytes(f)).isZero();
      t.reserve(new long[] {0, 5 << 20}, new long[] {1 << 20, 7 << 20}, 2);
      assertThat(allocatedBytes(f)).as("allocated before any write").isEqualTo(3 << 20);
      assertThat(Files.size(f)).isEqualTo(8 << 20);

      ByteBuffer b = t.allocate(8192);
      for (int i = 0; i < 8192; i++) {
        b.put(i, (byte) (i * 13));
      }
      t.write(b, 5 << 20);
      assertThat(t.directBytes())
          .as("a write below the minimum, into reserved blocks")
          .isEqualTo(8192);
      t.finish();
    }
    byte[] want = new byte[8 << 20];
    for (int i = 0; i < 8192; i++) {
      want[(5 << 20) + i] = (byte) (i * 13);
    }
    assertThat(Files.readAllBytes(f)).isEqualTo(want);
    assertThat(allocatedBytes(f)).as("holes stay holes").isEqualTo(3 << 20);
  }

  @ParameterizedTest
  @ValueSource(ints = {ALIGNED, UNALIGNED})
  void bufferedWritesWithFrequentWriteBackGiveTheImage(int size) throws Exception {
    byte[] data = image(size, 23 + size);
    try (Repository repo = repo()) {
      Manifest m = backup(repo, tmp, data);
      Path out = tmp.resolve("wb");
      RestoreResult r = restore(repo, m, out, 4, false, 64 << 10);
      assertThat(r.sparse()).isTrue();
      assertThat(sha256(out)).isEqualTo(sha256(data));
      Path old = tmp.resolve("wb-old");
      byte[] junk = new byte[size + 1];
      Arrays.fill(junk, (byte) 0xee);
      Files.write(old, junk);
      restore(repo, m, old, 3, false, 64 << 10);
      assertThat(sha256(old)).isEqualTo(sha256(data));
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {ALIGNED, UNALIGNED})
  void existingFilesLongerAndShorterEndAsTheImageWithNoOldByteLeft(int size) throws Exception {
    byte[] data = image(size, 7 + size);
    try (Repository repo = repo()) {
      Manifest m = backup(repo, tmp, data);
      for (boolean direct : new boolean[] {true, false}) {
        for (int old : new int[] {size + 70_000, size / 3}) {
          Path out = tmp.resolve("old-" + direct + "-" + old);
          byte[] junk = new byte[old];
          Arrays.fill(junk, (byte) 0xff);
          Files.write(out, junk);
          RestoreResult r = restore(repo, m, out, 4, direct);
          assertThat(r.sparse()).isFalse();
          assertThat(sha256(out)).as("direct=%s old=%d", direct, old).isEqualTo(sha256(data));
        }
      }
    }
  }

  /**
   * A disk of 64 KiB chunks that repeat: one chunk at three places (one of them in the same run as
   * its first), an adjacent pair copied as a pair, zeros, and a short last chunk. Copies split the
   * runs, and with 4 writers land between runs of other writers; an existing target's old bytes
   * must all be overwritten.
   */
  @Test
  void aChunkAtSeveralPlacesIsFetchedOnceAndWrittenAtEach() throws Exception {
    byte[][] blocks = new byte[6][];
    for (int i = 0; i < blocks.length; i++) {
      blocks[i] = new byte[CHUNK];
      new java.util.Random(100 + i).nextBytes(blocks[i]);
    }
    // A B C A 0 A B C D 0 B C E D B C + a short unique tail (E at index 4 is also random)
    int[] layout = {0, 1, 2, 0, -1, 0, 1, 2, 3, -1, 1, 2, 4, 3, 1, 2};
    int size = layout.length * CHUNK + 5000;
    byte[] data = new byte[size];
    for (int i = 0; i < layout.length; i++) {
      if (layout[i] >= 0) {
        System.arraycopy(blocks[layout[i]], 0, data, i * CHUNK, CHUNK);
      }
    }
    for (int i = layout.length * CHUNK; i < size; i++) {
      data[i] = (byte) (i * 31 + 7);
    }
    int distinct = 5 + 1; // A B C D E and the tail
    try (Repository repo = repo()) {
      Manifest m = backup(repo, tmp, data);
      for (boolean fresh : new boolean[] {true, false}) {
        for (int threads : new int[] {1, 4}) {
          Path out = tmp.resolve("copies-" + fresh + "-" + threads);
          if (!fresh) {
            byte[] junk = new byte[size];
            Arrays.fill(junk, (byte) 0xee);
            Files.write(out, junk);
          }
          RestoreResult r;
          try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
            r =
                DiskRestorer.restore(
                    disk, out, threads, true, 0, DiskRestorer.WRITEBACK, RestoreListener.NONE);
          }
          assertThat(sha256(out)).as("fresh=%s threads=%d", fresh, threads).isEqualTo(sha256(data));
          assertThat(r.chunksFetched()).as("each distinct chunk fetched once").isEqualTo(distinct);
          assertThat(r.zeroChunks()).isEqualTo(2);
        }
      }
    }
  }

  @Test
  void progressCountsWritesCopiesAndHolesUpToTheDiskSize() throws Exception {
    byte[] data = image(SHORT_LAST_CHUNK, 41);
    Arrays.fill(data, data.length - 3 * CHUNK, data.length, (byte) 0); // holes after the last write
    try (Repository repo = repo()) {
      Manifest m = backup(repo, tmp, data);
      for (boolean fresh : new boolean[] {true, false}) {
        Path out = tmp.resolve("progress-" + fresh);
        if (!fresh) {
          Files.write(out, new byte[100]);
        }
        java.util.Queue<long[]> reports = new java.util.concurrent.ConcurrentLinkedQueue<>();
        try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
          DiskRestorer.restore(
              disk,
              out,
              4,
              true,
              0,
              DiskRestorer.WRITEBACK,
              (done, total) -> reports.add(new long[] {done, total}));
        }
        assertThat(sha256(out)).isEqualTo(sha256(data));
        assertThat(reports).as("fresh=%s", fresh).isNotEmpty();
        assertThat(reports).allSatisfy(r -> assertThat(r[1]).isEqualTo(SHORT_LAST_CHUNK));
        assertThat(reports)
            .allSatisfy(r -> assertThat(r[0]).isBetween(1L, (long) SHORT_LAST_CHUNK));
        long[] done = reports.stream().mapToLong(r -> r[0]).toArray();
        assertThat(done).as("reports never go backwards").isSorted();
        assertThat(done[done.length - 1])
            .as("the last is the whole disk")
            .isEqualTo(SHORT_LAST_CHUNK);
      }
    }
  }

  /** A repository in {@code tmp}, encrypted or not. */
  private Repository repo(boolean encrypted) {
    if (!encrypted) {
      return repo();
    }
    return Repository.init(
        new LocalBlobStore(tmp.resolve("repo")),
        RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(2 << 20),
        Clock.systemUTC(),
        tmp.resolve("cache"),
        "pw".toCharArray(),
        KdfParams.TESTING);
  }

  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void chunksDecodedIntoHeapAndDirectBuffersAreTheChunksAndCounted(boolean encrypted)
      throws Exception {
    byte[] data = image(ALIGNED, 17);
    try (Repository repo = repo(encrypted);
        SnapshotDisk disk = repo.openDisk(backup(repo, tmp, data), "vda");
        var decoder = disk.decoder()) {
      int nonZero = 0;
      int compressed = 0;
      ByteBuffer heap = ByteBuffer.allocate(CHUNK + 10);
      ByteBuffer direct = ByteBuffer.allocateDirect(CHUNK + 10);
      for (int p = 0; p < disk.fixedIndex().count(); p++) {
        if (disk.fixedIndex().get(p).isZero()) {
          continue;
        }
        nonZero++;
        if ((disk.location(p).flags() & ChunkFlags.ZSTD) != 0) {
          compressed++;
        }
        byte[] want = Arrays.copyOfRange(data, p * CHUNK, p * CHUNK + CHUNK);
        for (ByteBuffer b : new ByteBuffer[] {heap, direct}) {
          b.clear().position(10);
          disk.readChunk(p, b, decoder);
          assertThat(b.position()).isEqualTo(10 + CHUNK);
          byte[] got = new byte[CHUNK];
          b.position(10);
          b.get(got);
          assertThat(got).as("chunk %d into %s", p, b).isEqualTo(want);
        }
      }
      assertThat(compressed).as("compressed chunks").isPositive().isLessThan(nonZero);
      assertThat(disk.chunksFetched()).isEqualTo(2L * nonZero);
    }
  }

  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void aDamagedRecordStoredOrCompressedFailsNamingItsChunk(boolean encrypted) throws Exception {
    byte[] data = image(ALIGNED, 19);
    Manifest m;
    try (Repository repo = repo(encrypted)) {
      m = backup(repo, tmp, data);
    }
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    for (boolean zstd : new boolean[] {false, true}) {
      try (Repository repo =
              encrypted
                  ? Repository.open(tmp.resolve("repo"), () -> "pw".toCharArray())
                  : Repository.open(tmp.resolve("repo"));
          SnapshotDisk disk = repo.openDisk(m, "vda");
          var decoder = disk.decoder()) {
        int victim = -1;
        for (int p = 0; p < disk.fixedIndex().count() && victim < 0; p++) {
          ChunkLocation loc = disk.location(p);
          if (loc != null && ((loc.flags() & ChunkFlags.ZSTD) != 0) == zstd) {
            victim = p;
          }
        }
        assertThat(victim)
            .as("a chunk stored %s", zstd ? "compressed" : "as it is")
            .isNotNegative();
        ChunkLocation loc = disk.location(victim);
        Path pack = store.path(ChunkReader.packName(loc.pack()));
        try (FileChannel ch =
            FileChannel.open(pack, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
          ByteBuffer one = ByteBuffer.allocate(1);
          long at = loc.offset() + loc.storedLength() / 2;
          ch.read(one, at);
          one.put(0, (byte) (one.get(0) ^ 0x04)).clear();
          ch.write(one, at);
        }
        String id = disk.fixedIndex().get(victim).toString();
        int p = victim;
        ByteBuffer dst = ByteBuffer.allocateDirect(CHUNK);
        assertThatThrownBy(() -> disk.readChunk(p, dst, decoder))
            .isInstanceOf(RepositoryCorruptedException.class)
            .hasMessageContaining("chunk " + id);
      }
    }
  }

  @Test
  void directWritesAreUsedWhereTheFilesystemTakesThem() throws Exception {
    Path f = tmp.resolve("probe");
    try (FileChannel ch =
            FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        RawTarget t = RawTarget.open(f, ch, true, CHUNK, 0, 0, true)) {
      boolean takes = t.direct();
      if (!takes) {
        // The temporary directory's filesystem may refuse O_DIRECT on a developer's machine.
        assumeTrue(CI, "the temporary directory refuses O_DIRECT");
      }
      assertThat(takes).isTrue();
      ByteBuffer b = t.allocate(3 * 4096 + 100);
      assertThat(b.alignmentOffset(0, t.align())).isZero();
      for (int i = 0; i < b.limit(); i++) {
        b.put(i, (byte) i);
      }
      t.write(b, 8192);
      assertThat(t.direct()).as("still direct after a write with a tail").isTrue();
    }
    byte[] got = Files.readAllBytes(f);
    assertThat(got).hasSize(8192 + 3 * 4096 + 100);
    for (int i = 0; i < 3 * 4096 + 100; i++) {
      assertThat(got[8192 + i]).isEqualTo((byte) i);
    }
  }

  @Test
  void filesystemThatRefusesDirectWritesGetsBufferedOnesAndTheImage() throws Exception {
    assumeRoot("mounts a ramfs, which refuses O_DIRECT");
    Path mnt = Files.createDirectory(tmp.resolve("ramfs"));
    run("mount", "-t", "ramfs", "ramfs", mnt.toString());
    try (Repository repo = repo()) {
      for (int size : new int[] {ALIGNED, UNALIGNED}) {
        byte[] data = image(size, 3 + size);
        Manifest m = backup(repo, tmp, data);
        Path out = mnt.resolve("out-" + size);
        try (FileChannel ch =
                FileChannel.open(out, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            RawTarget t = RawTarget.open(out, ch, true, CHUNK, 0, 0, true)) {
          assertThat(t.direct()).as("ramfs refuses O_DIRECT").isFalse();
        }
        Files.delete(out);
        repo.restoreDisk(m, "vda", out);
        assertThat(sha256(out)).isEqualTo(sha256(data));
        byte[] junk = new byte[size + 5000];
        Arrays.fill(junk, (byte) 0xff);
        Files.write(out, junk);
        RestoreResult r = restore(repo, m, out, 4, true);
        assertThat(r.sparse()).isFalse();
        assertThat(sha256(out)).isEqualTo(sha256(data));
      }
    } finally {
      run("umount", mnt.toString());
    }
  }

  @Test
  void tmpfsTargetIsTheImage() throws Exception {
    Path shm = Path.of("/dev/shm");
    if (!Files.isDirectory(shm) || !Files.isWritable(shm)) {
      assumeTrue(false, "no writable /dev/shm");
    }
    Path dir = Files.createTempDirectory(shm, "granule-restore-test");
    try (Repository repo = repo()) {
      byte[] data = image(UNALIGNED, 11);
      Manifest m = backup(repo, tmp, data);
      for (boolean direct : new boolean[] {true, false}) {
        Path out = dir.resolve("out-" + direct);
        restore(repo, m, out, 4, direct);
        assertThat(sha256(out)).isEqualTo(sha256(data));
        Files.delete(out);
      }
      // no allocation ahead in memory: it would clear pages the writes then fill
      Path f = dir.resolve("reserve");
      try (FileChannel ch =
              FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
          RawTarget t = RawTarget.open(f, ch, true, CHUNK, 0, 0, true)) {
        ch.write(ByteBuffer.wrap(new byte[1]), (4 << 20) - 1);
        t.reserve(new long[] {0}, new long[] {4 << 20}, 1);
        assertThat(allocatedBytes(f)).isLessThanOrEqualTo(4096);
      }
      Files.delete(f);
    } finally {
      try (var s = Files.list(dir)) {
        for (Path p : s.toList()) {
          Files.delete(p);
        }
      }
      Files.delete(dir);
    }
  }

  @Test
  void fullFilesystemFailsWithATargetError() throws Exception {
    assumeRoot("mounts a 1 MiB tmpfs");
    Path mnt = Files.createDirectory(tmp.resolve("small"));
    run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt.toString());
    try (Repository repo = repo()) {
      Manifest m = backup(repo, tmp, image(ALIGNED, 5));
      Path out = mnt.resolve("out");
      for (boolean direct : new boolean[] {true, false}) {
        assertThatThrownBy(() -> restore(repo, m, out, 4, direct))
            .isInstanceOf(RestoreTargetException.class)
            .hasMessageStartingWith("unable to restore to '" + out + "': ")
            .hasMessageContaining("No space left on device")
            .hasMessageEndingWith(" (check the target path and free space)");
        Files.deleteIfExists(out);
      }
    } finally {
      run("umount", mnt.toString());
    }
  }

  @Test
  void loopDeviceGetsEveryByteWithDirectAndBufferedWritesAndKeepsWhatLiesBeyond() throws Exception {
    assumeRoot("attaches a loop device");
    int deviceSize = 8 << 20;
    try (Repository repo = repo()) {
      for (int size : new int[] {ALIGNED, UNALIGNED}) {
        byte[] data = image(size, 13 + size);
        Manifest m = backup(repo, tmp, data);
        for (boolean direct : new boolean[] {true, false}) {
          Path backing = tmp.resolve("device-" + size + "-" + direct + ".img");
          byte[] junk = new byte[deviceSize];
          Arrays.fill(junk, (byte) 0xa5);
          Files.write(backing, junk);
          Path dev = Path.of(run("losetup", "--find", "--show", backing.toString()));
          try {
            if (direct) {
              try (FileChannel ch = FileChannel.open(dev, StandardOpenOption.WRITE);
                  RawTarget t = RawTarget.open(dev, ch, true, CHUNK, 0, 0, false)) {
                assertThat(t.direct()).as("a loop device takes O_DIRECT").isTrue();
              }
            }
            RestoreResult r = restore(repo, m, dev, 4, direct);
            assertThat(r.sparse()).isFalse();
            try (RawDiskImage device = RawDiskImage.open(dev)) {
              ByteBuffer head = ByteBuffer.allocate(size);
              device.read(0, head);
              assertThat(sha256(head.array()))
                  .as("size=%d direct=%s", size, direct)
                  .isEqualTo(sha256(data));
              ByteBuffer beyond = ByteBuffer.allocate(deviceSize - size);
              device.read(size, beyond);
              assertThat(beyond.array()).containsOnly((byte) 0xa5);
            }
          } finally {
            run("losetup", "-d", dev.toString());
          }
        }
      }
    }
  }
}
