package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.UserPrincipal;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code POST /api/repair} against a real {@code granule server}: a pack damaged on disk, a dry run
 * that reports it and changes nothing, another local user's request closed unanswered and another
 * user's unencrypted repository refused, another process's lock failing the job with exit code 9,
 * then a repair job whose result names the damaged pack, what became of its chunks and the
 * snapshots that use lost chunks (exit code 5); backing up the same disks again makes {@code verify
 * --read-data} clean, and a repair afterwards finds nothing.
 */
class RepairApiTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  @Test
  void repairThroughTheApiWithDryRunAndRefusals() throws Exception {
    Random rnd = new Random(11);
    Path first = tmp.resolve("first.img");
    Path second = tmp.resolve("second.img");
    byte[] a = new byte[24 * MIB];
    rnd.nextBytes(a);
    Files.write(first, a);
    byte[] b = a.clone();
    byte[] changed = new byte[8 * MIB];
    rnd.nextBytes(changed);
    System.arraycopy(changed, 0, b, 4 * MIB, changed.length);
    Files.write(second, b);
    Path repo = tmp.resolve("repo");
    Granule.Result r =
        Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    List<String> snapshots = new ArrayList<>();
    for (Path img : List.of(first, second)) {
      snapshots.add(backup(repo, img));
    }
    // Bit flips a third of the way into the largest pack: some of its chunks are lost.
    Path pack = largestPack(repo);
    byte[] bytes = Files.readAllBytes(pack);
    for (int i = bytes.length / 3; i < bytes.length / 3 + 4096; i += 512) {
      bytes[i] ^= 0x04;
    }
    Files.write(pack, bytes);
    String packName = "data/" + pack.getFileName();
    Map<String, String> damagedRepo = contents(repo);

    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);
      String body = Api.JSON.writeValueAsString(Map.of("repo", repo.toString()));

      // Another local user's connection is closed before a byte of it is read: no repair.
      if ("root".equals(System.getProperty("user.name"))) {
        assertThat(curlPostAs("nobody", server.url.resolve("/api/repair").toString(), body))
            .endsWith("\n000");
        assertThat(contents(repo)).isEqualTo(damagedRepo);
      }

      // Bad requests are refused at once.
      assertThat(api.post("/api/repair", "{}").status()).isEqualTo(400);
      Api.Response bad =
          api.post("/api/repair", Api.JSON.writeValueAsString(Map.of("repo", "repo")));
      assertThat(bad.status()).isEqualTo(400);
      assertThat(bad.body().get("error").asText()).contains("absolute path");
      bad =
          api.post(
              "/api/repair",
              Api.JSON.writeValueAsString(Map.of("repo", repo.toString(), "dryRun", "yes")));
      assertThat(bad.status()).isEqualTo(400);
      bad =
          api.post(
              "/api/repair",
              Api.JSON.writeValueAsString(Map.of("repo", repo.toString(), "force", true)));
      assertThat(bad.status()).isEqualTo(400);

      // A dry run reports the damaged pack and changes nothing; exit code 5 as the CLI's.
      JsonNode job =
          api.awaitJob(start(api, Map.of("repo", repo.toString(), "dryRun", Boolean.TRUE)));
      assertThat(job.get("kind").asText()).isEqualTo("repair");
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("FAILED");
      assertThat(job.get("exitCode").asInt()).isEqualTo(5);
      assertThat(job.get("error").asText())
          .contains("dry run: 1 damaged packs found")
          .contains("nothing was changed");
      JsonNode dry = job.get("result").get("report");
      assertThat(dry.get("dryRun").asBoolean()).isTrue();
      assertThat(dry.get("damaged")).hasSize(1);
      JsonNode dryPack = dry.get("damaged").get(0);
      assertThat(dryPack.get("pack").asText()).isEqualTo(packName);
      assertThat(dryPack.get("lost").asInt()).isPositive();
      assertThat(dryPack.get("salvaged").asInt()).isPositive();
      assertThat(
              dryPack.get("salvaged").asInt()
                  + dryPack.get("elsewhere").asInt()
                  + dryPack.get("lost").asInt())
          .isEqualTo(dryPack.get("indexed").asInt());
      assertThat(dry.get("packsWritten").asLong()).isZero();
      assertThat(dry.get("packsDeleted").asInt()).isZero();
      assertThat(dry.get("indexesReplaced").asInt()).isPositive();
      assertThat(job.get("result").get("bytesRead").asLong()).isPositive();
      assertThat(contents(repo)).isEqualTo(damagedRepo);

      // An unencrypted repository another user owns is refused, as on the command line.
      if ("root".equals(System.getProperty("user.name"))) {
        UserPrincipal root = Files.getOwner(repo);
        UserPrincipal nobody =
            repo.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
        Files.setOwner(repo, nobody);
        try {
          job = api.awaitJob(start(api, Map.of("repo", repo.toString())));
        } finally {
          Files.setOwner(repo, root);
        }
        assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("FAILED");
        assertThat(job.get("exitCode").asInt()).isEqualTo(5);
        assertThat(job.get("error").asText()).contains("is not encrypted and");
        assertThat(job.get("result").isNull()).isTrue();
        assertThat(contents(repo)).isEqualTo(damagedRepo);
      }

      // Another process's lock (an NBD export holds the shared lock) fails the job: exit code 9.
      try (NbdServeTest.Serve serve =
          new NbdServeTest.Serve(
              tmp, "latest", "--repo", repo.toString(), "--listen", "127.0.0.1:0")) {
        job = api.awaitJob(start(api, Map.of("repo", repo.toString())));
      }
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("FAILED");
      assertThat(job.get("exitCode").asInt()).isEqualTo(9);
      assertThat(job.get("error").asText()).contains("serve nbd");
      assertThat(contents(repo)).isEqualTo(damagedRepo);

      // The repair: the damaged pack is gone, its readable chunks kept, the snapshots that use
      // its lost chunks named (exit code 5 until they are backed up again).
      job = api.awaitJob(start(api, Map.of("repo", repo.toString())));
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("FAILED");
      assertThat(job.get("exitCode").asInt()).isEqualTo(5);
      JsonNode report = job.get("result").get("report");
      assertThat(report.get("dryRun").asBoolean()).isFalse();
      assertThat(report.get("damaged")).isEqualTo(dry.get("damaged"));
      assertThat(report.get("chunksSalvaged")).isEqualTo(dry.get("chunksSalvaged"));
      assertThat(report.get("chunksLost")).isEqualTo(dry.get("chunksLost"));
      assertThat(report.get("snapshots")).isEqualTo(dry.get("snapshots"));
      assertThat(report.get("packsDeleted").asInt()).isEqualTo(1);
      assertThat(report.get("packsWritten").asLong()).isPositive();
      assertThat(report.get("indexesReplaced")).isEqualTo(dry.get("indexesReplaced"));
      List<String> affected = new ArrayList<>();
      report.get("snapshots").forEach(s -> affected.add(s.asText()));
      assertThat(affected).isNotEmpty().isSubsetOf(snapshots);
      assertThat(job.get("error").asText())
          .contains("snapshots that use lost chunks: " + String.join(", ", affected))
          .contains("back up their disks again");
      JsonNode progress = job.get("progress");
      assertThat(progress.get("phase").asText()).isEqualTo("delete packs");
      assertThat(progress.get("done").asLong()).isEqualTo(progress.get("total").asLong());
      assertThat(Files.exists(pack)).isFalse();
    }

    // Backing up the same disks again stores the lost chunks anew: the repository reads whole.
    for (Path img : List.of(first, second)) {
      backup(repo, img);
    }
    Granule.Result verify = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(verify.exitCode()).as(verify.out() + verify.err()).isZero();
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);
      JsonNode job = api.awaitJob(start(api, Map.of("repo", repo.toString())));
      assertThat(job.get("state").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
      assertThat(job.get("exitCode").asInt()).isZero();
      JsonNode report = job.get("result").get("report");
      assertThat(report.get("damaged")).isEmpty();
      assertThat(report.get("chunksLost").asLong()).isZero();
      assertThat(report.get("snapshots")).isEmpty();
      assertThat(job.get("result").get("otherDamage")).isEmpty();
    }
  }

  /** Backs up {@code img} as disk vm; returns the snapshot's id. */
  private String backup(Path repo, Path img) throws Exception {
    Granule.Result r =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + img, "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    return Api.JSON.readTree(r.out()).get("snapshot").get("id").asText();
  }

  private static String start(Api api, Map<String, Object> body) throws Exception {
    Api.Response r = api.post("/api/repair", Api.JSON.writeValueAsString(body));
    assertThat(r.status()).as(r.body().toString()).isEqualTo(202);
    return r.body().get("id").asText();
  }

  /** Every file of {@code repo} (but its locks) and its SHA-256. */
  private static Map<String, String> contents(Path repo) throws Exception {
    Map<String, String> m = new TreeMap<>();
    try (Stream<Path> files = Files.walk(repo)) {
      for (Path p : files.filter(Files::isRegularFile).toList()) {
        String name = repo.relativize(p).toString();
        if (!name.startsWith("locks")) {
          m.put(name, RepositoryCliTest.sha256(p));
        }
      }
    }
    return m;
  }

  private static Path largestPack(Path repo) throws Exception {
    try (Stream<Path> files = Files.walk(repo.resolve("data"))) {
      return files
          .filter(Files::isRegularFile)
          .max(Comparator.comparingLong(p -> p.toFile().length()))
          .orElseThrow();
    }
  }

  /** A POST by curl as {@code user} (through runuser): the body and HTTP status. */
  private static String curlPostAs(String user, String url, String body) throws Exception {
    Process p =
        new ProcessBuilder(
                "runuser",
                "-u",
                user,
                "--",
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
                url)
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    return out;
  }
}
