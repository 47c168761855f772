package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** libcrypto's SHA-256, HMAC-SHA-256, AES-256-GCM and scrypt give the same bytes as the JDK's. */
class NativeCryptoTest {
  private static final long SEED = System.nanoTime();
  private static final int[] LENGTHS = {0, 1, 55, 56, 63, 64, 65, 4095, 65535, 65536, 65537};

  @BeforeAll
  static void nativeLibraryLoads() {
    requireNative();
  }

  /** Skips the calling test class without libcrypto, except under CI, where that fails. */
  static void requireNative() {
    String why = NativeCrypto.unavailableReason();
    if (why != null && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("native crypto must load under CI: " + why);
    }
    Assumptions.assumeTrue(why == null, "native crypto unavailable: " + why);
  }

  private static byte[] random(Random r, int n) {
    byte[] b = new byte[n];
    r.nextBytes(b);
    return b;
  }

  @Test
  void sha256AndHmacMatchTheJdk() {
    Random r = new Random(SEED);
    byte[] key = random(r, 32);
    ChunkHasher sha = ChunkHasher.sha256();
    ChunkHasher hmac = ChunkHasher.hmacSha256(key);
    assertThat(sha).isInstanceOf(ChunkHasher.NativeSha256ChunkHasher.class);
    assertThat(hmac).isInstanceOf(ChunkHasher.NativeHmacChunkHasher.class);
    for (int len : LENGTHS) {
      byte[] data = random(r, len + 20);
      int off = r.nextInt(20);
      assertThat(sha.hash(data, off, len))
          .as("sha-256 of %d bytes at %d (seed %d)", len, off, SEED)
          .isEqualTo(ChunkHasher.jdkSha256().hash(data, off, len));
      assertThat(hmac.hash(data, off, len))
          .as("hmac-sha-256 of %d bytes at %d (seed %d)", len, off, SEED)
          .isEqualTo(ChunkHasher.jdkHmacSha256(key).hash(data, off, len));
    }
    for (int len : LENGTHS) {
      byte[] data = random(r, len + 20);
      java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(len + 20);
      direct.put(data).position(7).limit(7 + len);
      java.nio.ByteBuffer heap = java.nio.ByteBuffer.wrap(data, 7, len);
      assertThat(sha.hash(direct)).as("direct, %d bytes", len).isEqualTo(sha.hash(data, 7, len));
      assertThat(direct.position()).isEqualTo(7 + len);
      assertThat(hmac.hash(heap)).as("heap, %d bytes", len).isEqualTo(hmac.hash(data, 7, len));
      assertThat(heap.hasRemaining()).isFalse();
    }
    byte[] big = random(r, (8 << 20) + 3);
    assertThat(sha.hash(big, 1, big.length - 1))
        .isEqualTo(ChunkHasher.jdkSha256().hash(big, 1, big.length - 1));
    // RFC 4231 test case 2: a key shorter than the block, "what do ya want for nothing?"
    byte[] jefe = "Jefe".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    byte[] msg =
        "what do ya want for nothing?".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    assertThat(ChunkHasher.hmacSha256(jefe).hash(msg, 0, msg.length).toString())
        .isEqualTo("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  }

  @Test
  void badIndexesAreRefusedBeforeReachingNativeCode() {
    byte[] data = new byte[10];
    assertThatThrownBy(() -> NativeCrypto.digest(null, data, 5, 6))
        .isInstanceOf(IndexOutOfBoundsException.class);
    assertThatThrownBy(() -> NativeCrypto.digest(new byte[32], data, -1, 2))
        .isInstanceOf(IndexOutOfBoundsException.class);
    assertThatThrownBy(() -> NativeCrypto.digest(new byte[65], data, 0, 2))
        .isInstanceOf(IllegalStateException.class);
  }

  @Test
  void aesGcmRecordsOfEitherImplementationOpenWithTheOther() {
    Random r = new Random(SEED);
    byte[] key = random(r, 32);
    AesGcmCodec nat = new AesGcmCodec(key, true);
    AesGcmCodec jdk = new AesGcmCodec(key, false);
    BlobName name = new BlobName(BlobType.PACK, "ab12");
    for (int len : new int[] {0, 1, 16, 65535, 65536, 65537, 3 * 65536 + 5}) {
      byte[] plain = random(r, len);
      byte[] sealedByNative = nat.encode(name, plain);
      byte[] sealedByJdk = jdk.encode(name, plain);
      assertThat(sealedByNative).hasSameSizeAs(sealedByJdk);
      assertThat(jdk.decode(name, sealedByNative)).as("len %d", len).isEqualTo(plain);
      assertThat(nat.decode(name, sealedByJdk)).as("len %d", len).isEqualTo(plain);
    }
  }

  @Test
  void nativeDecodingRefusesChangedRecordsAndOtherNames() {
    Random r = new Random(SEED);
    AesGcmCodec nat = new AesGcmCodec(random(r, 32), true);
    BlobName name = new BlobName(BlobType.PACK, "ab12");
    byte[] plain = random(r, 2 * 65536 + 100);
    byte[] stored = nat.encode(name, plain);
    for (int i = 0; i < 50; i++) {
      byte[] bad = stored.clone();
      int at = r.nextInt(bad.length);
      bad[at] ^= (byte) (1 << r.nextInt(8));
      assertThatThrownBy(() -> nat.decode(name, bad))
          .as("flip at %d (seed %d)", at, SEED)
          .hasMessage(AesGcmCodec.AUTH_FAILED);
    }
    assertThatThrownBy(() -> nat.decode(new BlobName(BlobType.PACK, "ab13"), stored))
        .hasMessage(AesGcmCodec.AUTH_FAILED);
    assertThatThrownBy(() -> nat.decode(name, Arrays.copyOf(stored, stored.length - 1)))
        .hasMessage(AesGcmCodec.AUTH_FAILED);
  }

  @Test
  void scryptMatchesThePlainJavaImplementation() {
    byte[] pw = "pleaseletmein".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    byte[] salt = "SodiumChloride".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    assertThat(Scrypt.derive(pw, salt, 1024, 8, 2, 64))
        .isEqualTo(Scrypt.deriveInJava(pw, salt, 1024, 8, 2, 64));
    byte[] out = new byte[32];
    assertThat(NativeCrypto.scrypt(pw, salt, 1 << 14, 8, 1, out)).isZero();
    assertThat(out).isEqualTo(Scrypt.deriveInJava(pw, salt, 1 << 14, 8, 1, 32));
  }
}
