package io.granule.plugin.vmdisk.internal;

import static java.time.Duration.ofSeconds;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.DynamicContainer.dynamicContainer;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicNode;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The contract every {@link DiskImageFormat} of this plugin must meet, checked against qemu-img as
 * the oracle: for each image variant a subclass names, the reader's bytes equal {@code qemu-img
 * convert -O raw} of the image (whole, and in random pieces), probing picks the format, the
 * allocation covers every non-zero byte, concurrent reads agree, and bad input (truncation, wrong
 * magic, random mutations) gives an {@link IOException} naming the file, never another exception or
 * a hang.
 *
 * <p>Randomness comes from one seed, printed in every failure; rerun with {@code
 * -Dgranule.test.seed=N}.
 */
abstract class DiskImageFormatContractTest {
  static final long SEED = Long.getLong("granule.test.seed", defaultSeed());

  /** Every format of the plugin, for probing. */
  static final List<DiskImageFormat> ALL_FORMATS =
      List.of(new Qcow2Format(), new VmdkFormat(), new VhdFormat(), new VhdxFormat());

  @TempDir static Path tmp;

  private static final Map<String, Prepared> PREPARED = new ConcurrentHashMap<>();

  /** Makes an image from a raw fixture in an empty directory of its own. */
  interface Maker {
    Path make(Path dir, Path raw) throws Exception;
  }

  /**
   * One image to test.
   *
   * @param qemuFormat the format name qemu-img takes with {@code -f}
   */
  record Variant(String name, String qemuFormat, Maker maker) {}

  private record Prepared(Path image, byte[] oracle) {}

  /** The format under test. */
  protected abstract DiskImageFormat format();

  /** The images to test, made from the raw fixture. */
  protected abstract List<Variant> variants();

  /** The variant the fuzz test mutates: made from a small fixture, a single file. */
  protected abstract Variant fuzzVariant();

  /** Whether probing can recognise the variant from the file's head. */
  protected boolean probes(Variant v) {
    return true;
  }

  /** Overwrites the magic number(s) of an image of the fuzz variant. */
  protected byte[] breakMagic(byte[] image) {
    for (int i = 0; i < 8 && i < image.length; i++) {
      image[i] = (byte) 'Z';
    }
    return image;
  }

  /**
   * Milliseconds of mutation fuzzing per format; {@code -Dgranule.fuzz.millis=N} to fuzz longer.
   */
  protected long fuzzMillis() {
    return Long.getLong("granule.fuzz.millis", 3000);
  }

  /** A variant made by {@code qemu-img convert -f raw -O FORMAT [-o OPTIONS]}. */
  static Variant converted(String name, String qemuFormat, String file, String... options) {
    return new Variant(
        name,
        qemuFormat,
        (dir, raw) -> {
          Path out = dir.resolve(file);
          List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", qemuFormat));
          args.addAll(List.of(options));
          args.add(raw.toString());
          args.add(out.toString());
          Qemu.img(args.toArray(String[]::new));
          return out;
        });
  }

  @BeforeAll
  static void requireQemu() {
    Qemu.assumeAvailable();
  }

  static synchronized Path raw(int mib) throws IOException {
    Path p = tmp.resolve("fixture-" + mib + ".raw");
    return Files.exists(p) ? p : Fixtures.raw(p, mib);
  }

  private Prepared prepare(Variant v, int mib) throws Exception {
    String key = getClass().getSimpleName() + "/" + v.name() + "/" + mib;
    Prepared p = PREPARED.get(key);
    if (p == null) {
      Path dir = Files.createDirectories(tmp.resolve(key.replace('/', '-').replace(' ', '_')));
      Path image = v.maker().make(dir, raw(mib));
      Path oracle = Qemu.toRaw(image, v.qemuFormat(), dir.resolve("oracle.raw"));
      p = new Prepared(image, Files.readAllBytes(oracle));
      PREPARED.put(key, p);
    }
    return p;
  }

  @TestFactory
  Stream<DynamicNode> contract() {
    return variants().stream()
        .map(
            v ->
                dynamicContainer(
                    v.name(),
                    Stream.of(
                        dynamicTest("probe picks " + format().name(), () -> probe(v)),
                        dynamicTest("whole disk equals qemu-img", () -> wholeDisk(v)),
                        dynamicTest("random reads equal qemu-img", () -> randomReads(v)),
                        dynamicTest("allocation covers the data", () -> allocation(v)),
                        dynamicTest("concurrent reads equal qemu-img", () -> concurrent(v)),
                        dynamicTest("truncated file is an error", () -> truncated(v)))));
  }

  @TestFactory
  Stream<DynamicNode> badInput() {
    return Stream.of(
        dynamicTest("wrong magic is an error naming the file", this::wrongMagic),
        dynamicTest("seeded mutation fuzz", this::fuzz));
  }

