package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RestoreTargetException;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.repo.store.ChunkReader;
import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Restores through a format plugin's {@link DiskImageWriter} ({@link ImageTarget}): several workers
 * decode runs at once, and the writer gets them in disk order, one call at a time, on the restoring
 * thread, in aligned direct buffers; a writer that fails, or a damaged chunk, stops the restore
 * with no worker left waiting.
 */
class ImageRestoreTest {
  private static final int CHUNK = 64 << 10;

  @TempDir Path tmp;

  /** A writer that checks the contract's order and records what it is given into a byte array. */
  private static final class RecordingWriter implements DiskImageWriter {
    final byte[] disk;
    final Thread owner = Thread.currentThread();
    final List<String> violations = new ArrayList<>();
    final List<Integer> lengths = new ArrayList<>();
    final int failAtCall;
    long next;
    int finished;

    RecordingWriter(long size, int failAtCall) {
      disk = new byte[(int) size];
      this.failAtCall = failAtCall;
    }

    @Override
    public void write(long offset, ByteBuffer data) throws IOException {
      if (lengths.size() == failAtCall) {
        throw new IOException("disk full at call " + failAtCall);
      }
      if (Thread.currentThread() != owner) {
        violations.add("write on " + Thread.currentThread().getName());
      }
      if (offset < next) {
        violations.add("offset " + offset + " before " + next);
      }
      if (!data.isDirect() || data.alignmentOffset(data.position(), 4096) != 0) {
        violations.add("buffer at " + offset + " not direct and aligned");
      }
      if (finished > 0) {
        violations.add("write after finish");
      }
      int n = data.remaining();
      lengths.add(n);
      data.get(disk, (int) offset, n);
      next = offset + n;
    }

    @Override
    public void finish() {
      if (Thread.currentThread() != owner) {
        violations.add("finish on " + Thread.currentThread().getName());
      }
      finished++;
    }

    @Override
    public void close() {}
  }

  /** A seeded image with zero, random, text and repeated runs, data up to its last byte. */
  private static byte[] image(int size, long seed) {
    byte[] data = Arrays.copyOf(TestImages.mixed(Math.max(size, 64 << 10), seed), size);
    data[size - 1] = 0x5a;
    return data;
  }

  private Repository repo() {
    return Repository.init(
        tmp.resolve("repo"),
        RepositoryConfig.defaults().withChunkSize(CHUNK).withPackSize(2 << 20));
  }

  private Manifest backup(Repository repo, byte[] data) throws IOException {
    Path file = TestImages.write(tmp.resolve("vm.raw"), data);
    try (RawDiskImage img = RawDiskImage.open(file)) {
      return repo.backup(
              new BackupRequest(List.of(new NamedDisk("vda", img)), "h", null, null),
              BackupListener.NONE)
          .manifest();
    }
  }

  private static boolean workersAlive() {
    return Thread.getAllStackTraces().keySet().stream()
        .anyMatch(t -> t.isAlive() && t.getName().startsWith("granule-restore-"));
  }

  /** Waits up to 10 s for the restore's threads to end; whether they did. */
  private static boolean workersEnd() throws InterruptedException {
    for (int i = 0; i < 200 && workersAlive(); i++) {
      Thread.sleep(50);
    }
    return !workersAlive();
  }

