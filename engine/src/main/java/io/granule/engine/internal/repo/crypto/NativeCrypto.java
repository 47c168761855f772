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
   * SHA-256 if {@code key} is null, else HMAC-SHA-256 under {@code key} (at most 64 bytes), of
   * {@code len} bytes at {@code off} of {@code data}, a byte[] or a direct buffer (absolute
   * offset), into {@code out} (32 bytes); 0, or -1.
   */
  private static native int digest(byte[] key, Object data, int off, int len, byte[] out);

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
    return digest(key, (Object) data, off, len);
  }

  /**
   * As {@link #digest(byte[], byte[], int, int)}, of the bytes remaining in {@code data} (heap or
   * direct), which it consumes: the position ends at the limit.
   */
  public static byte[] digest(byte[] key, ByteBuffer data) {
    int pos = data.position();
    int len = data.remaining();
    byte[] out;
    if (data.hasArray()) {
      out = digest(key, data.array(), data.arrayOffset() + pos, len);
    } else if (data.isDirect()) {
      out = digest(key, (Object) data, pos, len);
    } else {
      byte[] copy = new byte[len];
      data.duplicate().get(copy);
      out = digest(key, copy, 0, len);
    }
    data.position(data.limit());
    return out;
  }

  private static byte[] digest(byte[] key, Object data, int off, int len) {
    byte[] out = new byte[32];
    if ((key != null && key.length > 64) || digest(key, data, off, len, out) != 0) {
      throw new IllegalStateException("libcrypto failed to compute a digest");
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
