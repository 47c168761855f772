package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.DiskImageWriter;
import io.granule.plugin.vmdisk.internal.fs.Tools;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The contract every {@link DiskImageWriter} of this plugin must meet, with qemu-img as the oracle:
 * for generated disks (mixed data and holes, all zeros, one repeated cluster, random, a single
 * sector; sizes that are not a multiple of the cluster size), fed in aligned and unaligned pieces
 * from heap buffers and from aligned direct buffers (a restore's, which go to {@code O_DIRECT}
 * writes) with zero pieces skipped as a restore skips them, {@code qemu-img check} finds no error
 * or leak, {@code qemu-img info} reports the virtual size, {@code qemu-img convert -O raw} and our
 * own reader give back the source byte for byte, and zero ranges stay unallocated. A writer closed
 * before {@code finish()} leaves a file that neither qemu-img nor our probe accepts.
 */
abstract class DiskImageWriterContractTest {
  @TempDir Path tmp;

  /** The format under test. */
  protected abstract DiskImageFormat format();

  /** The qemu-img name of the format. */
  protected abstract String qemuFormat();

  /** The unit the image allocates with these options: a cluster, grain or payload block. */
  protected abstract int allocationUnit(Map<String, String> options);

  /** Writer options to test besides the defaults, each in its own round. */
  protected List<Map<String, String>> optionVariants() {
    return List.of(Map.of());
  }

  private interface Source {
    Path make(Path dir) throws IOException;
  }

  private record Disk(String name, Source source) {}

  private static List<Disk> disks() {
    return List.of(
        new Disk("mixed data and holes, 24 MiB + 7 sectors", d -> Fixtures.raw(d.resolve("m"), 24)),
        new Disk(
            "all zeros, 5 MiB + 1 sector", d -> sized(d.resolve("z"), 5L * Fixtures.MIB + 512)),
        new Disk("one repeated cluster, 3 MiB + 3 sectors", DiskImageWriterContractTest::repeated),
        new Disk("random, 9 MiB + 1 sector", DiskImageWriterContractTest::random),
        new Disk("one sector", d -> filled(d.resolve("s"), new byte[512], 0x5a)));
  }

  @TestFactory
  List<DynamicTest> writtenImagesPassQemuCheckAndReadBackIdentical() {
    Qemu.assumeAvailable();
    List<DynamicTest> tests = new ArrayList<>();
    int round = 0;
    for (Map<String, String> options : optionVariants()) {
      for (Disk disk : disks()) {
        for (boolean direct : new boolean[] {false, true}) {
          int feed = round++ % 3 == 0 ? 100_000 : Fixtures.MIB;
          tests.add(
              dynamicTest(
                  disk.name()
                      + ", options "
                      + options
                      + ", fed in "
                      + feed
                      + "-byte pieces from "
                      + (direct ? "aligned direct" : "heap")
                      + " buffers",
                  () -> roundTrip(disk, options, feed, direct, tmp)));
        }
      }
    }
    return tests;
  }

  private void roundTrip(Disk disk, Map<String, String> options, int feed, boolean direct, Path in)
      throws Exception {
    Path dir = Files.createTempDirectory(in, "d");
    Path source = disk.source().make(dir);
    long size = Files.size(source);
    Path image = dir.resolve("out." + qemuFormat());
    write(source, image, options, feed, Long.MAX_VALUE, direct);

    String check = Qemu.img("check", "-f", qemuFormat(), image.toString());
    assertThat(check).contains("No errors were found").doesNotContain("leak");
    String info = Qemu.img("info", "-f", qemuFormat(), "--output=json", image.toString());
    Matcher m = Pattern.compile("\"virtual-size\": (\\d+)").matcher(info);
    assertThat(m.find()).as(info).isTrue();
    assertThat(Long.parseLong(m.group(1))).isEqualTo(size);

    Path raw = Qemu.toRaw(image, qemuFormat(), dir.resolve("back.raw"));
    assertThat(sha256(raw)).as("qemu-img convert of %s", image).isEqualTo(sha256(source));

    try (DiskImage img = format().open(image)) {
      assertThat(img.size()).isEqualTo(size);
      ByteBuffer all = ByteBuffer.allocate((int) size);
      img.read(0, all);
      assertThat(sha256(all.array())).as("our reader").isEqualTo(sha256(source));
    }
    assertThat(probe(image)).isEqualTo(format().name());

    long unit = allocationUnit(options);
    long data = nonZeroUnits(source, unit) * unit;
    // Zero ranges stay unallocated: the file holds the units with data plus some metadata.
    Matcher actual = Pattern.compile("\"actual-size\": (\\d+)").matcher(info);
    assertThat(actual.find()).as(info).isTrue();
    assertThat(Long.parseLong(actual.group(1)))
        .as("bytes the image takes on disk (qemu-img info actual-size)")
        .isLessThanOrEqualTo(data + 2 * unit + 3L * Fixtures.MIB + size / 64);
  }

