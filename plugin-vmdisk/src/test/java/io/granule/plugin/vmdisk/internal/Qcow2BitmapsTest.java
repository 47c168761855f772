package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ChangeTracking;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * qcow2 persistent dirty bitmaps read by {@link Qcow2Bitmaps}, checked against QEMU itself: writes
 * made with qemu-io, the dirty map exported by qemu-nbd ({@code -B}) and read by nbdinfo ({@code
 * --map=qemu:dirty-bitmap:NAME}) is the oracle.
 */
class Qcow2BitmapsTest {
  @TempDir Path tmp;

  private final List<ImageFile> opened = new ArrayList<>();

  @BeforeEach
  void tools() {
    Qemu.assumeAvailable();
  }

  @org.junit.jupiter.api.AfterEach
  void close() throws Exception {
    for (ImageFile f : opened) {
      f.close();
    }
  }

  /** The bitmaps of {@code img}, opened here with this process's identity. */
  Qcow2Bitmaps bitmapsOf(Path img) throws Exception {
    ImageFile f = ImageFile.open(img);
    opened.add(f);
    return new Qcow2Bitmaps(f, Qcow2Bitmaps.Opener.PROCESS);
  }

  /** The dirty ranges as QEMU reports them through NBD. */
  List<Extent> oracle(Path image, String bitmap) throws Exception {
    Path sock = tmp.resolve("nbd-" + System.nanoTime() + ".sock");
    Process nbd =
        new ProcessBuilder(
                "qemu-nbd",
                "-r",
                "-f",
                "qcow2",
                "-B",
                bitmap,
                "-k",
                sock.toString(),
                "-t",
                image.toString())
            .redirectErrorStream(true)
            .start();
    try {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (!Files.exists(sock)) {
        assertThat(System.nanoTime()).as("qemu-nbd did not start").isLessThan(deadline);
        Thread.sleep(20);
      }
      Process info =
          new ProcessBuilder(
                  "nbdinfo", "--map=qemu:dirty-bitmap:" + bitmap, "nbd+unix:///?socket=" + sock)
              .redirectErrorStream(true)
              .start();
      String out = new String(info.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(info.waitFor(30, TimeUnit.SECONDS)).isTrue();
      assertThat(info.exitValue()).as(out).isZero();
      List<Extent> dirty = new ArrayList<>();
      for (String line : out.split("\n")) {
        String[] f = line.trim().split("\\s+");
        if (f.length >= 3 && f[2].equals("1")) {
          long off = Long.parseLong(f[0]);
          long len = Long.parseLong(f[1]);
          if (!dirty.isEmpty() && dirty.get(dirty.size() - 1).end() == off) {
            Extent last = dirty.remove(dirty.size() - 1);
            dirty.add(new Extent(last.offset(), last.length() + len));
          } else {
            dirty.add(new Extent(off, len));
          }
        }
      }
      return dirty;
    } finally {
      nbd.destroy();
      nbd.waitFor(10, TimeUnit.SECONDS);
    }
  }

  Path image(String size, String clusterSize) {
    Path img = tmp.resolve("d-" + System.nanoTime() + ".qcow2");
    Qemu.img(
        "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + clusterSize, img.toString(), size);
    return img;
  }

  void randomWrites(Path img, long size, int n, long seed) {
    Random rnd = new Random(seed);
    List<String> args = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      long off = (rnd.nextLong(size) / 512) * 512;
      long len = Math.min(size - off, 512L * (1 + rnd.nextInt(300)));
      args.add("-c");
      args.add("write -P " + (1 + i % 200) + " " + off + " " + len);
    }
    args.add(img.toString());
    Qemu.io(args.toArray(String[]::new));
  }

  @Test
  void dirtyRangesEqualWhatQemuReportsAcrossSeveralBitmapClustersAndGranularities()
      throws Exception {
    // 4 KiB clusters: one bitmap data cluster covers 32768 bits, so a 100 MiB + 1 KiB disk at 512-
    // byte granularity needs 13 table entries; the size is not a multiple of the granularity.
    long size = (100L << 20) + 1024;
    Path img = image(Long.toString(size), "4096");
    Qemu.img("bitmap", "--add", "-g", "512", img.toString(), "fine");
    Qemu.img("bitmap", "--add", "-g", "65536", img.toString(), "coarse");
    randomWrites(img, size, 200, 42);
    // a whole bitmap cluster written: QEMU may store it as "all ones" without a data cluster
    Qemu.io("-c", "write -P 9 " + (32L << 20) + " " + (16L << 20), img.toString());
    Qemu.io("-c", "write -P 7 " + (size - 512) + " 512", img.toString());
    Qcow2Bitmaps bm = bitmapsOf(img);
    for (String name : List.of("fine", "coarse")) {
      assertThat(bm.changed(name)).as(name).isEqualTo(oracle(img, name));
    }
    assertThat(bm.bitmaps())
        .extracting(ChangeTracking.Bitmap::name, ChangeTracking.Bitmap::usable)
        .containsExactly(
            org.assertj.core.groups.Tuple.tuple("fine", true),
            org.assertj.core.groups.Tuple.tuple("coarse", true));
    assertThat(bm.bitmaps().get(0).granularity()).isEqualTo(512);
  }

  @Test
  void aNewBitmapIsEmptyAndRecordsOnlyLaterWrites() throws Exception {
    Path img = image("64M", "65536");
    Qemu.io("-c", "write -P 1 0 1M", img.toString());
    Qcow2Bitmaps bm = bitmapsOf(img);
    bm.create("granule-1");
    assertThat(bm.changed("granule-1")).isEmpty();
    Qemu.io("-c", "write -P 2 8M 4k", img.toString());
    assertThat(bm.changed("granule-1")).containsExactly(new Extent(8L << 20, 65536));
    bm.remove("granule-1");
    assertThat(bm.bitmaps()).isEmpty();
    bm.remove("granule-1"); // nothing there: no error
  }

  @Test
  void doubtfulBitmapsAreRefusedWithTheReason() throws Exception {
    Path img = image("64M", "65536");
    Qemu.img("bitmap", "--add", img.toString(), "off");
    Qemu.img("bitmap", "--disable", img.toString(), "off");
    Qemu.img("bitmap", "--add", img.toString(), "used");
    Qcow2Bitmaps bm = bitmapsOf(img);
    assertThat(bm.bitmaps().get(0).usable()).isFalse();
    assertThatThrownBy(() -> bm.changed("off")).hasMessageContaining("disabled");
    assertThatThrownBy(() -> bm.changed("nosuch")).hasMessageContaining("no bitmap 'nosuch'");

    // mark "used" in_use, as a crashed QEMU leaves it: flip flag bit 0 in its directory entry
    setFlagInUse(img, "used");
    assertThat(bm.bitmaps().get(1).inUse()).isTrue();
    assertThatThrownBy(() -> bm.changed("used")).hasMessageContaining("in use");

    // clear autoclear bit 0, as a program that does not know bitmaps does when it writes
    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
      f.seek(88);
      long autoclear = f.readLong();
      f.seek(88);
      f.writeLong(autoclear & ~1L);
    }
    assertThat(bm.bitmaps()).allMatch(b -> !b.usable());
    assertThat(bm.bitmaps().get(0).why()).contains("inconsistent");
  }

