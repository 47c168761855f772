package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/**
 * RFC 7914 test vectors (sections 11 and 12). The fourth scrypt vector (n=2^20, 1 GiB) is left out
 * to keep the suite small on shared machines; the third exercises the same code at n=2^14.
 */
class ScryptTest {
  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }

  private static String hex(byte[] b) {
    return HexFormat.of().formatHex(b);
  }

  @Test
  void pbkdf2HmacSha256OneIteration() {
    assertThat(hex(Scrypt.pbkdf2HmacSha256(ascii("passwd"), ascii("salt"), 64)))
        .isEqualTo(
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                + "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  }

  @Test
  void emptyPasswordAndSalt() {
    assertThat(hex(Scrypt.derive(ascii(""), ascii(""), 16, 1, 1, 64)))
        .isEqualTo(
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
                + "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
  }

  @Test
  void passwordNaCl() {
    assertThat(hex(Scrypt.derive(ascii("password"), ascii("NaCl"), 1024, 8, 16, 64)))
        .isEqualTo(
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                + "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
  }

  @Test
  void pleaseLetMeIn() {
    assertThat(hex(Scrypt.derive(ascii("pleaseletmein"), ascii("SodiumChloride"), 16384, 8, 1, 64)))
        .isEqualTo(
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
                + "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
  }

  @Test
  void badParametersAreRefused() {
    assertThatThrownBy(() -> Scrypt.derive(ascii("x"), ascii("y"), 1000, 8, 1, 32))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("scrypt n must be a power of two above 1, not 1000");
  }
}
