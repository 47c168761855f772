package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.crypto.NativeCrypto;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * BLAKE3 chunk ids: libgranule-native's (vendored reference C, SIMD) and commons-codec's (Java)
 * give the official test vectors and the same bytes as each other, keyed and not.
 */
class Blake3ChunkHasherTest {
  private static final long SEED = System.nanoTime();
  private static final byte[] VECTOR_KEY =
      "whats the Elvish word for friend".getBytes(StandardCharsets.US_ASCII);

  /**
   * Input length, hash, keyed hash (the first 32 bytes of each case) from the BLAKE3 team's
   * test_vectors.json: the input is 0, 1, ..., 250, 0, 1, ... (checked against b3sum).
   */
  static Stream<Arguments> vectors() {
    return Stream.of(
        Arguments.of(
            0,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"),
        Arguments.of(
            1,
            "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
            "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"),
        Arguments.of(
            1023,
            "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
            "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e"),
        Arguments.of(
            1024,
            "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
            "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4"),
        Arguments.of(
            1025,
            "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
            "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69"),
        Arguments.of(
            8193,
            "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b",
            "954a2a75420c8d6547e3ba5b98d963e6fa6491addc8c023189cc519821b4a1f5"),
        Arguments.of(
            16384,
            "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4",
            "9e9fc4eb7cf081ea7c47d1807790ed211bfec56aa25bb7037784c13c4b707b0d"),
        Arguments.of(
            31744,
            "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
            "efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419"),
        Arguments.of(
            102400,
            "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
            "1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7"));
  }

  private static byte[] pattern(int n) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) {
      b[i] = (byte) (i % 251);
    }
    return b;
  }

  /** The native hasher, or a failure under CI (where libgranule-native must load). */
  private static boolean nativeAvailable() {
    String why = NativeCrypto.blake3UnavailableReason();
    if (why != null && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("libgranule-native's BLAKE3 must load under CI: " + why);
    }
    return why == null;
  }

  @ParameterizedTest(name = "{0} bytes")
  @MethodSource("vectors")
  void javaImplementationGivesTheOfficialVectors(int len, String hash, String keyed) {
    byte[] in = pattern(len);
    assertThat(ChunkHasher.javaBlake3(null).hash(in, 0, len).toString()).isEqualTo(hash);
    assertThat(ChunkHasher.javaBlake3(VECTOR_KEY).hash(in, 0, len).toString()).isEqualTo(keyed);
  }

  @ParameterizedTest(name = "{0} bytes")
  @MethodSource("vectors")
  void nativeImplementationGivesTheOfficialVectors(int len, String hash, String keyed) {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        nativeAvailable(), "no native BLAKE3: " + NativeCrypto.blake3UnavailableReason());
    ChunkHasher plain = ChunkHasher.of(RepositoryConfig.BLAKE3, null);
    ChunkHasher withKey = ChunkHasher.of(RepositoryConfig.BLAKE3_KEYED, VECTOR_KEY);
    assertThat(plain).isInstanceOf(ChunkHasher.NativeBlake3ChunkHasher.class);
    assertThat(withKey).isInstanceOf(ChunkHasher.NativeBlake3ChunkHasher.class);
    byte[] in = pattern(len);
    assertThat(plain.hash(in, 0, len).toString()).isEqualTo(hash);
    assertThat(withKey.hash(in, 0, len).toString()).isEqualTo(keyed);
    // at an offset, in a heap buffer and in a direct buffer
    byte[] shifted = new byte[len + 13];
    System.arraycopy(in, 0, shifted, 5, len);
    assertThat(plain.hash(shifted, 5, len).toString()).isEqualTo(hash);
    ByteBuffer direct = ByteBuffer.allocateDirect(len + 13);
    direct.put(shifted).position(5).limit(5 + len);
    assertThat(withKey.hash(direct).toString()).isEqualTo(keyed);
    assertThat(direct.position()).isEqualTo(5 + len);
  }

  @Test
  void versionNamesTheInstructionSetThisCpuGets() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        nativeAvailable(), "no native BLAKE3: " + NativeCrypto.blake3UnavailableReason());
    Path cpuinfo = Path.of("/proc/cpuinfo");
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "amd64".equals(System.getProperty("os.arch")) && Files.isReadable(cpuinfo),
        "x86-64 Linux only");
    String flags =
        Files.readAllLines(cpuinfo).stream()
                .filter(l -> l.startsWith("flags"))
                .findFirst()
                .orElse("")
            + " ";
    // The reference C picks AVX-512 where the CPU has AVX512F and AVX512VL (and the kernel saves
    // their registers, as every kernel of this decade does), else AVX2, else SSE4.1 or SSE2. (A
    // build with -DBLAKE3_NO_AVX512, for benchmarks, says AVX2 there.)
    String expected =
        flags.contains(" avx512f ") && flags.contains(" avx512vl ")
            ? "AVX-512: 16 inputs at once"
            : flags.contains(" avx2 ") ? "AVX2: 8 inputs at once" : "SSE4.1 or SSE2: 4 inputs";
    assertThat(NativeCrypto.describeBlake3()).contains(expected);
  }

  @Test
  void nativeAndJavaAgreeOnChunkSizedInputs() {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        nativeAvailable(), "no native BLAKE3: " + NativeCrypto.blake3UnavailableReason());
    Random r = new Random(SEED);
    byte[] key = new byte[32];
    r.nextBytes(key);
    for (byte[] k : new byte[][] {null, key}) {
      ChunkHasher n = ChunkHasher.blake3(k);
      ChunkHasher j = ChunkHasher.javaBlake3(k);
      for (int len : new int[] {63, 64, 65, 4096, 65535, 512 << 10, (1 << 20) + 3}) {
        byte[] data = new byte[len + 9];
        r.nextBytes(data);
        ChunkId expected = j.hash(data, 9, len);
        assertThat(n.hash(data, 9, len)).as("%d bytes, seed %d", len, SEED).isEqualTo(expected);
        ByteBuffer direct = ByteBuffer.allocateDirect(len);
        direct.put(data, 9, len).flip();
        // the Java hasher takes a direct buffer in slices
        assertThat(j.copy().hash(direct.duplicate())).isEqualTo(expected);
        assertThat(n.hash(direct)).isEqualTo(expected);
        assertThat(direct.hasRemaining()).isFalse();
      }
    }
  }

  @Test
  void keyedIdsDependOnTheKeyAndDifferFromPlainOnes() {
    byte[] data = pattern(4096);
    byte[] k1 = new byte[32];
    byte[] k2 = new byte[32];
    k2[31] = 1;
    ChunkId plain = ChunkHasher.blake3(null).hash(data, 0, data.length);
    ChunkId a = ChunkHasher.blake3(k1).hash(data, 0, data.length);
    ChunkId b = ChunkHasher.blake3(k2).hash(data, 0, data.length);
    assertThat(a).isNotEqualTo(plain).isNotEqualTo(b);
    assertThat(ChunkHasher.blake3(k1).algorithm()).isEqualTo("blake3-keyed");
    assertThat(ChunkHasher.blake3(null).algorithm()).isEqualTo("blake3");
    // a Java hasher reused after a hash starts over: same input, same id
    ChunkHasher j = ChunkHasher.javaBlake3(k1);
    assertThat(j.hash(data, 0, 100)).isEqualTo(j.hash(data, 0, 100));
  }

  @Test
  void hashersAreChosenByTheConfigsName() {
    byte[] key = new byte[32];
    assertThat(ChunkHasher.of("sha256", null).algorithm()).isEqualTo("sha256");
    assertThat(ChunkHasher.of("hmac-sha256", key).algorithm()).isEqualTo("hmac-sha256");
    assertThat(ChunkHasher.of("blake3", null).algorithm()).isEqualTo("blake3");
    assertThat(ChunkHasher.of("blake3-keyed", key).algorithm()).isEqualTo("blake3-keyed");
    assertThatThrownBy(() -> ChunkHasher.of("blake3-keyed", null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("needs a key");
    assertThatThrownBy(() -> ChunkHasher.of("blake3", key))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("takes no key");
    assertThatThrownBy(() -> ChunkHasher.of("md5", null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("unsupported chunk hash 'md5'");
    assertThatThrownBy(() -> ChunkHasher.blake3(new byte[16]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("32 bytes, not 16");
  }
}
