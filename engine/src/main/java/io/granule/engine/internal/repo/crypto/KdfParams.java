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

  /** The most memory a key blob may ask for (1 GiB): refuses blobs crafted to exhaust memory. */
  static final long MAX_MEMORY = 1L << 30;

  void validate() {
    if (n < 2 || Integer.bitCount(n) != 1 || r < 1 || p < 1 || p > 16) {
      throw new IllegalArgumentException(
          "invalid scrypt parameters n=" + n + " r=" + r + " p=" + p);
    }
    if (128L * r * n > MAX_MEMORY) {
      throw new IllegalArgumentException(
          "scrypt parameters n=" + n + " r=" + r + " need more than 1 GiB of memory");
    }
  }
}
