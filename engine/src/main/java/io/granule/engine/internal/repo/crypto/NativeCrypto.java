package io.granule.engine.internal.repo.crypto;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * SHA-256, HMAC-SHA-256, AES-256-GCM and scrypt from the system's OpenSSL 3 libcrypto, through the
 * engine's small JNI library {@code libgranule-native} (source: {@code engine/src/main/c}).
 *
 * <p>Why: the JDK computes these at hardware speed (the CPU's SHA and AES instructions) only in
 * code its C2 compiler has compiled, which a short-lived command pays for in seconds of CPU and a
 * JVM limited to the C1 compiler never gets (SHA-256 then runs at ~75 MB/s); libcrypto does from
 * the first call. The bytes are the same as the JDK's: the tests compare both.
 *
 * <p>{@link #available()} is false where the library or libcrypto.so.3 cannot be loaded (another OS
 * or CPU, no OpenSSL 3); callers then use the JDK's implementations. {@link #unavailableReason}
 * says why. {@code -Dgranule.crypto.native=false} turns it off.
 *
 * <p>In the OSGi runtime the engine bundle carries the library ({@code Bundle-NativeCode}); outside
 * it (unit tests) it is loaded from the build output.
 */
public final class NativeCrypto {
  private static final Logger LOG = LoggerFactory.getLogger(NativeCrypto.class);
  private static final String REASON = load();
  private static final String BLAKE3_REASON = loadBlake3();

  private NativeCrypto() {}

  /** Whether the native implementations can be used. */
  public static boolean available() {
    return REASON == null;
  }

  /** Why the native implementations are not used, or null if they are. */
  public static String unavailableReason() {
    return REASON;
  }

  private static String load() {
    if (!Boolean.parseBoolean(System.getProperty("granule.crypto.native", "true"))) {
      return unavailable("turned off (granule.crypto.native=false)");
    }
    String missing = NativeLibrary.unavailableReason();
    if (missing != null) {
      return unavailable(missing);
    }
    try {
      return unavailable(init());
    } catch (UnsatisfiedLinkError e) {
      return unavailable(e.toString());
    }
  }

  private static String loadBlake3() {
    if (!Boolean.parseBoolean(System.getProperty("granule.crypto.native", "true"))) {
      return "turned off (granule.crypto.native=false)";
    }
    String missing = NativeLibrary.unavailableReason();
    if (missing != null) {
      return missing;
    }
    try {
      byte[] out = new byte[32];
      // the first bytes of BLAKE3("") (the reference test vectors): a build that got it wrong is
      // never used
      if (blake3(null, new byte[0], 0, 0, out) != 0 || out[0] != (byte) 0xaf || out[1] != 0x13) {
        return "libgranule-native's BLAKE3 failed its self-test";
      }
      return null;
    } catch (UnsatisfiedLinkError e) {
      return e.toString();
    }
  }

  /** Whether {@link #blake3} can be used (it needs libgranule-native but not libcrypto). */
  public static boolean blake3Available() {
    return BLAKE3_REASON == null;
  }

  /** Why the native BLAKE3 is not used, or null if it is. */
  public static String blake3UnavailableReason() {
    return BLAKE3_REASON;
  }

  private static String unavailable(String reason) {
    if (reason == null) {
      return null;
    }
    if (java.lang.management.ManagementFactory.getRuntimeMXBean()
        .getInputArguments()
        .contains("-XX:TieredStopAtLevel=1")) {
      // The JDK's SHA-256 and AES-GCM are fast only in code of the optimizing compiler.
      LOG.warn(
          "native crypto unavailable ({}): hashing and encryption run at a fraction of their"
              + " speed in this JVM without its optimizing compiler; set GRANULE_JIT=full",
          reason);
    } else {
      LOG.info("native crypto unavailable, using the JDK's: {}", reason);
    }
    return reason;
  }

  /** Binds libcrypto; null, or why it cannot. */
  private static native String init();

  private static native String libraryVersion();

  /**
   * What computes hashes and encryption in this process, for {@code granule --version}: e.g. {@code
   * OpenSSL 3.0.19 27 Jan 2026 (libcrypto.so.3, through libgranule-native)}, or {@code the JDK's
   * (REASON)}.
   */
  public static String describe() {
    return available()
        ? libraryVersion() + " (libcrypto.so.3, through libgranule-native)"
        : "the JDK's (" + REASON + ")";
  }

  /**
   * What computes BLAKE3 chunk ids in this process, for {@code granule --version}: {@code
   * libgranule-native (reference C 1.3.1, AVX-512: 16 inputs at once)}, or {@code commons-codec,
   * Java (REASON)}.
   */
  public static String describeBlake3() {
    return blake3Available()
        ? "libgranule-native (reference C 1.3.1, " + simd() + ")"
        : "commons-codec, Java (" + BLAKE3_REASON + ")";
  }

  /** The instruction set the native BLAKE3 picked on this CPU, in words. */
  private static String simd() {
    int degree;
    try {
      degree = blake3SimdDegree();
    } catch (UnsatisfiedLinkError e) {
      return "SIMD chosen at run time"; // a library built before it could tell
    }
    String set =
        switch (degree) {
          case 16 -> "AVX-512";
          case 8 -> "AVX2";
          case 4 -> "SSE4.1 or SSE2";
          case 1 -> "portable C, no SIMD";
          default -> "SIMD";
        };
    return degree > 1 ? set + ": " + degree + " inputs at once" : set;
  }

  private static native int blake3SimdDegree();

  /**
   * SHA-256 if {@code key} is null, else HMAC-SHA-256 under {@code key} (at most 64 bytes), of
   * {@code len} bytes at {@code off} of {@code data}, a byte[] or a direct buffer (absolute
   * offset), into {@code out} (32 bytes); 0, or -1.
   */
  private static native int digest(byte[] key, Object data, int off, int len, byte[] out);

  /**
   * BLAKE3 of {@code len} bytes at {@code off} of {@code data}, a byte[] or a direct buffer
   * (absolute offset), into {@code out} (32 bytes); its keyed mode under {@code key} (32 bytes)
   * unless that is null. 0, or -1.
   */
  private static native int blake3(byte[] key, Object data, int off, int len, byte[] out);

  /**
   * A native hash of a region of a byte[] or a direct buffer: {@link #digest} or {@link #blake3}.
   */
  private interface Hash {
    int compute(byte[] key, Object data, int off, int len, byte[] out);
  }

  /**
   * AES-256-GCM with a 16-byte tag; {@code src} and {@code dst} are each a byte[] or a direct
   * buffer (absolute offsets). Encrypting: {@code len} bytes of {@code src} become {@code len}
   * bytes of ciphertext and the tag in {@code dst}; returns {@code len + 16}. Decrypting: {@code
   * len} bytes of ciphertext and tag become {@code len - 16} bytes of plaintext; returns that, or
   * -2 if authentication fails (then {@code dst} holds zeros there). -1 on other failures.
   */
  static native int aesGcm(
      boolean encrypt,
      byte[] key,
      byte[] nonce,
      byte[] aad,
      Object src,
      int srcOff,
      int len,
      Object dst,
      int dstOff);

  /** scrypt into {@code out}; 0, or -1 if libcrypto refuses the parameters. */
  static native int scrypt(byte[] password, byte[] salt, long n, int r, int p, byte[] out);

  /**
   * SHA-256 ({@code key} null) or HMAC-SHA-256 under {@code key} of {@code len} bytes of {@code
   * data} at {@code off}, as a 32-byte array; only when {@link #available()}.
   */
  public static byte[] digest(byte[] key, byte[] data, int off, int len) {
    java.util.Objects.checkFromIndexSize(off, len, data.length);
    return hash(NativeCrypto::digest, key, data, off, len);
  }

  /**
   * As {@link #digest(byte[], byte[], int, int)}, of the bytes remaining in {@code data} (heap or
   * direct), which it consumes: the position ends at the limit.
   */
  public static byte[] digest(byte[] key, ByteBuffer data) {
    return hash(NativeCrypto::digest, key, data);
  }

  /**
   * BLAKE3 ({@code key} null) or keyed BLAKE3 under {@code key} (32 bytes) of {@code len} bytes of
   * {@code data} at {@code off}, as a 32-byte array; only when {@link #blake3Available()}.
   */
  public static byte[] blake3(byte[] key, byte[] data, int off, int len) {
    java.util.Objects.checkFromIndexSize(off, len, data.length);
    return hash(NativeCrypto::blake3, key, data, off, len);
  }

  /**
   * As {@link #blake3(byte[], byte[], int, int)}, of the bytes remaining in {@code data} (heap or
   * direct), which it consumes: the position ends at the limit.
   */
  public static byte[] blake3(byte[] key, ByteBuffer data) {
    return hash(NativeCrypto::blake3, key, data);
  }

  private static byte[] hash(Hash h, byte[] key, ByteBuffer data) {
    int pos = data.position();
    int len = data.remaining();
    byte[] out;
    if (data.hasArray()) {
      out = hash(h, key, data.array(), data.arrayOffset() + pos, len);
    } else if (data.isDirect()) {
      out = hash(h, key, data, pos, len);
    } else {
      byte[] copy = new byte[len];
      data.duplicate().get(copy);
      out = hash(h, key, copy, 0, len);
    }
    data.position(data.limit());
    return out;
  }

  private static byte[] hash(Hash h, byte[] key, Object data, int off, int len) {
    byte[] out = new byte[32];
    if ((key != null && key.length > 64) || h.compute(key, data, off, len, out) != 0) {
      throw new IllegalStateException("libgranule-native failed to compute a hash");
    }
    return out;
  }

  /** The array of a heap buffer, or the direct buffer itself: what the natives take. */
  static Object target(ByteBuffer b) {
    if (b.hasArray()) {
      return b.array();
    }
    if (b.isDirect()) {
      return b;
    }
    throw new IllegalArgumentException("a read-only heap buffer");
  }

  /** The absolute offset in {@link #target} of index {@code i} of {@code b}. */
  static int offset(ByteBuffer b, int i) {
    return b.hasArray() ? b.arrayOffset() + i : i;
  }
}
