package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.RepositoryTest.backup;
import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Random-access reads of a snapshot disk allocate nothing per chunk once the cache is full: a child
 * JVM with a 4 MiB young generation reads a 32 MiB disk sequentially through a 1 MiB cache and
 * counts its garbage collections. Two arrays of the chunk size per chunk fetched (the cache before)
 * fill that young generation every few dozen chunks.
 */
class SnapshotDiskMemoryTest {
  @TempDir Path tmp;

  /** Entry point of the child JVM: repository directory, snapshot id, image file. */
  public static void main(String[] args) throws Exception {
    byte[] data = Files.readAllBytes(Path.of(args[2]));
    try (Repository repo = Repository.open(Path.of(args[0]));
        SnapshotDisk disk = repo.openDisk(repo.resolve(args[1]), "vda", 1 << 20)) {
      ByteBuffer b = ByteBuffer.allocate(256 << 10);
      disk.read(0, b); // decoders, buffers and classes made once
      long fetchedBefore = disk.chunksFetched();
      long gcBefore = collections();
      for (long at = 0; at < data.length; at += b.capacity()) {
        disk.read(at, b.clear());
        if (!Arrays.equals(b.array(), 0, b.capacity(), data, (int) at, (int) at + b.capacity())) {
          throw new AssertionError("wrong bytes at " + at);
        }
      }
      System.out.println(
          "collections="
              + (collections() - gcBefore)
              + " fetched="
              + (disk.chunksFetched() - fetchedBefore));
    }
  }

  private static long collections() {
    long n = 0;
    for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
      n += Math.max(0, gc.getCollectionCount());
    }
    return n;
  }

  @Test
  void sequentialReadsAllocateNoArrayPerChunk() throws Exception {
    byte[] data = TestImages.mixed(32 << 20, 23);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    Path dir = tmp.resolve("repo");
    Manifest m;
    try (Repository repo =
        Repository.init(
            dir, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(1 << 20))) {
      m = backup(repo, "vda", image, "h").manifest();
    }
    String out =
        ChildJvm.run(
            List.of("-XX:+UseSerialGC", "-Xmx96m", "-Xmn4m"),
            SnapshotDiskMemoryTest.class,
            dir.toString(),
            m.id(),
            image.toString());
    Matcher r = Pattern.compile("collections=(\\d+) fetched=(\\d+)").matcher(out);
    assertThat(r.find()).as(out).isTrue();
    long collections = Long.parseLong(r.group(1));
    long fetched = Long.parseLong(r.group(2));
    assertThat(fetched).as(out).isGreaterThan(200);
    // A few small objects per chunk (buffer views, the cache's entry, the pack's channel): at most
    // a collection or two, against one every ~25 chunks with an array per chunk.
    assertThat(collections)
        .as("collections while %d chunks were fetched: %s", fetched, out)
        .isLessThanOrEqualTo(2);
  }
}