  @Test
  void theQcow2FormatOffersChangeTrackingOnlyForQcow2() throws Exception {
    Path img = image("16M", "65536");
    try (DiskImage d = new Qcow2Format().open(img)) {
      assertThat(d.changeTracking()).isNotNull();
      assertThat(d.changeTracking().bitmaps()).isEmpty();
    }
    Path raw = tmp.resolve("r.img");
    Files.write(raw, new byte[4096]);
    Qemu.img("convert", "-O", "vmdk", raw.toString(), tmp.resolve("r.vmdk").toString());
    try (DiskImage d = new VmdkFormat().open(tmp.resolve("r.vmdk"))) {
      assertThat(d.changeTracking()).isNull();
    }
  }

  private static void setFlagInUse(Path img, String name) throws Exception {
    byte[] all = Files.readAllBytes(img);
    byte[] n = name.getBytes(StandardCharsets.US_ASCII);
    // the directory entry: 24 fixed bytes, no extra data, then the name
    for (int i = 24; i + n.length <= all.length; i++) {
      if (java.util.Arrays.equals(all, i, i + n.length, n, 0, n.length)
          && (all[i - 6] & 0xff) == 0
          && (all[i - 5] & 0xff) == n.length) {
        int flagsAt = i - 24 + 12;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
          f.seek(flagsAt);
          int flags = f.readInt();
          f.seek(flagsAt);
          f.writeInt(flags | 1);
        }
        return;
      }
    }
    throw new AssertionError("bitmap entry '" + name + "' not found");
  }
}
