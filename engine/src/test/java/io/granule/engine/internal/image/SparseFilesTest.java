package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

import io.granule.engine.internal.nativelib.NativeLibrary;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A raw image's holes, found with SEEK_DATA/SEEK_HOLE: reported as unallocated, never read by a
 * backup, restored as zeros.
 */
class SparseFilesTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  @BeforeEach
  void needsTheLibrary() {
    String missing = NativeLibrary.unavailableReason();
    if ("true".equals(System.getenv("CI"))) {
      assertThat(missing).as("libgranule-native under CI").isNull();
    }
    assumeThat(missing).as("libgranule-native").isNull();
  }

  /** A 64 MiB sparse file with data at [4, 5) MiB, [10, 12) MiB and its last MiB. */
  private Path sparseImage() throws IOException {
    Path f = tmp.resolve("sparse.img");
    Random rnd = new Random(5);
    try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
      raf.setLength(64L * MIB);
      for (long[] r : new long[][] {{4, 1}, {10, 2}, {63, 1}}) {
        byte[] b = new byte[(int) r[1] * MIB];
        rnd.nextBytes(b);
        raf.seek(r[0] * MIB);
        raf.write(b);
      }
    }
    return f;
  }

  /** Whether the file system under tmp keeps holes (it may allocate them all, then skip). */
  private static boolean keepsHoles(Path f) throws IOException {
    Process p = new ProcessBuilder("stat", "-c", "%b %B", f.toString()).start();
    String[] out =
        new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).trim().split(" ");
    return Long.parseLong(out[0]) * Long.parseLong(out[1]) < Files.size(f);
  }

  @Test
  void reportsDataRangesAndHoles() throws IOException {
    Path f = sparseImage();
    assumeThat(keepsHoles(f)).as("file system keeps holes").isTrue();
    try (RawDiskImage image = RawDiskImage.open(f)) {
      List<Extent> all = image.allocation(0, image.size());
      // File systems allocate in blocks of up to a few KiB; data ranges may widen to them.
      assertThat(all).hasSize(3);
      assertCovers(all.get(0), 4L * MIB, MIB);
      assertCovers(all.get(1), 10L * MIB, 2L * MIB);
      assertCovers(all.get(2), 63L * MIB, MIB);
      long data = all.stream().mapToLong(Extent::length).sum();
      assertThat(data).isLessThan(5L * MIB);

      // A sub-range cuts extents at its ends; a range inside a hole has none.
      assertThat(image.allocation(11L * MIB, 4L * MIB)).containsExactly(new Extent(11L * MIB, MIB));
      assertThat(image.allocation(20L * MIB, 8L * MIB)).isEmpty();
      assertThat(image.allocation(63L * MIB + 5, MIB - 5))
          .containsExactly(new Extent(63L * MIB + 5, MIB - 5));
    }
  }

  private static void assertCovers(Extent e, long offset, long length) {
    assertThat(e.offset()).isLessThanOrEqualTo(offset).isGreaterThan(offset - 64 * 1024);
    assertThat(e.offset() + e.length())
        .isGreaterThanOrEqualTo(offset + length)
        .isLessThan(offset + length + 64 * 1024);
  }

  @Test
  void aBackupReadsNoHoleAndRestoresThemAsZeros() throws Exception {
    Path f = sparseImage();
    assumeThat(keepsHoles(f)).as("file system keeps holes").isTrue();
    AtomicLong read = new AtomicLong();
    try (Repository repo =
            Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(MIB));
        RawDiskImage raw = RawDiskImage.open(f)) {
      DiskImage counting = counting(raw, read);
      BackupResult r =
          repo.backup(
              new BackupRequest(
                  List.of(new BackupRequest.NamedDisk("vda", counting)), "h", null, null),
              BackupListener.NONE);
      assertThat(read.get()).as("bytes read from the image").isEqualTo(4L * MIB);
      assertThat(r.progress().bytesZero()).isEqualTo(60L * MIB);
      assertThat(r.progress().bytesRead()).isEqualTo(64L * MIB);
      Path out = tmp.resolve("restored.img");
      repo.restoreDisk(repo.resolve("latest"), "vda", out);
      assertThat(sha256(out)).isEqualTo(sha256(f));
    }
  }

  @Test
  void aFileWithoutHolesIsAllData() throws IOException {
    Path f = tmp.resolve("full.img");
    byte[] b = new byte[3 * MIB + 17];
    new Random(1).nextBytes(b);
    Files.write(f, b);
    try (RawDiskImage image = RawDiskImage.open(f)) {
      assertThat(image.allocation(0, image.size())).containsExactly(new Extent(0, b.length));
    }
  }

  private static DiskImage counting(DiskImage d, AtomicLong read) {
    return new DiskImage() {
      @Override
      public long size() {
        return d.size();
      }

      @Override
      public String format() {
        return d.format();
      }

      @Override
      public void read(long offset, ByteBuffer dst) throws IOException {
        read.addAndGet(dst.remaining());
        d.read(offset, dst);
      }

      @Override
      public List<Extent> allocation(long offset, long length) throws IOException {
        return d.allocation(offset, length);
      }

      @Override
      public void close() {}
    };
  }

  private static String sha256(Path f) throws Exception {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    try (var in = Files.newInputStream(f)) {
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }
}
