package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code GET /api/stats} and {@code POST /api/verify} against a real {@code granule server}: the
 * stats the CLI prints, a verify job with its progress and report, a subset of the data read, a
 * damaged chunk failing the job with exit code 5 and its report kept, bad requests refused at once.
 */
class VerifyApiTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  @Test
  void statsAndVerifyThroughTheApiAndDamageFailsTheJobWithItsReport() throws Exception {
    byte[] data = new byte[24 * MIB];
    new Random(5).nextBytes(data);
    Path image = Files.write(tmp.resolve("vm.img"), data);
    Path repo = tmp.resolve("repo");
    Granule.Result r =
        Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    r =
        Granule.run(
            tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + image, "--no-progress");
    assertThat(r.exitCode()).as(r.err()).isZero();
    r = Granule.run(tmp, "stats", "--repo", repo.toString(), "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode cliStats = Api.JSON.readTree(r.out());

    JsonNode damaged;
    JsonNode all;
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);
      Api.Response stats = api.get("/api/stats?repo=" + repo);
      assertThat(stats.status()).as(stats.body().toString()).isEqualTo(200);
      assertThat(stats.body()).isEqualTo(cliStats);
      assertThat(stats.body().get("chunks").asLong()).isEqualTo(48);
      assertThat(api.get("/api/stats").status()).isEqualTo(400);
      Api.Response missing = api.get("/api/stats?repo=" + tmp.resolve("nothing"));
      assertThat(missing.status()).isEqualTo(422);
      assertThat(missing.body().get("error").asText()).contains("nothing");

      JsonNode job = api.awaitJob(start(api, Map.of("repo", repo.toString())));
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
      assertThat(job.get("kind").asText()).isEqualTo("verify");
      JsonNode report = job.get("result");
      assertThat(report.get("snapshots").asInt()).isEqualTo(1);
      assertThat(report.get("chunks").asLong()).isEqualTo(48);
      assertThat(report.get("dataRead").asBoolean()).isFalse();
      assertThat(report.get("dataPacks").asInt()).isZero();
      JsonNode progress = job.get("progress");
      assertThat(progress.get("phase").asText()).isEqualTo("snapshots");
      assertThat(progress.get("filesDone").asInt()).isEqualTo(progress.get("filesTotal").asInt());

      // One byte of a chunk changed: the structure still checks out, the data does not.
      Path pack = largestPack(repo);
      try (RandomAccessFile f = new RandomAccessFile(pack.toFile(), "rw")) {
        f.seek(f.length() / 2);
        int b = f.read();
        f.seek(f.length() / 2);
        f.write(b ^ 0x01);
      }
      job = api.awaitJob(start(api, Map.of("repo", repo.toString())));
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("SUCCEEDED");

      job = api.awaitJob(start(api, Map.of("repo", repo.toString(), "readData", true)));
      damaged = job;
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("FAILED");
      assertThat(job.get("exitCode").asInt()).isEqualTo(5);
      String snapshot = api.get("/api/snapshots?repo=" + repo).body().get(0).get("id").asText();
      assertThat(job.get("error").asText()).contains("damage found").contains(snapshot);
      report = job.get("result");
      assertThat(report.get("dataRead").asBoolean()).isTrue();
      assertThat(report.get("damages").get(0).get("file").asText())
          .endsWith(pack.getFileName().toString());
      assertThat(report.get("affectedSnapshots").get(0).asText()).isEqualTo(snapshot);

      // Groups 1/2 and 2/2 read every pack once; one of them finds the damage.
      int packs = report.get("packs").asInt();
      int read = 0;
      int failed = 0;
      for (int n = 1; n <= 2; n++) {
        job = api.awaitJob(start(api, Map.of("repo", repo.toString(), "readDataSubset", n + "/2")));
        read += job.get("result").get("dataPacks").asInt();
        assertThat(job.get("result").get("dataSubset").asText()).isEqualTo(n + "/2");
        failed += job.get("state").asText().equals("FAILED") ? 1 : 0;
      }
      assertThat(read).isEqualTo(packs);
      assertThat(failed).isEqualTo(1);

      Api.Response bad =
          api.post(
              "/api/verify",
              Api.JSON.writeValueAsString(
                  Map.of("repo", repo.toString(), "readDataSubset", "3/2")));
      assertThat(bad.status()).isEqualTo(400);
      assertThat(bad.body().get("error").asText()).contains("'3/2'");
      bad =
          api.post(
              "/api/verify",
              Api.JSON.writeValueAsString(
                  Map.of("repo", repo.toString(), "readData", true, "readDataSubset", "1/2")));
      assertThat(bad.status()).isEqualTo(400);
      assertThat(api.post("/api/verify", "{}").status()).isEqualTo(400);
      all = api.get("/api/jobs").body();
    }
    // a restarted server shows the jobs of the last one as they ended: the report of damage too
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);
      assertThat(api.get("/api/jobs/" + damaged.get("id").asText()).body()).isEqualTo(damaged);
      assertThat(api.get("/api/jobs").body()).isEqualTo(all);
    }
  }

  private static Path largestPack(Path repo) throws Exception {
    try (Stream<Path> files = Files.walk(repo.resolve("data"))) {
      return files
          .filter(Files::isRegularFile)
          .max(Comparator.comparingLong(p -> p.toFile().length()))
          .orElseThrow();
    }
  }

  private static String start(Api api, Map<String, Object> body) throws Exception {
    Api.Response r = api.post("/api/verify", Api.JSON.writeValueAsString(body));
    assertThat(r.status()).as(r.body().toString()).isEqualTo(202);
    return r.body().get("id").asText();
  }
}
