package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code POST /api/restores/disk} against a real {@code granule server}: a whole disk restored raw
 * and as qcow2 (checked by qemu-img), progress and result in the job, an existing target refused at
 * once, and a snapshot that is not there failing the job with the CLI's exit code.
 */
class DiskRestoreApiTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  @Test
  void aDiskRestoresRawAndAsQcow2ThroughTheApiAndAnExistingTargetIsRefused() throws Exception {
    // 24 MiB: random data, zeros, and a repeated 4 MiB region (restored by copies)
    byte[] data = new byte[24 * MIB];
    new Random(11).nextBytes(data);
    java.util.Arrays.fill(data, 4 * MIB, 9 * MIB, (byte) 0);
    System.arraycopy(data, 12 * MIB, data, 18 * MIB, 4 * MIB);
    Path image = Files.write(tmp.resolve("vm.img"), data);
    Path repo = tmp.resolve("repo");
    Granule.Result r =
        Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    r =
        Granule.run(
            tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + image, "--no-progress");
    assertThat(r.exitCode()).as(r.err()).isZero();

    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);

      Path raw = tmp.resolve("out.img");
      JsonNode job =
          api.awaitJob(start(api, Map.of("repo", repo, "snapshot", "latest", "to", raw)));
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
      assertThat(job.get("kind").asText()).isEqualTo("restore-disk");
      assertThat(Files.readAllBytes(raw)).isEqualTo(data);
      JsonNode result = job.get("result");
      assertThat(result.get("disk").asText()).isEqualTo("vm");
      assertThat(result.get("format").asText()).isEqualTo("raw");
      assertThat(result.get("bytes").asLong()).isEqualTo(data.length);
      JsonNode progress = job.get("progress");
      assertThat(progress.get("bytesDone").asLong()).isEqualTo(data.length);
      assertThat(progress.get("bytesTotal").asLong()).isEqualTo(data.length);
      assertThat(progress.get("done").asBoolean()).isTrue();

      // The target now exists: refused at once, left as it is.
      Api.Response refused =
          api.post(
              "/api/restores/disk",
              Api.JSON.writeValueAsString(
                  Map.of("repo", repo.toString(), "snapshot", "latest", "to", raw.toString())));
      assertThat(refused.status()).isEqualTo(409);
      assertThat(refused.body().get("error").asText()).contains("exists").contains("force");
      assertThat(Files.readAllBytes(raw)).isEqualTo(data);

      Path qcow2 = tmp.resolve("out.qcow2");
      job =
          api.awaitJob(
              start(api, Map.of("repo", repo, "snapshot", "latest", "disk", "vm", "to", qcow2)));
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
      assertThat(job.get("result").get("format").asText()).isEqualTo("qcow2");
      assertThat(qemuImg("compare", "-f", "qcow2", "-F", "raw", qcow2.toString(), image.toString()))
          .contains("Images are identical");

      job =
          api.awaitJob(
              start(api, Map.of("repo", repo, "snapshot", "ffff", "to", tmp.resolve("x.img"))));
      assertThat(job.get("state").asText()).isEqualTo("FAILED");
      assertThat(job.get("exitCode").asInt()).as(job.toString()).isEqualTo(4);
      assertThat(job.get("error").asText()).contains("ffff");
      assertThat(tmp.resolve("x.img")).doesNotExist();
      assertThat(tmp.resolve("x.img.partial")).doesNotExist();
    }
  }

  /**
   * Two hosts in one repository: {@code GET /api/snapshots?host=} lists one host's, and a disk
   * restore of {@code latest} with {@code "host"} restores that host's disk, not the other's.
   */
  @Test
  void hostChoosesWhichSnapshotLatestIs() throws Exception {
    byte[] a = new byte[4 * MIB];
    byte[] b = new byte[4 * MIB];
    new Random(1).nextBytes(a);
    new Random(2).nextBytes(b);
    Path repo = tmp.resolve("repo");
    assertThat(
            Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", repo.toString())
                .exitCode())
        .isZero();
    for (var e : Map.of("db1", a, "db2", b).entrySet()) {
      Path image = Files.write(tmp.resolve(e.getKey() + ".img"), e.getValue());
      Granule.Result r =
          Granule.run(
              tmp,
              "backup",
              "--repo",
              repo.toString(),
              "--disk",
              "vda=" + image,
              "--host",
              e.getKey(),
              "--no-progress");
      assertThat(r.exitCode()).as(r.err()).isZero();
    }
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);
      JsonNode all = api.get("/api/snapshots?repo=" + repo).body();
      assertThat(all).hasSize(2);
      for (String host : List.of("db1", "db2")) {
        JsonNode mine = api.get("/api/snapshots?repo=" + repo + "&host=" + host).body();
        assertThat(mine).hasSize(1);
        assertThat(mine.get(0).get("host").asText()).isEqualTo(host);
        Path to = tmp.resolve(host + ".out");
        JsonNode job =
            api.awaitJob(
                start(
                    api,
                    Map.of(
                        "repo",
                        repo,
                        "snapshot",
                        "latest",
                        "disk",
                        "vda",
                        "to",
                        to,
                        "host",
                        host)));
        assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
        assertThat(job.get("result").get("snapshot").asText())
            .isEqualTo(mine.get(0).get("id").asText());
        assertThat(Files.readAllBytes(to)).isEqualTo(host.equals("db1") ? a : b);
      }
      JsonNode job =
          api.awaitJob(
              start(
                  api,
                  Map.of(
                      "repo",
                      repo,
                      "snapshot",
                      "latest",
                      "to",
                      tmp.resolve("x.out"),
                      "host",
                      "db3")));
      assertThat(job.get("state").asText()).isEqualTo("FAILED");
      assertThat(job.get("exitCode").asInt()).isEqualTo(4);
      assertThat(job.get("error").asText()).contains("of host db3");
    }
  }

  private static String start(Api api, Map<String, Object> body) throws Exception {
    Map<String, String> json = new java.util.LinkedHashMap<>();
    body.forEach((k, v) -> json.put(k, v.toString()));
    Api.Response r = api.post("/api/restores/disk", Api.JSON.writeValueAsString(json));
    assertThat(r.status()).as(r.body().toString()).isEqualTo(202);
    return r.body().get("id").asText();
  }

  private static String qemuImg(String... args) throws Exception {
    List<String> cmd = new java.util.ArrayList<>(List.of("qemu-img"));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out =
        new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertThat(p.waitFor()).as(cmd + ": " + out).isZero();
    return out;
  }
}
