package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;

/** Raw disk fixtures: random data, zeros, repeated patterns and holes, from a fixed seed. */
final class Fixtures {
  private Fixtures() {}

  static final int MIB = 1 << 20;

  /**
   * Writes a raw disk of about {@code mib} MiB (plus a few odd sectors) to {@code path}: random
   * data, written zeros, a compressible pattern, scattered 4 KiB blocks, holes, and data at the
   * very end.
   */
  static Path raw(Path path, int mib) throws IOException {
    long size = (long) mib * MIB + 7 * 512;
    Random r = new Random(42);
    try (FileChannel ch =
        FileChannel.open(
            path,
            StandardOpenOption.CREATE_NEW,
            StandardOpenOption.WRITE,
            StandardOpenOption.SPARSE)) {
      int part = mib * MIB / 16;
      write(ch, 0, random(r, part));
      write(ch, part, new byte[part]);
      byte[] pattern = new byte[part];
      for (int i = 0; i < pattern.length; i++) {
        pattern[i] = (byte) ("granule".charAt(i % 7) + i / 4096);
      }
      write(ch, 2L * part, pattern);
      // [3, 6) parts: a hole
      write(ch, 6L * part + 512, random(r, part / 2));
      for (long off = 8L * part; off < 14L * part; off += part / 4) {
        write(ch, off + 4096 * r.nextInt(8), random(r, 4096));
      }
      write(ch, size - 3 * 4096 - 512, random(r, 3 * 4096 + 512));
    }
    return path;
  }

  private static byte[] random(Random r, int n) {
    byte[] b = new byte[n];
    r.nextBytes(b);
    return b;
  }

  private static void write(FileChannel ch, long offset, byte[] data) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(data);
    while (b.hasRemaining()) {
      ch.write(b, offset + b.position());
    }
  }
}
