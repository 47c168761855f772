package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * The place of an S3 location (what a repository is remembered by): spelled one way whatever way it
 * was given (audit10 H1: the same bucket named through {@code localhost} instead of {@code
 * 127.0.0.1} found no pin, and a config rewritten as unencrypted was used).
 */
class S3LocationTest {
  private static String place(String location) {
    return S3Location.parse(location).place();
  }

  @Test
  void oneRepositoryNamedManyWaysHasOnePlace() {
    String p = place("s3:http://127.0.0.1:9000/bkt/host1");
    assertThat(place("s3:http://localhost:9000/bkt/host1")).isEqualTo(p);
    assertThat(place("s3:http://LOCALHOST:9000/bkt/host1/")).isEqualTo(p);
    assertThat(place("s3:http://127.0.0.2:9000/bkt/host1")).isEqualTo(p);
    assertThat(place("s3:http://[::1]:9000/bkt/host1")).isEqualTo(p);
    assertThat(place("s3:http://example.org/bkt/p"))
        .isEqualTo(place("s3:http://Example.ORG:80/bkt/p"));
    assertThat(place("s3:bkt/p"))
        .isEqualTo(place("s3:https://s3.eu-west-1.amazonaws.com/bkt/p"))
        .isEqualTo(place("s3:https://s3.amazonaws.com/bkt/p/"));
  }

  @Test
  void differentRepositoriesHaveDifferentPlaces() {
    String p = place("s3:http://127.0.0.1:9000/bkt/host1");
    assertThat(place("s3:http://127.0.0.1:9001/bkt/host1")).isNotEqualTo(p);
    assertThat(place("s3:https://127.0.0.1:9000/bkt/host1")).isNotEqualTo(p);
    assertThat(place("s3:http://127.0.0.1:9000/bkt/host2")).isNotEqualTo(p);
    assertThat(place("s3:http://127.0.0.1:9000/other/host1")).isNotEqualTo(p);
    assertThat(place("s3:http://10.0.0.1:9000/bkt/host1")).isNotEqualTo(p);
    assertThat(place("s3:http://127.0.0.1:9000/bkt")).isNotEqualTo(p);
  }
}