  @Test
  void theWriterGetsRunsInOrderOnTheRestoringThreadAndTheDiskIsWhole() throws Exception {
    int size = 40 * CHUNK + 12 * 1024 + 100; // a short last chunk, not block-aligned
    byte[] data = image(size, 5);
    try (Repository repo = repo()) {
      Manifest m = backup(repo, data);
      assertThat(DiskRestorer.WRITERS).as("workers decode at once").isGreaterThan(1);
      RecordingWriter w = new RecordingWriter(size, -1);
      ConcurrentLinkedQueue<Long> reports = new ConcurrentLinkedQueue<>();
      RestoreResult r;
      try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
        r = DiskRestorer.restore(disk, w, tmp.resolve("out.img"), (d, t) -> reports.add(d));
      }
      assertThat(w.violations).isEmpty();
      assertThat(w.finished).isEqualTo(1);
      assertThat(w.disk).isEqualTo(data);
      assertThat(r.zeroChunks()).as("zero chunks are not handed over").isPositive();
      assertThat(w.lengths.stream().mapToInt(Integer::intValue).sum())
          .isEqualTo(size - r.zeroChunks() * CHUNK);
      assertThat(w.lengths.stream().mapToInt(Integer::intValue).max().orElseThrow())
          .as("adjacent data chunks come in one call")
          .isGreaterThan(CHUNK);
      assertThat(reports.stream().mapToLong(Long::longValue).toArray()).isSorted();
      assertThat(reports).last().isEqualTo((long) size);
    }
    assertThat(workersEnd()).isTrue();
  }

  @Test
  void aChunkAtSeveralPlacesIsFetchedOnceAndWrittenAtEach() throws Exception {
    int distinct = 8;
    byte[] template = new byte[distinct * CHUNK];
    new Random(11).nextBytes(template);
    byte[] data = new byte[distinct * CHUNK * 8];
    for (int copy = 0; copy < 8; copy++) {
      System.arraycopy(template, 0, data, copy * template.length, template.length);
    }
    try (Repository repo = repo()) {
      Manifest m = backup(repo, data);
      RecordingWriter w = new RecordingWriter(data.length, -1);
      RestoreResult r;
      try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
        r = DiskRestorer.restore(disk, w, tmp.resolve("out.qcow2"), (d, t) -> {});
      }
      assertThat(w.violations).isEmpty();
      assertThat(w.disk).isEqualTo(data);
      // One run holds the whole disk here (16 MiB runs of 64 KiB chunks): decoded in order by one
      // worker, every later place finds its chunk kept.
      assertThat(r.chunksFetched()).isEqualTo(distinct);
    }
  }

  @Test
  void aFailingWriterStopsTheRestoreAndNoWorkerIsLeftWaiting() throws Exception {
    byte[] data = image(64 * CHUNK, 7);
    try (Repository repo = repo()) {
      Manifest m = backup(repo, data);
      RecordingWriter w = new RecordingWriter(data.length, 2);
      try (SnapshotDisk disk = repo.openDisk(m, "vda")) {
        assertThatThrownBy(
                () -> DiskRestorer.restore(disk, w, tmp.resolve("out.qcow2"), (d, t) -> {}))
            .isInstanceOf(RestoreTargetException.class)
            .hasMessageContaining("out.qcow2")
            .hasMessageContaining("disk full at call 2");
      }
      assertThat(w.finished).as("an image that failed is never finished").isZero();
      assertThat(w.lengths).hasSize(2);
    }
    assertThat(workersEnd()).as("the workers ended").isTrue();
  }

  @Test
  void aDamagedChunkStopsTheRestoreNamingItAndTheImageIsNotFinished() throws Exception {
    byte[] data = image(64 * CHUNK, 9);
    Manifest m;
    try (Repository repo = repo()) {
      m = backup(repo, data);
    }
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    try (Repository repo = Repository.open(tmp.resolve("repo"));
        SnapshotDisk disk = repo.openDisk(m, "vda")) {
      int victim = -1;
      for (int p = disk.fixedIndex().count() / 2; p < disk.fixedIndex().count(); p++) {
        if (disk.location(p) != null) {
          victim = p;
          break;
        }
      }
      assertThat(victim).isNotNegative();
      ChunkLocation loc = disk.location(victim);
      try (FileChannel ch =
          FileChannel.open(
              store.path(ChunkReader.packName(loc.pack())),
              StandardOpenOption.READ,
              StandardOpenOption.WRITE)) {
        ByteBuffer one = ByteBuffer.allocate(1);
        long at = loc.offset() + loc.storedLength() / 2;
        ch.read(one, at);
        ch.write(one.put(0, (byte) (one.get(0) ^ 0x10)).clear(), at);
      }
      RecordingWriter w = new RecordingWriter(data.length, -1);
      String id = disk.fixedIndex().get(victim).toString();
      assertThatThrownBy(() -> DiskRestorer.restore(disk, w, tmp.resolve("out.vmdk"), (d, t) -> {}))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("chunk " + id);
      assertThat(w.finished).isZero();
      assertThat(w.next)
          .as("nothing at or past the damaged chunk was written")
          .isLessThanOrEqualTo((long) victim * CHUNK);
      assertThat(w.violations).isEmpty();
    }
    assertThat(workersEnd()).isTrue();
  }
}
