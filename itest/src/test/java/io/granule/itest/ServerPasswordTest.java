package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * audit11 netkeys F5, the REST side: a {@code granule server} gives its own {@code
 * GRANULE_PASSWORD} for every repository, and a client cannot give none. An unencrypted repository
 * is refused while the server has one (set, or set but empty: a password given), and the refusal
 * says so and what to do (a server started without it), not "give no password".
 */
class ServerPasswordTest {
  @TempDir Path tmp;

  @Test
  void aServerWithAPasswordRefusesAnUnencryptedRepositorySayingWhy() throws Exception {
    Path repo = tmp.resolve("plain");
    Granule.Result r =
        Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    for (String pw : new String[] {Granule.PASSWORD, ""}) {
      try (Granule.Server server =
          Granule.Server.start(
              tmp.resolve("data" + pw.length()), List.of(), Map.of("GRANULE_PASSWORD", pw))) {
        Api.Response stats = new Api(server.url).get("/api/stats?repo=" + repo);
        assertThat(stats.status()).as(stats.body().toString()).isEqualTo(403);
        String error = stats.body().get("error").asText();
        assertThat(error)
            .as("GRANULE_PASSWORD='%s'", pw)
            .contains("is not encrypted, but a password was given")
            .contains("this server was started with GRANULE_PASSWORD")
            .contains("serve it from a granule server started without GRANULE_PASSWORD")
            .doesNotContain("give no password for it");
      }
    }
    // started without: served
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data-none"), List.of(), Granule.NO_PASSWORD)) {
      Api.Response stats = new Api(server.url).get("/api/stats?repo=" + repo);
      assertThat(stats.status()).as(stats.body().toString()).isEqualTo(200);
    }
  }
}
