package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sequential read throughput (4 MiB reads) of each reader against the raw file it was converted
 * from, both from the page cache, alternating so that both see the same machine load. Runs only
 * with {@code -Dgranule.bench=true}:
 *
 * <pre>./mvnw -B -q -pl plugin-vmdisk verify -Dtest=ReadThroughputBenchmark -Dgranule.bench=true
 * </pre>
 */
class ReadThroughputBenchmark {
  private static final int MIB = 1 << 20;
  private static final int SIZE_MIB = 256;
  private static final int BUFFER = 4 * MIB;

  @TempDir Path dir;

  @Test
  void readersKeepUpWithRawReads() throws Exception {
    Assumptions.assumeTrue(Boolean.getBoolean("granule.bench"), "-Dgranule.bench=true not set");
    Qemu.assumeAvailable();
    Path raw = dir.resolve("disk.raw");
    byte[] chunk = new byte[MIB];
    Random r = new Random(1);
    try (FileChannel ch =
        FileChannel.open(raw, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      for (int i = 0; i < SIZE_MIB; i++) {
        r.nextBytes(chunk);
        ch.write(ByteBuffer.wrap(chunk));
      }
    }
    StringBuilder report = new StringBuilder();
    Object[][] cases = {
      {"qcow2", new Qcow2Format(), "d.qcow2", new String[] {}},
      {"qcow2 2M clusters", new Qcow2Format(), "d2m.qcow2", new String[] {"-o", "cluster_size=2M"}},
      {"vmdk monolithicSparse", new VmdkFormat(), "d.vmdk", new String[] {}},
      {"vhd dynamic", new VhdFormat(), "d.vhd", new String[] {"-o", "force_size=on"}},
      {"vhdx dynamic", new VhdxFormat(), "d.vhdx", new String[] {}},
    };
    for (Object[] c : cases) {
      DiskImageFormat format = (DiskImageFormat) c[1];
      Path image = dir.resolve((String) c[2]);
      String[] opts = (String[]) c[3];
      java.util.List<String> args =
          new java.util.ArrayList<>(
              java.util.List.of(
                  "convert",
                  "-f",
                  "raw",
                  "-O",
                  format.name().equals("vhd") ? "vpc" : format.name()));
      args.addAll(java.util.List.of(opts));
      args.add(raw.toString());
      args.add(image.toString());
      Qemu.img(args.toArray(String[]::new));
      double[] best = new double[2];
      try (DiskImage d = format.open(image)) {
        // Alternate raw and image reads so that both see the same machine load.
        for (int i = 0; i < 9; i++) {
          double rawMbps = time(() -> readRaw(raw));
          double mbps = time(() -> readImage(d));
          if (i >= 2) {
            best[0] = Math.max(best[0], rawMbps);
            best[1] = Math.max(best[1], mbps);
          }
        }
      }
      report.append(
          String.format(
              java.util.Locale.ROOT,
              "%-24s %7.0f MB/s, raw file %7.0f MB/s: %3.0f%%%n",
              c[0],
              best[1],
              best[0],
              100 * best[1] / best[0]));
    }
    System.out.print(report);
    assertThat(report).isNotEmpty();
  }

  private interface Timed {
    long run() throws IOException;
  }

  private static double time(Timed run) throws IOException {
    long t0 = System.nanoTime();
    long bytes = run.run();
    return bytes / 1e6 / ((System.nanoTime() - t0) / 1e9);
  }

  private static long readRaw(Path raw) throws IOException {
    ByteBuffer b = ByteBuffer.allocateDirect(BUFFER);
    try (FileChannel ch = FileChannel.open(raw)) {
      long size = ch.size();
      for (long pos = 0; pos < size; pos += BUFFER) {
        b.clear();
        while (b.hasRemaining() && ch.read(b, pos + b.position()) > 0) {
          // fill the buffer
        }
      }
      return size;
    }
  }

  private static long readImage(DiskImage d) throws IOException {
    ByteBuffer b = ByteBuffer.allocateDirect(BUFFER);
    for (long pos = 0; pos < d.size(); pos += BUFFER) {
      b.clear();
      b.limit((int) Math.min(BUFFER, d.size() - pos));
      d.read(pos, b);
    }
    return d.size();
  }
}