  private void probe(Variant v) throws Exception {
    Prepared p = prepare(v, 16);
    ByteBuffer head = ByteBuffer.allocate(DiskImageFormat.PROBE_BYTES);
    ByteBuffer tail = ByteBuffer.allocate(DiskImageFormat.PROBE_TAIL_BYTES);
    long size = Files.size(p.image());
    try (FileChannel ch = FileChannel.open(p.image())) {
      ch.read(head, 0);
      ch.read(tail, Math.max(0, size - tail.capacity()));
    }
    head.flip();
    tail.flip();
    DiskImageFormat best = null;
    int bestScore = 1; // the engine's raw format
    for (DiskImageFormat f : ALL_FORMATS) {
      // the engine calls the head-and-tail probe
      int score = f.probe(head.duplicate(), tail.duplicate(), size);
      if (score > bestScore) {
        best = f;
        bestScore = score;
      }
    }
    if (!probes(v)) {
      assertThat(format().probe(head.duplicate(), tail.duplicate(), size)).isLessThanOrEqualTo(1);
      return;
    }
    assertThat(best).as("format probed for %s", p.image()).isNotNull();
    assertThat(best.name()).isEqualTo(format().name());
  }

  private void wholeDisk(Variant v) throws Exception {
    Prepared p = prepare(v, 16);
    try (DiskImage image = format().open(p.image())) {
      assertThat(image.size()).isEqualTo(p.oracle().length);
      assertThat(image.format()).isEqualTo(format().name());
      ByteBuffer all = ByteBuffer.allocate(p.oracle().length);
      image.read(0, all);
      assertSameBytes(all.array(), p.oracle(), 0, "whole disk of " + p.image());
    }
  }

  private void randomReads(Variant v) throws Exception {
    Prepared p = prepare(v, 16);
    Random r = new Random(SEED);
    byte[] o = p.oracle();
    try (DiskImage image = format().open(p.image())) {
      for (int i = 0; i < 300; i++) {
        int len = 1 + r.nextInt(i % 3 == 0 ? 512 : 300_000);
        len = Math.min(len, o.length);
        long off = r.nextInt(o.length - len + 1);
        ByteBuffer b = ByteBuffer.allocate(len);
        image.read(off, b);
        assertSameBytes(
            b.array(),
            Arrays.copyOfRange(o, (int) off, (int) off + len),
            off,
            "read of " + len + " bytes at " + off + " (seed " + SEED + ")");
      }
      assertThatThrownBy(() -> image.read(o.length - 1, ByteBuffer.allocate(2)))
          .isInstanceOf(java.io.EOFException.class);
    }
  }

  private void allocation(Variant v) throws Exception {
    Prepared p = prepare(v, 16);
    byte[] o = p.oracle();
    try (DiskImage image = format().open(p.image())) {
      List<Extent> extents = image.allocation(0, image.size());
      long pos = 0;
      long allocated = 0;
      for (Extent e : extents) {
        assertThat(e.offset())
            .as("extents sorted and apart: %s", extents)
            .isGreaterThan(pos == 0 ? -1 : pos);
        assertZero(o, pos, e.offset(), p.image());
        pos = e.end();
        allocated += e.length();
      }
      assertThat(pos).isLessThanOrEqualTo(o.length);
      assertZero(o, pos, o.length, p.image());
      // The fixture has a hole of 3/16 of the disk: a sparse format must not claim it.
      assertThat(allocated).as("allocated bytes").isGreaterThan(0);
      // A sub-range gives the same extents clipped to it.
      long from = o.length / 3;
      long to = 2L * o.length / 3;
      List<Extent> part = image.allocation(from, to - from);
      List<Extent> expected = new ArrayList<>();
      for (Extent e : extents) {
        long s = Math.max(e.offset(), from);
        long t = Math.min(e.end(), to);
        if (s < t) {
          expected.add(new Extent(s, t - s));
        }
      }
      assertThat(part).isEqualTo(expected);
    }
  }

  private void concurrent(Variant v) throws Exception {
    Prepared p = prepare(v, 16);
    byte[] o = p.oracle();
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try (DiskImage image = format().open(p.image())) {
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        long seed = SEED + t;
        futures.add(
            pool.submit(
                () -> {
                  Random r = new Random(seed);
                  for (int i = 0; i < 100; i++) {
                    int len = Math.min(o.length, 1 + r.nextInt(200_000));
                    int off = r.nextInt(o.length - len + 1);
                    ByteBuffer b = ByteBuffer.allocateDirect(len);
                    image.read(off, b);
                    b.flip();
                    byte[] got = new byte[len];
                    b.get(got);
                    assertSameBytes(
                        got,
                        Arrays.copyOfRange(o, off, off + len),
                        off,
                        "concurrent read at " + off + " (seed " + SEED + ")");
                  }
                  return null;
                }));
      }
      for (Future<?> f : futures) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
  }

