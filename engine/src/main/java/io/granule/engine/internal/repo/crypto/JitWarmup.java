package io.granule.engine.internal.repo.crypto;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Where the JDK's own implementations are used (no {@link NativeCrypto}), gets the JIT to compile
 * the hot paths of chunk hashing and encryption before bulk data reaches them, by running them a
 * few thousand times on small inputs in a background thread.
 *
 * <p>Why: the CPU instructions for SHA-256, AES and GHASH are used only by code the C2 compiler has
 * compiled, and C2 compiles a method after thousands of calls. A bulk operation calls AES-GCM once
 * per 64 KiB segment, so in a fresh JVM GHASH runs as interpreted Java for seconds: measured on
 * Java 17, encrypting 1.7 GB in 64 KiB segments took 4.3 s cold, 35-50 MB/s in its first 3 s; after
 * a warm-up of 5,000 calls on 256 bytes (0.3 s in the background), 1.6 s. A one-shot backup or
 * restore of a few GiB is over before the JIT would get there on its own.
 *
 * <p>Once per JVM ({@link #start} returns at once after the first call). It encrypts with a
 * throwaway random key; hashing uses the repository's hasher, in memory, on dummy data.
 */
public final class JitWarmup {
  private static final AtomicBoolean STARTED = new AtomicBoolean();
  // Many calls on small inputs: C2 compiles after a number of calls, not of bytes.
  private static final int CALLS = 6_000;
  private static final int SIZE = 256;

  private JitWarmup() {}

  /**
   * Starts warming up encoding and decoding with a codec like {@code codec} (if it transforms) and
   * hashing with {@code hasher}, in a daemon thread at low priority.
   */
  public static void start(BlobCodec codec, ChunkHasher hasher) {
    if (NativeCrypto.available()
        || !STARTED.compareAndSet(false, true)
        || Boolean.getBoolean("granule.jit.warmup.off")) {
      return; // libcrypto is fast from the first call
    }
    boolean aes = codec instanceof AesGcmCodec;
    ChunkHasher h = hasher.copy();
    Thread t =
        new Thread(
            () -> {
              byte[] key = new byte[32];
              new java.security.SecureRandom().nextBytes(key);
              AesGcmCodec c = new AesGcmCodec(key);
              BlobName name = new BlobName(BlobType.PACK, "00");
              byte[] plain = new byte[SIZE];
              byte[] stored = new byte[c.encodedLength(SIZE)];
              for (int i = 0; i < CALLS; i++) {
                plain[0] = (byte) i;
                h.hash(plain, 0, plain.length);
                if (aes) {
                  c.encode(name, java.nio.ByteBuffer.wrap(plain), java.nio.ByteBuffer.wrap(stored));
                  c.decode(name, stored);
                }
              }
            },
            "granule-jit-warmup");
    t.setDaemon(true);
    t.setPriority(Thread.MIN_PRIORITY);
    t.start();
  }
}
