import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;

/**
 * Generates the benchmark's VM-like raw image, or changes one.
 *
 * <pre>
 * java bench/GenImage.java create FILE SIZE_MIB SEED
 * java bench/GenImage.java change FILE PERCENT SEED
 * </pre>
 *
 * <p>create: 1 MiB regions in a fixed rotation: 35% zeros (never written: the file is sparse),
 * 20% random (incompressible), 25% compressible text-like data, 20% copies of a few "template"
 * regions (the same OS files in several places). change: rewrites PERCENT of the image's 4 KiB
 * blocks with random data, in clusters of 1 to 64 consecutive blocks (how guests write).
 */
public final class GenImage {
  public static void main(String[] a) throws IOException {
    Path file = Path.of(a[1]);
    Random rnd = new Random(Long.parseLong(a[3]));
    if (a[0].equals("create")) {
      create(file, Long.parseLong(a[2]), rnd);
    } else {
      change(file, Double.parseDouble(a[2]), rnd);
    }
  }

  static void create(Path file, long mib, Random rnd) throws IOException {
    byte[][] templates = new byte[8][1 << 20];
    for (byte[] t : templates) {
      rnd.nextBytes(t);
    }
    byte[] buf = new byte[1 << 20];
    String words = "the quick brown fox jumps over the lazy dog granule backup block chunk ";
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      for (long i = 0; i < mib; i++) {
        int kind = (int) ((i * 7919) % 20);
        if (kind < 7) {
          continue; // zeros
        } else if (kind < 11) {
          rnd.nextBytes(buf);
        } else if (kind < 16) {
          for (int j = 0; j < buf.length; j++) {
            buf[j] = (byte) words.charAt((j + (int) (i * 13) + (j >>> 9) * 7) % words.length());
          }
          for (int j = 0; j < 64; j++) {
            buf[rnd.nextInt(buf.length)] = (byte) rnd.nextInt(256);
          }
        } else {
          System.arraycopy(templates[(int) (i % templates.length)], 0, buf, 0, buf.length);
        }
        ch.write(ByteBuffer.wrap(buf), i << 20);
      }
      ch.truncate(mib << 20);
      if (ch.size() < (mib << 20)) {
        ch.write(ByteBuffer.wrap(new byte[1]), (mib << 20) - 1);
      }
    }
  }

  static void change(Path file, double percent, Random rnd) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      long blocks = ch.size() / 4096;
      long target = (long) (blocks * percent / 100);
      byte[] buf = new byte[64 * 4096];
      long changed = 0;
      while (changed < target) {
        int run = 1 + rnd.nextInt(64);
        run = (int) Math.min(run, target - changed);
        long start = (long) (rnd.nextDouble() * (blocks - run));
        rnd.nextBytes(buf);
        ch.write(ByteBuffer.wrap(buf, 0, run * 4096), start * 4096);
        changed += run;
      }
      System.out.println(changed * 4096);
    }
  }
}
