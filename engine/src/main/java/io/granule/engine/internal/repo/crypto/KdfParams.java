package io.granule.engine.internal.repo.crypto;

/**
 * scrypt cost parameters of a key blob.
 *
 * @param n CPU/memory cost (a power of two)
 * @param r block size
 * @param p parallelization
 */
public record KdfParams(int n, int r, int p) {
  /** The default: n=2^15, r=8, p=1 (32 MiB, about 0.1 s), as RFC 7914 suggests for logins. */
  public static final KdfParams DEFAULT = new KdfParams(1 << 15, 8, 1);

  /** Cheap parameters for tests only: n=2^10, r=8, p=1 (1 MiB). */
  public static final KdfParams TESTING = new KdfParams(1 << 10, 8, 1);

  /**
   * The most memory ({@code 128·r·n} bytes) a key blob may ask for: 128 MiB, four times {@link
   * #DEFAULT} (room for a stronger default one day), and well within the 320 MiB heap of {@code
   * bin/granule} where the JDK runs scrypt. Key blobs are read before anything is authenticated: a
   * forged one asking for 1 GiB cost every command 75 s and 1.1 GB, or ran the JVM out of memory.
   */
  static final long MAX_MEMORY = 128L << 20;

  /** The largest parallelization a key blob may ask for (each lane costs a whole {@code n·r}). */
  static final int MAX_P = 4;

  /**
   * The work of one derivation in units of 128 bytes of memory filled twice ({@code n·r·p}): a
   * derivation with {@link #DEFAULT} costs 2^18.
   */
  long work() {
    long nr = (long) n * r;
    return nr > Long.MAX_VALUE / Math.max(p, 1) ? Long.MAX_VALUE : nr * p;
  }

  /** {@code 128·r·n} bytes (saturating at {@code Long.MAX_VALUE}). */
  long memory() {
    long nr = (long) n * r;
    return nr > Long.MAX_VALUE / 128 ? Long.MAX_VALUE : 128 * nr;
  }

  /**
   * @throws IllegalArgumentException if these are not scrypt parameters, or ask for more than
   *     {@link #MAX_MEMORY} or {@link #MAX_P}
   */
  void validate() {
    if (n < 2 || Integer.bitCount(n) != 1 || r < 1 || p < 1) {
      throw new IllegalArgumentException(
          "invalid scrypt parameters n=" + n + " r=" + r + " p=" + p);
    }
    if (memory() > MAX_MEMORY || p > MAX_P) {
      throw new IllegalArgumentException(
          "scrypt parameters n="
              + n
              + " r="
              + r
              + " p="
              + p
              + " ask for "
              + (memory() >> 20)
              + " MiB of memory"
              + (p > 1 ? " " + p + " times over" : "")
              + ": more than granule ever writes or accepts (at most "
              + (MAX_MEMORY >> 20)
              + " MiB, p at most "
              + MAX_P
              + "; granule writes n=32768 r=8 p=1, 32 MiB)");
    }
  }
}
