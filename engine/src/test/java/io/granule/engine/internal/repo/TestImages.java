package io.granule.engine.internal.repo;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Random;

/** Generated raw disk images for repository tests; everything is seeded. */
public final class TestImages {
  public static final int BLOCK = 4096;

  private TestImages() {}

  /**
   * A VM-like image of {@code size} bytes (a multiple of 4 KiB plus {@code tail} odd bytes): runs
   * of zeros, random data, compressible text and duplicates of earlier runs.
   */
  public static byte[] mixed(int size, long seed) {
    Random r = new Random(seed);
    byte[] img = new byte[size];
    byte[] text =
        "the quick brown fox jumps over the lazy dog; granule dedups blocks. "
            .getBytes(java.nio.charset.StandardCharsets.UTF_8);
    int pos = 0;
    while (pos < size) {
      int run = Math.min(size - pos, BLOCK * (1 + r.nextInt(96)));
      switch (r.nextInt(4)) {
        case 0 -> {}
        case 1 -> {
          byte[] b = new byte[run];
          r.nextBytes(b);
          System.arraycopy(b, 0, img, pos, run);
        }
        case 2 -> {
          int shift = r.nextInt(text.length);
          for (int i = 0; i < run; i++) {
            img[pos + i] = text[(i + shift) % text.length];
          }
          img[pos] = (byte) r.nextInt();
        }
        default -> {
          if (pos >= run) {
            int from = r.nextInt(pos / BLOCK - run / BLOCK + 1) * BLOCK;
            System.arraycopy(img, from, img, pos, run);
          }
        }
      }
      pos += run;
    }
    return img;
  }

  /** Writes {@code data} to {@code file}. */
  public static Path write(Path file, byte[] data) throws IOException {
    Files.write(file, data);
    return file;
  }

  /**
   * Changes {@code percent}% of the 4 KiB blocks of {@code img} in place, in clusters of {@code
   * cluster} blocks; returns the number of bytes changed.
   */
  public static long modify(byte[] img, double percent, int cluster, long seed) {
    Random r = new Random(seed);
    int blocks = img.length / BLOCK;
    int toChange = (int) Math.ceil(blocks * percent / 100);
    boolean[] changed = new boolean[blocks];
    int done = 0;
    while (done < toChange) {
      int start = r.nextInt(blocks - cluster + 1);
      for (int b = start; b < start + cluster && done < toChange; b++) {
        if (!changed[b]) {
          changed[b] = true;
          done++;
          byte[] fresh = new byte[BLOCK];
          r.nextBytes(fresh);
          System.arraycopy(fresh, 0, img, b * BLOCK, BLOCK);
        }
      }
    }
    return (long) done * BLOCK;
  }

  /** SHA-256 of a file, hex. */
  public static String sha256(Path file) throws Exception {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    try (InputStream in = new DigestInputStream(Files.newInputStream(file), md)) {
      in.transferTo(OutputStreamSink.INSTANCE);
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /** SHA-256 of bytes, hex. */
  public static String sha256(byte[] data) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
  }

  private static final class OutputStreamSink extends java.io.OutputStream {
    static final OutputStreamSink INSTANCE = new OutputStreamSink();

    @Override
    public void write(int b) {}

    @Override
    public void write(byte[] b, int off, int len) {}
  }

  /**
   * A virtual disk of {@code chunks} chunks of {@code chunk} bytes, each distinct (its number, from
   * 1, in its first 8 bytes, little-endian) and compressible (zeros after): many chunks, few bytes.
   */
  public static io.granule.engine.spi.DiskImage numbered(int chunk, int chunks) {
    byte[] zeros = new byte[chunk];
    return new io.granule.engine.spi.DiskImage() {
      @Override
      public long size() {
        return (long) chunks * chunk;
      }

      @Override
      public String format() {
        return "virtual";
      }

      @Override
      public void read(long offset, java.nio.ByteBuffer dst) {
        while (dst.hasRemaining()) {
          long number = offset / chunk + 1;
          int at = (int) (offset % chunk);
          int n = Math.min(dst.remaining(), chunk - at);
          for (int i = 0; i < n; i++, at++) {
            if (at >= 8) {
              dst.put(zeros, 0, n - i);
              break;
            }
            dst.put((byte) (number >>> (8 * at)));
          }
          offset += n;
        }
      }

      @Override
      public void close() {}
    };
  }
}