  private void truncated(Variant v) throws Exception {
    Prepared p = prepare(v, 16);
    Path copyDir = Files.createDirectories(p.image().resolveSibling("truncated"));
    try (Stream<Path> files = Files.list(p.image().getParent())) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        Files.copy(
            f, copyDir.resolve(f.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      }
    }
    // Truncate the image file, or for a small descriptor or overlay the largest file it uses.
    Path image = copyDir.resolve(p.image().getFileName());
    Path victim = image;
    if (Files.size(image) < 65536) {
      try (Stream<Path> files = Files.list(copyDir)) {
        for (Path f : files.filter(f -> !f.getFileName().toString().endsWith(".raw")).toList()) {
          if (Files.size(f) > Files.size(victim)) {
            victim = f;
          }
        }
      }
    }
    long size = Files.size(victim);
    for (long cut : new long[] {size / 2, 100}) {
      try (FileChannel ch = FileChannel.open(victim, StandardOpenOption.WRITE)) {
        ch.truncate(cut);
      }
      assertThatThrownBy(
              () -> {
                try (DiskImage d = format().open(image)) {
                  d.read(0, ByteBuffer.allocate((int) d.size()));
                }
              })
          .as("%s truncated to %d bytes", victim, cut)
          .isInstanceOf(IOException.class)
          .hasMessageContaining(victim.toString());
    }
  }

  private void wrongMagic() throws Exception {
    Prepared p = prepare(fuzzVariant(), 2);
    Path bad = p.image().resolveSibling("bad-magic-" + p.image().getFileName());
    byte[] b = breakMagic(Files.readAllBytes(p.image()));
    Files.write(bad, b);
    ByteBuffer head = ByteBuffer.wrap(b, 0, Math.min(b.length, DiskImageFormat.PROBE_BYTES));
    assertThat(format().probe(head, b.length)).isLessThanOrEqualTo(1);
    assertThatThrownBy(() -> format().open(bad).close())
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith("unable to open disk image '" + bad + "'");
  }

  /**
   * Flips random bytes, mostly in the first and last 64 KiB where headers and tables live, and
   * checks that each mutant either reads (and then, when qemu-img reads it too, reads the same
   * bytes) or fails with an IOException naming the file, within a time limit.
   */
  private void fuzz() throws Exception {
    Prepared p = prepare(fuzzVariant(), 2);
    byte[] original = Files.readAllBytes(p.image());
    Path mutant = p.image().resolveSibling("mutant-" + p.image().getFileName());
    Random r = new Random(SEED);
    long deadline = System.currentTimeMillis() + fuzzMillis();
    int n = 0;
    while (System.currentTimeMillis() < deadline) {
      n++;
      byte[] m = original.clone();
      int flips = 1 + r.nextInt(4);
      StringBuilder what = new StringBuilder();
      for (int i = 0; i < flips; i++) {
        int pos;
        int zone = r.nextInt(4);
        int window = Math.min(m.length, 65536);
        if (zone < 2) {
          pos = r.nextInt(window);
        } else if (zone == 2) {
          pos = m.length - 1 - r.nextInt(window);
        } else {
          pos = r.nextInt(m.length);
        }
        byte x = (byte) (r.nextBoolean() ? 1 << r.nextInt(8) : r.nextInt(256));
        m[pos] ^= x == 0 ? 1 : x;
        what.append(String.format(java.util.Locale.ROOT, " [%#x]^=%#x", pos, x & 0xff));
      }
      Files.write(mutant, m);
      String context = "mutant " + n + what + " of " + p.image() + " (seed " + SEED + ")";
      byte[] got =
          assertTimeoutPreemptively(
              ofSeconds(10),
              () -> {
                try (DiskImage d = format().open(mutant)) {
                  if (d.size() > 64L << 20) {
                    d.read(d.size() - 4096, ByteBuffer.allocate(4096));
                    d.allocation(0, d.size());
                    return null;
                  }
                  ByteBuffer all = ByteBuffer.allocate((int) d.size());
                  d.read(0, all);
                  d.allocation(0, d.size());
                  return all.array();
                } catch (IOException e) {
                  assertThat(e.getMessage()).as(context).contains(mutant.toString());
                  return null;
                } catch (RuntimeException | Error e) {
                  throw new AssertionError(context + ": " + e, e);
                }
              },
              context);
      if (got != null && n % 8 == 0) {
        Path out = mutant.resolveSibling("mutant.raw");
        Files.deleteIfExists(out);
        if (Qemu.tryImg(
            "convert",
            "-f",
            fuzzVariant().qemuFormat(),
            "-O",
            "raw",
            mutant.toString(),
            out.toString())) {
          assertSameBytes(got, Files.readAllBytes(out), 0, context);
        }
      }
    }
    assertThat(n).isGreaterThan(10);
  }

  static void assertSameBytes(byte[] got, byte[] expected, long base, String context)
      throws Exception {
    if (!Arrays.equals(got, expected)) {
      int i = Arrays.mismatch(got, expected);
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      String g = HexFormat.of().formatHex(md.digest(got));
      String e = HexFormat.of().formatHex(md.digest(expected));
      throw new AssertionError(
          context
              + ": bytes differ from qemu-img's first at virtual offset "
              + (base + i)
              + " (sha256 "
              + g
              + " vs "
              + e
              + ", lengths "
              + got.length
              + " vs "
              + expected.length
              + ")");
    }
  }

  private static void assertZero(byte[] o, long from, long to, Path image) {
    for (long i = from; i < to; i++) {
      if (o[(int) i] != 0) {
        throw new AssertionError(
            image + ": byte at " + i + " is not zero but lies outside the allocation");
      }
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
