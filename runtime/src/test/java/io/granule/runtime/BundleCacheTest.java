package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The extracted runtime directories: one per jar, locked by the processes that run from it, and
 * deleted by a later start once no process does, so upgrades do not pile up copies in the cache.
 */
class BundleCacheTest {
  @TempDir Path tmp;

  private Path jar(String name, long mtime, String content) throws IOException {
    Path jar = tmp.resolve(name);
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar))) {
      for (String b : List.of("a.jar", "b.jar")) {
        out.putNextEntry(new JarEntry("bundles/" + b));
        out.write((b + content).getBytes(StandardCharsets.UTF_8));
        out.closeEntry();
      }
      out.putNextEntry(new JarEntry("bundles/nested/skipped.jar"));
      out.closeEntry();
    }
    Files.setLastModifiedTime(jar, FileTime.fromMillis(mtime));
    return jar;
  }

  private static List<String> names(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void aJarIsExtractedOnceAndItsDirectoryMarkedInUse() throws Exception {
    Path root = tmp.resolve("cache");
    Path jar = jar("granule.jar", 1_000_000L, "1");
    Path dir = BundleCache.extract(jar, root);
    assertThat(dir.getFileName().toString()).startsWith("runtime-");
    assertThat(names(dir)).containsExactly(BundleCache.IN_USE, "a.jar", "b.jar");
    assertThat(Files.readString(dir.resolve("a.jar"))).isEqualTo("a.jar1");
    Files.writeString(dir.resolve("marker"), "x");
    assertThat(BundleCache.extract(jar, root)).isEqualTo(dir);
    assertThat(dir.resolve("marker")).as("found, not extracted again").exists();
  }

  @Test
  void directoriesNoProcessRunsFromAreDeletedAndTheOthersKept() throws Exception {
    Path root = tmp.resolve("cache");
    Path old = BundleCache.extract(jar("granule.jar", 1_000_000L, "1"), root);
    Path inUse = BundleCache.extract(jar("granule.jar", 2_000_000L, "22"), root);
    assertThat(old).as("this process moved on to the new jar").doesNotExist();
    Process holder = holdLock(inUse.resolve(BundleCache.IN_USE));
    try {
      Path legacy = Files.createDirectories(root.resolve("runtime-0123456789abcdef"));
      Files.writeString(legacy.resolve("a.jar"), "from a version before the lock");
      Files.createDirectories(root.resolve("removing-runtime-fedcba9876543210/x"));

      Path current = BundleCache.extract(jar("granule.jar", 3_000_000L, "333"), root);

      assertThat(current).exists();
      assertThat(inUse).as("another process runs from it").exists();
      assertThat(Files.readString(inUse.resolve("a.jar"))).isEqualTo("a.jar22");
      assertThat(legacy).as("without a lock file: unknown, left alone").exists();
      assertThat(root.resolve("removing-runtime-fedcba9876543210")).doesNotExist();
    } finally {
      holder.getOutputStream().close();
      holder.waitFor();
    }
    BundleCache.extract(jar("granule.jar", 3_000_000L, "333"), root);
    assertThat(inUse).as("its process ended").doesNotExist();
  }

  @Test
  void theDirectoryThisProcessRunsFromIsNeverDeleted() throws Exception {
    Path root = tmp.resolve("cache");
    Path mine = BundleCache.extract(jar("granule.jar", 1_000_000L, "1"), root);
    BundleCache.removeUnused(root, root.resolve("runtime-0000000000000000"));
    assertThat(mine.resolve("a.jar")).exists();
  }

  /** Starts a JVM that holds a shared lock on {@code file} until its standard input closes. */
  private static Process holdLock(Path file) throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process p =
        new ProcessBuilder(
                java,
                "-cp",
                System.getProperty("java.class.path"),
                LockHolder.class.getName(),
                file.toString())
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start();
    BufferedReader r =
        new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
    assertThat(r.readLine()).isEqualTo("locked");
    return p;
  }

  /** The other process of {@link #holdLock}. */
  public static final class LockHolder {
    public static void main(String[] args) throws Exception {
      try (FileChannel ch =
              FileChannel.open(
                  Path.of(args[0]), StandardOpenOption.READ, StandardOpenOption.WRITE);
          FileLock l = ch.lock(0, Long.MAX_VALUE, true)) {
        OutputStream out = System.out;
        out.write("locked\n".getBytes(StandardCharsets.UTF_8));
        out.flush();
        while (System.in.read() >= 0) {
          // until the test closes our input
        }
      }
    }
  }

  /**
   * Two commands starting together both remove what a killed one left: deleting the same tree from
   * several threads at once never throws (a vanished directory made Files.walk throw
   * UncheckedIOException, and the start failed with exit 1) and leaves nothing.
   */
  @Test
  void deletingOneTreeFromSeveralThreadsAtOnceNeverThrows() throws Exception {
    for (int round = 0; round < 8; round++) {
      Path root = tmp.resolve("left-behind-" + round);
      for (int d = 0; d < 100; d++) {
        Path dir = Files.createDirectories(root.resolve("felix/bundle" + d + "/version0.0"));
        for (int f = 0; f < 20; f++) {
          Files.createFile(dir.resolve("f" + f));
        }
      }
      java.util.concurrent.ExecutorService pool =
          java.util.concurrent.Executors.newFixedThreadPool(4);
      try {
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(4);
        List<java.util.concurrent.Future<?>> runs = new java.util.ArrayList<>();
        for (int t = 0; t < 4; t++) {
          long delayMicros = t * 1500L * (round + 1); // the others walk while the first deletes
          runs.add(
              pool.submit(
                  () -> {
                    start.await();
                    java.util.concurrent.TimeUnit.MICROSECONDS.sleep(delayMicros);
                    BundleCache.deleteTree(root);
                    return null;
                  }));
        }
        for (java.util.concurrent.Future<?> r : runs) {
          r.get(); // throws if deleteTree threw
        }
      } finally {
        pool.shutdownNow();
      }
      assertThat(root).doesNotExist();
    }
  }
}
