package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedStream;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.ByteArrayInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Streams (dumps, WAL, mail stores) are cut into content-defined chunks and dedup across shifts.
 */
class StreamBackupTest {
  @TempDir Path tmp;

  private Repository init() {
    return Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults());
  }

  private static BackupResult backupStream(Repository repo, String name, byte[] data) {
    return repo.backup(
        new BackupRequest(
            List.of(),
            List.of(new NamedStream(name, new TrickleInputStream(data))),
            "h",
            null,
            null),
        BackupListener.NONE);
  }

  /** Returns few bytes per read at irregular sizes, as pipes and sockets do. */
  private static final class TrickleInputStream extends FilterInputStream {
    private final Random r = new Random(1);

    TrickleInputStream(byte[] data) {
      super(new ByteArrayInputStream(data));
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      return super.read(b, off, Math.min(len, 1 + r.nextInt(300_000)));
    }
  }

  private static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void streamRoundTripsAndDeduplicatesAfterAnInsertion() throws Exception {
    byte[] dump = random(24 << 20, 1);
    try (Repository repo = init()) {
      BackupResult first = backupStream(repo, "db.dump", dump);
      Manifest m = first.manifest();
      assertThat(m.disks()).isEmpty();
      assertThat(m.stream("db.dump").size()).isEqualTo(dump.length);
      assertThat(first.progress().bytesRead()).isEqualTo(dump.length);
      Path out = tmp.resolve("out.dump");
      assertThat(repo.restoreStream(m, "db.dump", out)).isEqualTo(dump.length);
      assertThat(sha256(out)).isEqualTo(sha256(dump));

      byte[] shifted = new byte[dump.length + 100];
      int at = 10 << 20;
      System.arraycopy(dump, 0, shifted, 0, at);
      System.arraycopy(random(100, 2), 0, shifted, at, 100);
      System.arraycopy(dump, at, shifted, at + 100, dump.length - at);
      BackupResult second = backupStream(repo, "db.dump", shifted);
      assertThat(second.progress().bytesNew())
          .as("only the chunks around the insertion are new")
          .isPositive()
          .isLessThanOrEqualTo(2 * (4 << 20));
      assertThat(second.progress().bytesDeduplicated()).isGreaterThan(shifted.length * 3L / 4);
      repo.restoreStream(second.manifest(), "db.dump", out);
      assertThat(sha256(out)).isEqualTo(sha256(shifted));
      assertThat(repo.verify(true, VerifyListener.NONE).ok()).isTrue();
    }
  }

  @Test
  void disksAndStreamsInOneSnapshot() throws Exception {
    byte[] disk = TestImages.mixed(4 << 20, 3);
    Path image = TestImages.write(tmp.resolve("vm.raw"), disk);
    byte[] zeros = new byte[3 << 20];
    byte[] wal = random(5 << 20, 4);
    try (Repository repo = init();
        RawDiskImage img = RawDiskImage.open(image)) {
      BackupResult r =
          repo.backup(
              new BackupRequest(
                  List.of(new NamedDisk("vda", img)),
                  List.of(
                      new NamedStream("zeros", new ByteArrayInputStream(zeros)),
                      new NamedStream("wal", new ByteArrayInputStream(wal))),
                  "h",
                  null,
                  null),
              BackupListener.NONE);
      Manifest m = r.manifest();
      assertThat(r.progress().entries())
          .extracting(e -> e.name() + ":" + e.size() + ":" + e.bytesRead())
          .containsExactly(
              "vda:" + disk.length + ":" + disk.length,
              "zeros:-1:" + zeros.length,
              "wal:-1:" + wal.length);
      assertThat(r.progress().entries().get(2).bytesNew()).isEqualTo(wal.length);
      assertThat(m.stream("zeros").bytesStored()).isZero();
      assertThat(m.stream("wal").bytesNew()).isEqualTo(wal.length);
      repo.restoreDisk(m, "vda", tmp.resolve("vda.out"));
      repo.restoreStream(m, "zeros", tmp.resolve("zeros.out"));
      repo.restoreStream(m, "wal", tmp.resolve("wal.out"));
      assertThat(sha256(tmp.resolve("vda.out"))).isEqualTo(sha256(disk));
      assertThat(sha256(tmp.resolve("zeros.out"))).isEqualTo(sha256(zeros));
      assertThat(sha256(tmp.resolve("wal.out"))).isEqualTo(sha256(wal));
      assertThatThrownBy(() -> repo.openStream(m, "nope"))
          .isInstanceOf(SnapshotNotFoundException.class)
          .hasMessageContaining("has no stream 'nope' (its streams: [zeros, wal])");

      BlobName dynamic = new BlobName(BlobType.DYNAMIC_INDEX, m.stream("wal").dynamicIndex());
      Path file = new LocalBlobStore(tmp.resolve("repo")).path(dynamic);
      byte[] b = Files.readAllBytes(file);
      b[30] ^= 1;
      Files.write(file, b);
      VerifyReport report = repo.verify(false, VerifyListener.NONE);
      assertThat(report.damages()).hasSize(1);
      assertThat(report.damages().get(0).file()).isEqualTo(dynamic.toString());
      assertThat(report.affectedSnapshots()).containsExactly(m.id());
      assertThatThrownBy(() -> repo.openStream(m, "wal"))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageStartingWith(
              "snapshot " + m.id() + " stream 'wal': " + dynamic + ": checksum mismatch: actual=");
    }
  }

  @Test
  void unreadableStreamFailsWithoutSnapshot() {
    InputStream broken =
        new InputStream() {
          private int left = 3 << 20;

          @Override
          public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
          }

          @Override
          public int read(byte[] b, int off, int len) throws IOException {
            if (left <= 0) {
              throw new IOException("connection reset");
            }
            int n = Math.min(len, Math.min(left, 65536));
            java.util.Arrays.fill(b, off, off + n, (byte) 7);
            left -= n;
            return n;
          }
        };
    try (Repository repo = init()) {
      assertThatThrownBy(
              () ->
                  repo.backup(
                      new BackupRequest(
                          List.of(), List.of(new NamedStream("pipe", broken)), "h", null, null),
                      BackupListener.NONE))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageStartingWith("unable to read stream 'pipe' at offset ")
          .hasMessageContaining("connection reset");
      assertThat(repo.snapshots()).isEmpty();
    }
  }
}
