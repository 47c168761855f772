package io.granule.engine.internal.repo.pack;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Compresses chunks with zstd and decides, per chunk, whether compression is worth keeping: a chunk
 * is stored compressed only if that saves at least {@link #MIN_SAVING_PERCENT} percent. A chunk
 * whose samples do not compress is not compressed whole (see {@link #compressInto(ByteBuffer,
 * ByteBuffer)}); otherwise deciding by compressing is cheap enough: zstd detects incompressible
 * blocks and passes over them at several GB/s, and the output is what we store anyway.
 *
 * <p>Not thread-safe (it reuses native contexts and buffers): use one per thread and {@link #close}
 * it.
 */
public final class ChunkCompressor implements AutoCloseable {
  /** Minimum saving, in percent of the plaintext, for a chunk to be stored compressed. */
  public static final int MIN_SAVING_PERCENT = 3;

  /** Bytes per sample of the incompressibility pre-check (see {@link #compressInto}). */
  static final int SAMPLE = 16 << 10;

  /** Samples per chunk of the pre-check: at its start, end and evenly between. */
  static final int SAMPLES = 4;

  /** Chunks shorter than this are compressed whole, without a pre-check. */
  static final int PRECHECK_MIN = 64 << 10;

  private static final boolean PRECHECK =
      !"false".equals(System.getProperty("granule.compress.precheck"));

  private final ZstdCompressCtx cctx = new ZstdCompressCtx();
  private ByteBuffer sample;
  private long skipped;
  private final ZstdDecompressCtx dctx = new ZstdDecompressCtx();
  private byte[] buffer = new byte[0];

  /** A chunk as stored: bytes plus {@link ChunkFlags}. */
  public record Stored(byte[] bytes, int flags) {}

  /**
   * Loads zstd's native library now, on the calling thread, or fails naming the likely cause:
   * loaded first by a worker thread, its failure killed that thread and the backup waited for it
   * forever.
   *
   * @throws io.granule.engine.internal.repo.RepositoryException if it cannot be loaded
   */
  public static void requireNative() {
    try {
      Zstd.compressBound(1);
    } catch (LinkageError e) {
      throw new io.granule.engine.internal.repo.RepositoryException(
          "zstd's native library could not be loaded ("
              + e
              + "): zstd-jni unpacks it into the temporary directory "
              + System.getProperty("java.io.tmpdir")
              + ", which must allow running code (not mounted noexec); name another with"
              + " GRANULE_JAVA_OPTS=-Djava.io.tmpdir=DIR",
          e);
    }
  }

  /** A compressor at zstd {@code level} (1 to 3 are the useful ones here). */
  public ChunkCompressor(int level) {
    cctx.setLevel(level);
  }

  /** What to store for {@code len} bytes of {@code data} at {@code off}. */
  public Stored compress(byte[] data, int off, int len) {
    int bound = (int) Zstd.compressBound(len);
    if (buffer.length < bound) {
      buffer = new byte[bound];
    }
    int n = cctx.compressByteArray(buffer, 0, bound, data, off, len);
    if ((long) n * 100 <= (long) len * (100 - MIN_SAVING_PERCENT)) {
      return new Stored(Arrays.copyOf(buffer, n), ChunkFlags.ZSTD);
    }
    return new Stored(Arrays.copyOfRange(data, off, off + len), 0);
  }

  /** Room to reserve for {@link #compressInto} of {@code len} bytes. */
  public static int bound(int len) {
    return (int) Zstd.compressBound(len);
  }

  /**
   * Compresses {@code len} bytes of {@code data} at {@code off} into {@code dst} at {@code dstOff},
   * which has room for {@link #bound} bytes. Returns the compressed length if compression is worth
   * keeping (see {@link #MIN_SAVING_PERCENT}), else -1: then {@code dst} holds nothing useful and
   * the chunk is stored as it is.
   */
  public int compressInto(byte[] data, int off, int len, byte[] dst, int dstOff) {
    int n = cctx.compressByteArray(dst, dstOff, bound(len), data, off, len);
    return worthIt(n, len) ? n : -1;
  }

  /**
   * As {@link #compressInto(byte[], int, int, byte[], int)}, from the bytes remaining in {@code
   * src} into {@code dst} at its position, both direct buffers; neither position moves.
   */
  public int compressInto(ByteBuffer src, ByteBuffer dst) {
    if (!src.isDirect() || !dst.isDirect()) {
      throw new IllegalArgumentException("direct buffers only");
    }
    int len = src.remaining();
    if (PRECHECK && looksIncompressible(src)) {
      skipped++;
      return -1;
    }
    int n =
        cctx.compressDirectByteBuffer(
            dst, dst.position(), dst.remaining(), src, src.position(), len);
    return worthIt(n, len) ? n : -1;
  }

  /**
   * Whether none of {@link #SAMPLES} samples of {@link #SAMPLE} bytes, spread over the chunk,
   * compresses by {@link #MIN_SAVING_PERCENT}: then the chunk is stored as it is without being
   * compressed whole (random, encrypted or already compressed data, which zstd still scans at 2-3
   * GB/s; the samples are an eighth of a 512 KiB chunk). A chunk whose only redundancy lies between
   * the samples, or repeats with a period longer than a sample, is stored uncompressed: the price
   * of the check. Chunks under {@link #PRECHECK_MIN} are compressed whole.
   */
  private boolean looksIncompressible(ByteBuffer src) {
    int len = src.remaining();
    if (len < PRECHECK_MIN) {
      return false;
    }
    if (sample == null) {
      sample = ByteBuffer.allocateDirect(bound(SAMPLE));
    }
    for (int i = 0; i < SAMPLES; i++) {
      int at = src.position() + (int) ((long) (len - SAMPLE) * i / (SAMPLES - 1));
      int n = cctx.compressDirectByteBuffer(sample, 0, sample.capacity(), src, at, SAMPLE);
      if (worthIt(n, SAMPLE)) {
        return false;
      }
    }
    return true;
  }

  /** Chunks {@link #compressInto(ByteBuffer, ByteBuffer)} stored without compressing them whole. */
  public long skipped() {
    return skipped;
  }

  private static boolean worthIt(int compressed, int len) {
    return (long) compressed * 100 <= (long) len * (100 - MIN_SAVING_PERCENT);
  }

  /**
   * The plaintext of a stored chunk.
   *
   * @throws IllegalArgumentException if the stored bytes do not decompress to exactly {@code
   *     rawLength} bytes
   */
  public byte[] decompress(byte[] stored, int flags, int rawLength) {
    if ((flags & ChunkFlags.ZSTD) == 0) {
      checkStoredLength(stored.length, rawLength);
      return stored;
    }
    byte[] out = new byte[rawLength];
    decompressInto(stored, flags, rawLength, ByteBuffer.wrap(out));
    return out;
  }

  /**
   * As {@link #decompress}, into {@code dst} (heap or direct) at its position, which advances by
   * {@code rawLength}; {@code dst} has at least that many bytes remaining.
   *
   * @throws IllegalArgumentException as {@link #decompress}; then the bytes put into {@code dst}
   *     must not be used
   */
  public void decompressInto(byte[] stored, int flags, int rawLength, ByteBuffer dst) {
    decompressInto(ByteBuffer.wrap(stored), flags, rawLength, dst);
  }

  /**
   * As {@link #decompressInto(byte[], int, int, ByteBuffer)}, of the bytes remaining in {@code src}
   * (heap or direct; consumed).
   */
  public void decompressInto(ByteBuffer src, int flags, int rawLength, ByteBuffer dst) {
    int start = dst.position();
    int len = src.remaining();
    if ((flags & ChunkFlags.ZSTD) == 0) {
      checkStoredLength(len, rawLength);
      dst.put(src);
      return;
    }
    if (dst.remaining() < rawLength) {
      throw new IllegalArgumentException(
          "buffer of " + dst.remaining() + " bytes for a chunk of " + rawLength);
    }
    int at = src.position();
    int n;
    try {
      if (src.hasArray()) {
        byte[] in = src.array();
        int inAt = src.arrayOffset() + at;
        n =
            dst.hasArray()
                ? dctx.decompressByteArray(
                    dst.array(), dst.arrayOffset() + start, rawLength, in, inAt, len)
                : dctx.decompressByteArrayToDirectByteBuffer(dst, start, rawLength, in, inAt, len);
      } else {
        n =
            dst.hasArray()
                ? dctx.decompressDirectByteBufferToByteArray(
                    dst.array(), dst.arrayOffset() + start, rawLength, src, at, len)
                : dctx.decompressDirectByteBuffer(dst, start, rawLength, src, at, len);
      }
    } catch (ZstdException e) {
      throw new IllegalArgumentException("zstd: " + e.getMessage(), e);
    }
    if (n != rawLength) {
      throw new IllegalArgumentException(
          "decompressed length " + n + " differs from plain length " + rawLength);
    }
    src.position(at + len);
    dst.position(start + rawLength);
  }

  private static void checkStoredLength(int storedLength, int rawLength) {
    if (storedLength != rawLength) {
      throw new IllegalArgumentException(
          "stored length " + storedLength + " differs from plain length " + rawLength);
    }
  }

  @Override
  public void close() {
    cctx.close();
    dctx.close();
  }
}
