package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.granule.engine.internal.nativelib.NativeLibrary;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A raw image file that is not in the page cache when it is opened is read past it ({@code
 * O_DIRECT}) for large aligned reads into aligned direct buffers, as a backup reads: the bytes are
 * the file's, and the page cache stays as it was ({@code fincore}). Small and unaligned reads, and
 * every read of a file that is cached, go through the page cache. Needs cachestat(2) (Linux 6.5),
 * libgranule-native, {@code O_DIRECT} in the temporary directory, and fincore; under {@code
 * CI=true} their absence is a failure.
 */
class ColdFileReadTest {
  private static final int MIB = 1 << 20;
  private static final boolean CI = "true".equals(System.getenv("CI"));

  @TempDir Path tmp;

  private static void require(boolean ok, String why) {
    if (CI) {
      assertThat(ok).as(why).isTrue();
    }
    assumeTrue(ok, why);
  }

  @BeforeEach
  void prerequisites() throws IOException {
    require(NativeLibrary.unavailableReason() == null, "libgranule-native");
    require(Files.isExecutable(Path.of("/usr/bin/fincore")), "fincore (util-linux)");
    String type = Files.getFileStore(tmp).type();
    require(!type.equals("tmpfs") && !type.equals("ramfs"), "a temporary directory on disk");
  }

  private static String run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out;
    try (InputStream in = p.getInputStream()) {
      out = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
    }
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("%s: %s", List.of(cmd), out).isZero();
    return out;
  }

  /** Bytes of {@code f} in the page cache. */
  private static long cached(Path f) throws Exception {
    return Long.parseLong(
        run("fincore", "--bytes", "--noheadings", "--output", "RES", f.toString()));
  }

  /** Writes {@code data} to {@code f}, synced, and drops it from the page cache. */
  private static Path cold(Path f, byte[] data) throws Exception {
    Files.write(f, data);
    run("dd", "if=" + f, "iflag=nocache", "count=0", "status=none"); // fadvise DONTNEED, synced
    run("sync", f.toString());
    run("dd", "if=" + f, "iflag=nocache", "count=0", "status=none");
    return f;
  }

  private static byte[] random(int size, long seed) {
    byte[] b = new byte[size];
    new Random(seed).nextBytes(b);
    return b;
  }

  private static ByteBuffer aligned(int length) {
    return ByteBuffer.allocateDirect(length + 4096).alignedSlice(4096).limit(length);
  }

  @Test
  void aColdFileIsReadPastThePageCacheInLargeAlignedReadsOnly() throws Exception {
    byte[] data = random(16 * MIB + 1000, 1);
    Path f = cold(tmp.resolve("cold.img"), data);
    require(cached(f) < MIB, "the file could be dropped from the page cache");
    try (RawDiskImage img = RawDiskImage.open(f)) {
      require(img.directFileReads(), "cachestat(2) and O_DIRECT here");
      ByteBuffer b = aligned(8 * MIB);
      img.read(4 * MIB, b);
      byte[] got = new byte[8 * MIB];
      b.flip().get(got);
      assertThat(got).isEqualTo(Arrays.copyOfRange(data, 4 * MIB, 12 * MIB));
      assertThat(cached(f)).as("bytes cached after a large aligned read").isLessThan(MIB);

      // small, unaligned and heap reads: through the page cache, right all the same
      ByteBuffer small = aligned(4096);
      img.read(0, small);
      assertThat(small.flip().get(17)).isEqualTo(data[17]);
      ByteBuffer unaligned = aligned(2 * MIB);
      img.read(12 * MIB + 512, unaligned);
      byte[] u = new byte[2 * MIB];
      unaligned.flip().get(u);
      assertThat(u).isEqualTo(Arrays.copyOfRange(data, 12 * MIB + 512, 14 * MIB + 512));
      ByteBuffer tail = ByteBuffer.allocate(MIB + 1000); // the file's end, not a block multiple
      img.read(15 * MIB, tail);
      assertThat(tail.array()).isEqualTo(Arrays.copyOfRange(data, 15 * MIB, data.length));
      assertThat(cached(f)).as("those went through the page cache").isGreaterThan(2 * MIB);
    }
  }

  @Test
  void aCachedFileIsReadThroughThePageCache() throws Exception {
    byte[] data = random(8 * MIB, 2);
    Path f = tmp.resolve("warm.img");
    Files.write(f, data);
    Files.readAllBytes(f);
    require(cached(f) >= 8 * MIB, "the file stays in the page cache once read");
    try (RawDiskImage img = RawDiskImage.open(f)) {
      assertThat(img.directFileReads()).isFalse();
      assertThat(img.readsPastPageCache()).isFalse();
    }
  }

  @Test
  void aBackupOfAColdImageLeavesThePageCacheAloneAndRestoresIdentical() throws Exception {
    byte[] data = random(24 * MIB, 3);
    Arrays.fill(data, 8 * MIB, 12 * MIB, (byte) 0); // zero chunks too
    Path f = cold(tmp.resolve("vm.img"), data);
    require(cached(f) < MIB, "the file could be dropped from the page cache");
    Path restored = tmp.resolve("restored.img");
    try (Repository repo =
            Repository.init(
                tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(256 << 10));
        RawDiskImage img = RawDiskImage.open(f)) {
      require(img.directFileReads(), "cachestat(2) and O_DIRECT here");
      assertThat(new HeldDiskImage(img, null).readsPastPageCache()).isTrue();
      Manifest m =
          repo.backup(
                  new BackupRequest(
                      List.of(new BackupRequest.NamedDisk("vda", img)), "h", null, null),
                  BackupListener.NONE)
              .manifest();
      assertThat(cached(f)).as("bytes of the image cached by the backup").isLessThan(MIB);
      repo.restoreDisk(m, "vda", restored);
    }
    assertThat(Files.readAllBytes(restored)).isEqualTo(data);
  }
}
