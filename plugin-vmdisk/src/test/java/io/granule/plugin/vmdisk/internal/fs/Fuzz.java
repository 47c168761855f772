package io.granule.plugin.vmdisk.internal.fs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * Seeded mutation fuzzing of a filesystem reader: flips random bytes in an image's metadata blocks,
 * then opens the image and walks it. The reader must answer or throw an {@link IOException}; any
 * other exception, a hang or an OutOfMemoryError fails with the seed.
 */
public final class Fuzz {
  /** Opens a filesystem on a volume. */
  public interface Opener {
    FileSystem open(DiskImage volume) throws IOException;
  }

  private static final int MAX_OBJECTS = 5000;
  private static final int MAX_READ = 1 << 20;

  private Fuzz() {}

  /**
   * Runs rounds for {@code budget}.
   *
   * @param metadata the offsets of the image's metadata blocks, each {@code blockSize} long
   * @return the number of rounds run and how many ended in an IOException, for the record
   */
  public static int[] run(
      byte[] image, List<Long> metadata, int blockSize, Opener opener, Duration budget) {
    long seed = Long.getLong("granule.fuzz.seed", defaultSeed());
    Random random = new Random(seed);
    long deadline = System.nanoTime() + budget.toNanos();
    int rounds = 0;
    int errors = 0;
    while (System.nanoTime() < deadline) {
      rounds++;
      byte[] copy = image.clone();
      int flips = 1 + random.nextInt(8);
      for (int i = 0; i < flips; i++) {
        long block = metadata.get(random.nextInt(metadata.size()));
        int at = (int) (block + random.nextInt(blockSize));
        copy[at] = random.nextInt(4) == 0 ? 0 : (byte) random.nextInt(256);
      }
      String what =
          String.format(
              Locale.ROOT,
              "fuzz seed %d round %d (rerun with -Dgranule.fuzz.seed=%d)",
              seed,
              rounds,
              seed);
      Object result;
      try {
        result =
            assertTimeoutPreemptively(
                Duration.ofSeconds(10),
                () -> {
                  try {
                    return walk(opener.open(new MemoryDisk(copy)));
                  } catch (IOException e) {
                    return e;
                  }
                },
                what);
      } catch (Throwable t) {
        throw new AssertionError(what + ": " + t, t);
      }
      if (result instanceof IOException e) {
        errors++;
        assertThat(e.getMessage()).as(what).isNotBlank();
      }
    }
    return new int[] {rounds, errors};
  }

  /** Walks the whole tree, reading every file (up to 1 MiB each), link and allocation. */
  private static Integer walk(FileSystem fs) throws IOException {
    try (fs) {
      Deque<FileNode> todo = new ArrayDeque<>();
      Set<Long> seen = new HashSet<>();
      todo.add(fs.root());
      int objects = 0;
      ByteBuffer buffer = ByteBuffer.allocate(64 * 1024);
      while (!todo.isEmpty() && objects < MAX_OBJECTS) {
        FileNode dir = todo.poll();
        if (!seen.add(dir.id())) {
          continue;
        }
        for (DirectoryEntry e : fs.list(dir)) {
          objects++;
          FileNode n = e.node();
          switch (n.kind()) {
            case DIRECTORY -> todo.add(n);
            case SYMLINK -> fs.readLink(n);
            case FILE -> {
              long position = 0;
              while (position < Math.min(n.size(), MAX_READ)) {
                buffer.clear();
                int got = fs.read(n, position, buffer);
                assertThat(got).isPositive();
                position += got;
              }
              for (Extent x : fs.allocation(n)) {
                assertThat(x.end()).isLessThanOrEqualTo(n.size());
              }
            }
            default -> {}
          }
        }
      }
      return objects;
    }
  }

  /**
   * A fixed seed under CI, so that CI is deterministic; a new one on every developer run, so that
   * fuzzing keeps exploring. Failures print the seed to replay.
   */
  static long defaultSeed() {
    return "true".equals(System.getenv("CI")) ? 20261125L : System.nanoTime();
  }
}
