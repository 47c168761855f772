package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A 2 TiB disk (a sparse file with data at its start, in its middle and at its end) backed up,
 * backed up again, verified and restored, each in a child JVM with a 64 MiB heap, encrypted: its
 * fixed index (4 Mi positions of 32 bytes, 128 MiB) lives off the heap, in buffers the kernel
 * pages. Before, the backup failed with OutOfMemoryError writing it (the default 320 MiB heap gave
 * out at ~1.5 TiB disks).
 */
class LargeDiskTest {
  private static final long DISK = 2L << 40;
  private static final long[] DATA_AT = {0, DISK / 2 + 12345 * 4096L, DISK - (3 << 20)};
  private static final int DATA = 3 << 20;

  @TempDir Path tmp;

  /** Child JVM: init|backup|verify|restore REPO IMAGE [TARGET]. */
  public static void main(String[] args) throws Exception {
    Path repo = Path.of(args[1]);
    char[] password = "large".toCharArray();
    switch (args[0]) {
      case "init" -> {
        try (Repository r = Repository.init(repo, RepositoryConfig.defaults(), password)) {
          System.out.println("initialized");
        }
      }
      case "backup" -> {
        try (Repository r = Repository.open(repo, password::clone);
            RawDiskImage img = RawDiskImage.open(Path.of(args[2]))) {
          var result =
              r.backup(
                  new BackupRequest(List.of(new NamedDisk("big", img)), "h", null, null),
                  BackupListener.NONE);
          System.out.println("snapshot " + result.manifest().id());
        }
      }
      case "verify" -> {
        try (Repository r = Repository.open(repo, password::clone)) {
          VerifyReport report = r.verify(true, VerifyListener.NONE);
          System.out.println("ok=" + report.ok() + " snapshots=" + report.snapshots());
        }
      }
      case "restore" -> {
        try (Repository r = Repository.open(repo, password::clone)) {
          r.restoreDisk(r.resolve("latest"), "big", Path.of(args[3]));
          System.out.println("restored");
        }
      }
      default -> throw new IllegalArgumentException(args[0]);
    }
  }

  @Test
  void aTwoTebibyteDiskRoundTripsInASmallHeap() throws Exception {
    Path image = tmp.resolve("big.raw");
    try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
      f.setLength(DISK);
    }
    SplittableRandom random = new SplittableRandom(2);
    try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
      for (long at : DATA_AT) {
        byte[] b = new byte[DATA];
        random.nextBytes(b);
        ch.write(ByteBuffer.wrap(b), at);
      }
    }
    Path repo = tmp.resolve("repo");
    Path restored = tmp.resolve("restored.raw");
    assertThat(child("init", repo.toString())).contains("initialized");
    assertThat(child("backup", repo.toString(), image.toString())).contains("snapshot ");
    assertThat(child("backup", repo.toString(), image.toString())).contains("snapshot ");
    assertThat(child("verify", repo.toString())).contains("ok=true snapshots=2");
    assertThat(child("restore", repo.toString(), image.toString(), restored.toString()))
        .contains("restored");
    assertThat(Files.size(restored)).isEqualTo(DISK);
    for (long at : DATA_AT) {
      assertThat(read(restored, at, DATA)).isEqualTo(read(image, at, DATA));
    }
    // a hole reads as zeros
    assertThat(read(restored, DISK / 4, 4096)).isEqualTo(new byte[4096]);
  }

  private static byte[] read(Path file, long at, int length) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(length);
    try (FileChannel ch = FileChannel.open(file)) {
      while (b.hasRemaining() && ch.read(b, at + b.position()) > 0) {}
    }
    return b.array();
  }

  private String child(String... args) throws Exception {
    return ChildJvm.run(
        List.of("-Xmx64m", "-XX:MaxDirectMemorySize=256m", "-Djava.io.tmpdir=" + tmp),
        LargeDiskTest.class,
        args);
  }
}