  @Test
  void aWriterClosedBeforeFinishLeavesNoImage() throws Exception {
    Qemu.assumeAvailable();
    Path source = Fixtures.raw(tmp.resolve("src"), 8);
    Path image = tmp.resolve("unfinished." + qemuFormat());
    write(source, image, Map.of(), Fixtures.MIB, 5L * Fixtures.MIB, true);
    assertThat(Files.exists(image)).isTrue();
    assertThat(Qemu.tryImg("info", "-f", qemuFormat(), image.toString()))
        .as("qemu-img info of an unfinished image")
        .isFalse();
    assertThat(probe(image)).isEqualTo("none");
    assertThatThrownBy(() -> format().open(image).close()).isInstanceOf(IOException.class);
  }

  /**
   * audit14 F1: the image was created 0644 (the umask's default) and made 0600 by the restore only
   * later; a user who opened it meanwhile read the whole restored disk through his descriptor. It
   * is its owner's alone from its creation.
   */
  @Test
  void anImageIsItsOwnersAloneFromItsCreation() throws Exception {
    Path image = tmp.resolve("fresh." + qemuFormat());
    try (DiskImageWriter w = format().create(image, 4 << 20, Map.of())) {
      assertThat(Files.getPosixFilePermissions(image))
          .containsExactlyInAnyOrder(
              java.nio.file.attribute.PosixFilePermission.OWNER_READ,
              java.nio.file.attribute.PosixFilePermission.OWNER_WRITE);
      w.write(0, ByteBuffer.allocate(4096));
    }
  }

  @Test
  void writesMustGoForwardAndStayInside() throws Exception {
    try (DiskImageWriter w = format().create(tmp.resolve("o"), 4 << 20, Map.of())) {
      w.write(1 << 20, ByteBuffer.allocate(4096));
      assertThatThrownBy(() -> w.write(0, ByteBuffer.allocate(512)))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("goes backwards or past the virtual size");
      assertThatThrownBy(() -> w.write((4 << 20) - 512, ByteBuffer.allocate(1024)))
          .isInstanceOf(IllegalArgumentException.class);
    }
  }

