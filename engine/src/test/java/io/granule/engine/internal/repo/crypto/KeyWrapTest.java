package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import javax.crypto.AEADBadTagException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A key blob's AES-256-GCM: libcrypto's and the JDK's give the same bytes and open each other's.
 */
class KeyWrapTest {
  @BeforeAll
  static void nativeCrypto() {
    NativeCryptoTest.requireNative();
  }

  @Test
  void libcryptoAndTheJdkWrapAlikeAndUnwrapEachOther() throws Exception {
    Random r = new Random(7);
    byte[] kek = new byte[32];
    byte[] nonce = new byte[AesGcmCodec.NONCE];
    byte[] master = new byte[64];
    r.nextBytes(kek);
    r.nextBytes(nonce);
    r.nextBytes(master);
    byte[] viaNative = KeyRing.wrap(true, kek, nonce, 1, "repo-id", master, true);
    byte[] viaJdk = KeyRing.wrap(true, kek, nonce, 1, "repo-id", master, false);
    assertThat(viaNative).hasSize(64 + AesGcmCodec.TAG).isEqualTo(viaJdk);
    assertThat(KeyRing.wrap(false, kek, nonce, 1, "repo-id", viaJdk, true)).isEqualTo(master);
    assertThat(KeyRing.wrap(false, kek, nonce, 1, "repo-id", viaNative, false)).isEqualTo(master);
  }

  @Test
  void aChangedByteOrAnotherRepositoryFailsAuthenticationBothWays() throws Exception {
    byte[] kek = new byte[32];
    byte[] nonce = new byte[AesGcmCodec.NONCE];
    byte[] wrapped = KeyRing.wrap(true, kek, nonce, 1, "repo-id", new byte[64], true);
    byte[] flipped = wrapped.clone();
    flipped[10] ^= 1;
    for (boolean nativeCrypto : new boolean[] {true, false}) {
      assertThatThrownBy(() -> KeyRing.wrap(false, kek, nonce, 1, "repo-id", flipped, nativeCrypto))
          .isInstanceOf(AEADBadTagException.class);
      assertThatThrownBy(() -> KeyRing.wrap(false, kek, nonce, 1, "other", wrapped, nativeCrypto))
          .isInstanceOf(AEADBadTagException.class);
      assertThatThrownBy(
              () -> KeyRing.wrap(false, kek, nonce, 1, "repo-id", new byte[5], nativeCrypto))
          .isInstanceOf(AEADBadTagException.class);
    }
  }
}
