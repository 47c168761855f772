package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChildJvm;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.spi.DiskImage;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code verify --read-data} of a repository whose packs are larger than the heap, in a child JVM
 * limited to a 24 MiB heap: a checking thread reads a pack into a direct buffer it reuses and
 * decodes each chunk into another, so the heap holds no pack and no chunk (loading 32 MiB packs
 * into arrays fails with OutOfMemoryError there). Damage is still found and named.
 */
class VerifyMemoryTest {
  private static final long DISK = 160L << 20;
  private static final int PACK = 32 << 20;

  @TempDir Path tmp;
  Path repo;

  /** Entry point of the child JVM: args are the repository directory; prints the report. */
  public static void main(String[] args) throws Exception {
    verifyAndPrint(Path.of(args[0]), true);
  }

  /** Verifies {@code repo} and prints the report (what the child JVMs of verify tests run). */
  static void verifyAndPrint(Path repo, boolean readData) {
    try (Repository r = Repository.open(repo)) {
      VerifyReport report = r.verify(readData, VerifyListener.NONE);
      System.out.println("packs=" + report.packs() + " chunks=" + report.chunks());
      for (Damage d : report.damages()) {
        System.out.println("damaged " + d.file() + ": " + d.problems());
      }
      System.out.println("affected=" + report.affectedSnapshots().size());
    }
  }

  @BeforeEach
  void backUpIncompressibleDisk() throws Exception {
    repo = tmp.resolve("repo");
    DiskImage random =
        new DiskImage() {
          @Override
          public long size() {
            return DISK;
          }

          @Override
          public String format() {
            return "virtual";
          }

          @Override
          public void read(long offset, ByteBuffer dst) {
            // incompressible and unique: every 8 bytes from their own offset
            while (dst.hasRemaining()) {
              long v = new SplittableRandom(offset >>> 3).nextLong();
              int skip = (int) (offset & 7);
              for (int i = skip; i < 8 && dst.hasRemaining(); i++) {
                dst.put((byte) (v >>> (8 * i)));
                offset++;
              }
            }
          }

          @Override
          public void close() {}
        };
    try (Repository r = Repository.init(repo, RepositoryConfig.defaults().withPackSize(PACK))) {
      r.backup(
          new BackupRequest(List.of(new BackupRequest.NamedDisk("d", random)), "h", null, null),
          BackupListener.NONE);
    }
  }

  @Test
  void packsLargerThanTheHeapVerify() throws Exception {
    String out = verifyInSmallHeap();
    assertThat(out).contains("affected=0").doesNotContain("damaged");
    assertThat(packs()).hasSizeGreaterThanOrEqualTo(4);
    assertThat(Files.size(largestPack())).isGreaterThan(24L << 20);
  }

  @Test
  void damageInABigPackIsNamedInASmallHeap() throws Exception {
    Path pack = largestPack();
    try (RandomAccessFile f = new RandomAccessFile(pack.toFile(), "rw")) {
      long at = f.length() / 3; // inside a chunk record
      f.seek(at);
      int b = f.read();
      f.seek(at);
      f.write(b ^ 0x40);
    }
    String out = verifyInSmallHeap();
    assertThat(out).contains("damaged data/" + pack.getFileName() + ":").contains("affected=1");
  }

  private List<Path> packs() throws Exception {
    try (Stream<Path> s = Files.walk(repo.resolve("data"))) {
      return s.filter(Files::isRegularFile).sorted().toList();
    }
  }

  private Path largestPack() throws Exception {
    Path largest = null;
    for (Path p : packs()) {
      if (largest == null || Files.size(p) > Files.size(largest)) {
        largest = p;
      }
    }
    return largest;
  }

  private String verifyInSmallHeap() throws Exception {
    String out =
        ChildJvm.run(
            List.of("-Xmx24m", "-XX:MaxDirectMemorySize=256m"),
            VerifyMemoryTest.class,
            repo.toString());
    assertThat(out).as(out).contains("chunks=");
    return out;
  }
}