  /**
   * audit15 G F3: a qcow2 image of a disk whose size was not whole 512-byte sectors passed, and
   * QEMU dropped its last bytes; every format refuses such a disk before making a file, and says to
   * restore it as raw.
   */
  @Test
  void refusesADiskOfPartSectors() {
    Path odd = tmp.resolve("odd");
    assertThatThrownBy(() -> format().create(odd, (1 << 20) + 100, Map.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("whole number of 512-byte sectors")
        .hasMessageEndingWith("1048676 bytes: restore it as raw");
    assertThat(Files.exists(odd)).isFalse();
  }

  @Test
  void refusesAnExistingFileAndUnknownOptions() throws IOException {
    Path exists = Files.writeString(tmp.resolve("exists"), "x");
    assertThatThrownBy(() -> format().create(exists, 1 << 20, Map.of()))
        .isInstanceOf(IOException.class)
        .hasMessage("unable to create disk image '" + exists + "': the file exists");
    assertThatThrownBy(() -> format().create(tmp.resolve("n"), 1 << 20, Map.of("bogus", "1")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("unknown " + format().name() + " option 'bogus'");
    assertThat(Files.exists(tmp.resolve("n"))).isFalse();
  }

  /**
   * Data written from aligned direct buffers goes past the page cache ({@code O_DIRECT}): after the
   * image is written, {@code fincore} finds its metadata cached, not its data; the same image
   * written from heap buffers has its data cached (which shows the measure sees the difference).
   */
  @Test
  void dataFromAlignedDirectBuffersSkipsThePageCache() throws Exception {
    Qemu.assumeAvailable();
    Tools.require("fincore", "util-linux");
    String type = Files.getFileStore(tmp).type();
    Tools.assume(
        !type.equals("tmpfs") && !type.equals("ramfs"),
        "the temporary directory is in memory (" + type + "): every page of it is cached");
    byte[] b = new byte[32 * Fixtures.MIB];
    new Random(3).nextBytes(b);
    Path source = Files.write(tmp.resolve("random"), b);
    long[] cached = new long[2];
    for (boolean direct : new boolean[] {false, true}) {
      Path image = tmp.resolve("out-" + direct + "." + qemuFormat());
      write(source, image, Map.of(), Fixtures.MIB, Long.MAX_VALUE, direct);
      String res =
          Tools.run(
              null, "fincore", "--bytes", "--noheadings", "--output", "RES", image.toString());
      cached[direct ? 1 : 0] = Long.parseLong(res.trim());
      assertThat(sha256(Qemu.toRaw(image, qemuFormat(), tmp.resolve("back-" + direct))))
          .isEqualTo(sha256(source));
    }
    assertThat(cached[0]).as("bytes cached, heap buffers").isGreaterThanOrEqualTo(b.length);
    assertThat(cached[1]).as("bytes cached, direct buffers").isLessThan(4L * Fixtures.MIB);
  }

  /**
   * A file system that refuses {@code O_DIRECT} (ramfs) gets the data through the page cache, and a
   * valid image.
   */
  @Test
  void aFileSystemWithoutDirectWritesGetsAValidImage() throws Exception {
    Qemu.assumeAvailable();
    Tools.assume("root".equals(System.getProperty("user.name")), "needs root to mount a ramfs");
    Path mnt = Files.createDirectory(tmp.resolve("ramfs"));
    Tools.run(null, "mount", "-t", "ramfs", "ramfs", mnt.toString());
    try {
      for (int feed : new int[] {Fixtures.MIB, 100_000}) {
        roundTrip(disks().get(0), Map.of(), feed, true, mnt);
      }
    } finally {
      Tools.run(null, "umount", mnt.toString());
    }
  }

  /**
   * Feeds {@code source} to a new writer, skipping zero pieces, from a heap buffer or (if {@code
   * direct}) from an aligned direct one as a restore does; finishes unless stopped early.
   */
  private void write(
      Path source, Path image, Map<String, String> options, int feed, long stopAt, boolean direct)
      throws IOException {
    long size = Files.size(source);
    try (FileChannel in = FileChannel.open(source, StandardOpenOption.READ);
        DiskImageWriter w = format().create(image, size, options)) {
      ByteBuffer buf =
          direct
              ? ByteBuffer.allocateDirect(feed + 8192).alignedSlice(4096).limit(feed).slice()
              : ByteBuffer.allocate(feed);
      for (long off = 0; off < size; off += feed) {
        if (off >= stopAt) {
          return;
        }
        buf.clear().limit((int) Math.min(feed, size - off));
        while (buf.hasRemaining()) {
          in.read(buf, off + buf.position());
        }
        buf.flip();
        if (!isZero(buf)) {
          w.write(off, buf);
        }
      }
      w.finish();
    }
  }

  private static String probe(Path image) throws IOException {
    byte[] all = Files.readAllBytes(image);
    ByteBuffer head = ByteBuffer.wrap(all, 0, Math.min(all.length, DiskImageFormat.PROBE_BYTES));
    String best = "none";
    int bestScore = 0;
    for (DiskImageFormat f : DiskImageFormatContractTest.ALL_FORMATS) {
      int s = f.probe(head.duplicate(), all.length);
      if (s > bestScore) {
        best = f.name();
        bestScore = s;
      }
    }
    return best;
  }

  private static boolean isZero(ByteBuffer b) {
    for (int i = b.position(); i < b.limit(); i++) {
      if (b.get(i) != 0) {
        return false;
      }
    }
    return true;
  }

  private static long nonZeroUnits(Path p, long unit) throws IOException {
    byte[] all = Files.readAllBytes(p);
    long n = 0;
    for (long off = 0; off < all.length; off += unit) {
      int end = (int) Math.min(all.length, off + unit);
      for (int i = (int) off; i < end; i++) {
        if (all[i] != 0) {
          n++;
          break;
        }
      }
    }
    return n;
  }

  private static Path sized(Path p, long size) throws IOException {
    try (FileChannel ch =
        FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.truncate(size);
      ch.write(ByteBuffer.allocate(1), size - 1);
    }
    return p;
  }

  private static Path filled(Path p, byte[] data, int value) throws IOException {
    Arrays.fill(data, (byte) value);
    return Files.write(p, data);
  }

  private static Path repeated(Path dir) throws IOException {
    byte[] cluster = new byte[64 << 10];
    new Random(7).nextBytes(cluster);
    long size = 3L * Fixtures.MIB + 3 * 512;
    Path p = dir.resolve("r");
    try (FileChannel ch =
        FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      for (long off = 0; off < size; off += cluster.length) {
        ch.write(ByteBuffer.wrap(cluster, 0, (int) Math.min(cluster.length, size - off)), off);
      }
    }
    return p;
  }

  private static Path random(Path dir) throws IOException {
    byte[] b = new byte[9 * Fixtures.MIB + 512];
    new Random(11).nextBytes(b);
    return Files.write(dir.resolve("x"), b);
  }

  private static String sha256(Path p) throws IOException {
    return sha256(Files.readAllBytes(p));
  }

  private static String sha256(byte[] b) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
