package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import org.junit.jupiter.api.Test;

/**
 * What key blobs written by someone who can write the storage, but knows no password, may cost an
 * unlock (audit10 M4): a forged blob's scrypt parameters are bounded, so are the number of blobs
 * tried and their total work, and a derivation that fails, out of memory too, never holds the
 * unlock.
 */
class KeyCostTest {
  private static final byte[] CONFIG = "the config blob".getBytes(StandardCharsets.UTF_8);
  private static final SecureRandom RANDOM = new SecureRandom();

  @Test
  void granuleAcceptsAtMostFourTimesItsDefaultMemoryAndFourLanes() {
    KdfParams.DEFAULT.validate();
    new KdfParams(1 << 17, 8, 4).validate();
    new KdfParams(1 << 16, 16, 1).validate();
    assertThatThrownBy(() -> new KdfParams(1 << 18, 8, 1).validate())
        .hasMessageContaining("256 MiB")
        .hasMessageContaining("at most 128 MiB");
    assertThatThrownBy(() -> new KdfParams(1 << 15, 8, 5).validate())
        .hasMessageContaining("p at most 4");
    assertThatThrownBy(() -> new KdfParams(1 << 30, 1 << 30, 1).validate())
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(new KdfParams(1 << 17, 8, 4).memory()).isLessThan(320L << 20 >> 1);
  }
}
