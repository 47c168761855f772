package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hot plugin deployment against a real {@code granule server} process: bundles built here with bnd
 * are dropped into, overwritten in and deleted from DATA/plugins while the server runs.
 */
class HotDeployTest {
  /** How long a departing plugin waits for operations using it, in this server. */
  static final int DRAIN_SECONDS = 4;

  @TempDir Path tmp;
  Granule.Server server;
  Api api;
  Path bundles;

  @BeforeEach
  void start() throws Exception {
    bundles = Files.createDirectories(tmp.resolve("bundles"));
    server =
        Granule.Server.start(
            tmp.resolve("data"), List.of("-Dgranule.plugin.drain.seconds=" + DRAIN_SECONDS));
    api = new Api(server.url);
  }

  @AfterEach
  void stop() throws Exception {
    server.close();
  }

  static boolean active(java.util.Optional<JsonNode> p, String version) {
    return p.isPresent()
        && p.get().get("state").asText().equals("ACTIVE")
        && p.get().get("version").asText().equals(version)
        && p.get().get("services").toString().contains("slowtest");
  }

  @Test
  void droppedBundleAppearsWithin5sAndV2ReplacesV1AndDeleteRemovesIt() throws Exception {
    Path v1 = TestBundles.slow(bundles, "1.0.0");
    Path v2 = TestBundles.slow(bundles, "2.0.0");

    TestBundles.deploy(v1, server.plugins(), "slow.jar");
    long appeared = api.await(TestBundles.SLOW, p -> active(p, "1.0.0"), Duration.ofSeconds(5));
    assertThat(appeared).isLessThan(5000);
    JsonNode listed = api.plugin(TestBundles.SLOW).orElseThrow();
    assertThat(listed.get("services").get(0).get("type").asText()).isEqualTo("DiskImageFormat");
    assertThat(listed.get("services").get(0).get("name").asText()).isEqualTo("slowtest");

    TestBundles.deploy(v2, server.plugins(), "slow.jar");
    api.await(TestBundles.SLOW, p -> active(p, "2.0.0"), Duration.ofSeconds(10));
    assertThat(api.get("/api/plugins").body().toString()).doesNotContain("\"1.0.0\"");

    Files.delete(server.plugins().resolve("slow.jar"));
    api.await(TestBundles.SLOW, java.util.Optional::isEmpty, Duration.ofSeconds(10));

    // The CLI sees the same inventory through --server.
    Granule.Result r = Granule.run(tmp, "plugins", "--server", server.url.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("io.granule.plugin.vmdisk").doesNotContain(TestBundles.SLOW);
  }

  /**
   * What the folder watcher installs after the start is checked as the start checks it: a jar
   * another user owns (moved in with {@code mv}, which keeps its owner: his to rewrite) does not
   * resolve and is listed as failed with the reason, and loads once root owns it; a subdirectory of
   * plugins/ (installed as an exploded bundle before) is not installed at all.
   */
  @Test
  void aJarAnotherUserOwnsIsRefusedAndASubdirectoryIsNotInstalled() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to give a jar to another user");
      throw new AssertionError("needs root under CI");
    }
    Path staged = tmp.resolve("slow.jar");
    Files.copy(TestBundles.slow(bundles, "1.0.0"), staged);
    Files.setAttribute(staged, "unix:uid", 65534);
    Files.move(staged, server.plugins().resolve("slow.jar"));
    api.await(
        TestBundles.SLOW,
        p -> p.isPresent() && p.get().get("state").asText().equals("FAILED"),
        Duration.ofSeconds(10));
    JsonNode listed = api.plugin(TestBundles.SLOW).orElseThrow();
    assertThat(listed.get("failure").asText()).contains("refused").contains("owned by uid 65534");

    Path jar = server.plugins().resolve("slow.jar");
    Files.setAttribute(jar, "unix:uid", 0);
    Files.setLastModifiedTime(jar, java.nio.file.attribute.FileTime.from(java.time.Instant.now()));
    api.await(TestBundles.SLOW, p -> active(p, "1.0.0"), Duration.ofSeconds(10));

    // an exploded bundle in a subdirectory: never installed
    Path dir = Files.createDirectories(server.plugins().resolve("exploded"));
    try (java.util.zip.ZipInputStream in =
        new java.util.zip.ZipInputStream(
            Files.newInputStream(TestBundles.slow(bundles, "2.0.0")))) {
      for (java.util.zip.ZipEntry e; (e = in.getNextEntry()) != null; ) {
        Path out = dir.resolve(e.getName());
        if (e.isDirectory()) {
          Files.createDirectories(out);
        } else {
          Files.createDirectories(out.getParent());
          Files.copy(in, out);
        }
      }
    }
    Thread.sleep(3000);
    assertThat(api.get("/api/plugins").body().toString()).doesNotContain("\"2.0.0\"");
  }

  /**
   * A settings file another user owns, moved into config/ after the start, reached the plugins: its
   * settings are now stripped (the instance sees none of its values), and apply once root owns the
   * file.
   */
  @Test
  void aSettingsFileAnotherUserOwnsDoesNotConfigureAPlugin() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to give a file to another user");
      throw new AssertionError("needs root under CI");
    }
    TestBundles.deploy(TestBundles.configured(bundles), server.plugins(), "configured.jar");
    api.await(
        TestBundles.CONFIGURED,
        p -> p.isPresent() && p.get().get("state").asText().equals("ACTIVE"),
        Duration.ofSeconds(10));
    Path staged = tmp.resolve("io.granule.itest.configured-gamma.cfg");
    Files.writeString(staged, "name = gamma\n");
    Files.setAttribute(staged, "unix:uid", 65534);
    Path cfg = server.data.resolve("config").resolve(staged.getFileName());
    Files.move(staged, cfg);
    Files.writeString(
        server.data.resolve("config").resolve("io.granule.itest.configured-delta.cfg"),
        "name = delta\n");
    api.await(
        TestBundles.CONFIGURED,
        p -> p.isPresent() && p.get().get("services").toString().contains("\"delta\""),
        Duration.ofSeconds(10));
    Thread.sleep(2000);
    assertThat(api.plugin(TestBundles.CONFIGURED).orElseThrow().get("services").toString())
        .doesNotContain("\"gamma\"");

    // root's now, and changed: its settings apply
    Files.setAttribute(cfg, "unix:uid", 0);
    Files.writeString(cfg, "name = gamma2\n");
    api.await(
        TestBundles.CONFIGURED,
        p -> p.isPresent() && p.get().get("services").toString().contains("\"gamma2\""),
        Duration.ofSeconds(10));
  }

  /**
   * audit10 F-G: a folder watcher's settings file another user owns, moved into config/, is
   * refused; with its values stripped it still made a FileInstall watcher with FileInstall's
   * defaults, {@code ./load} in the server's working directory, and the jar another user had put
   * there ran as the server's user. A refused watcher now watches nothing; and a bundle from any
   * folder but plugins/ (here one a root-owned watcher setting names) does not resolve.
   */
  @Test
  void aRefusedFolderWatcherSettingWatchesNothingAndNoBundleLoadsFromElsewhere() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to give a file to another user");
      throw new AssertionError("needs root under CI");
    }
    server.close();
    Path cwd = Files.createDirectories(tmp.resolve("cwd"));
    Files.copy(
        TestBundles.slow(bundles, "1.0.0"),
        Files.createDirectories(cwd.resolve("load")).resolve("slow.jar"));
    server =
        Granule.Server.start(
            tmp.resolve("data"),
            List.of("-Dgranule.plugin.drain.seconds=" + DRAIN_SECONDS),
            java.util.Map.of(),
            "127.0.0.1:0",
            cwd);
    api = new Api(server.url);
    Path staged = tmp.resolve("org.apache.felix.fileinstall-extra.cfg");
    Files.writeString(staged, "felix.fileinstall.poll = 200\n");
    Files.setAttribute(staged, "unix:uid", 65534);
    Files.move(staged, server.data.resolve("config").resolve(staged.getFileName()));
    Thread.sleep(4000);
    assertThat(api.plugin(TestBundles.SLOW)).as("nothing installed from ./load").isEmpty();

    // root's own watcher setting, naming another folder: its jar is installed, and refused
    Path elsewhere = Files.createDirectories(tmp.resolve("elsewhere"));
    Files.copy(TestBundles.slow(bundles, "2.0.0"), elsewhere.resolve("slow.jar"));
    Files.writeString(
        server.data.resolve("config").resolve("org.apache.felix.fileinstall-other.cfg"),
        "felix.fileinstall.dir = " + elsewhere + "\nfelix.fileinstall.poll = 200\n");
    api.await(
        TestBundles.SLOW,
        p -> p.isPresent() && p.get().get("state").asText().equals("FAILED"),
        Duration.ofSeconds(10));
    assertThat(api.plugin(TestBundles.SLOW).orElseThrow().get("failure").asText())
        .contains("refused")
        .contains("plugins load from there only");
  }

  @Test
  void brokenBundlesAreListedAsFailedWithTheReasonAndTheServerKeepsServing() throws Exception {
    TestBundles.deploy(TestBundles.broken(bundles), server.plugins(), "broken.jar");
    TestBundles.deploy(TestBundles.failing(bundles), server.plugins(), "failing.jar");

    api.await(
        TestBundles.BROKEN,
        p -> p.isPresent() && p.get().get("state").asText().equals("FAILED"),
        Duration.ofSeconds(10));
    String reason = api.plugin(TestBundles.BROKEN).orElseThrow().get("failure").asText();
    assertThat(reason).contains("missing requirement").contains("io.granule.itest.missing");

    api.await(
        TestBundles.FAILING,
        p -> p.isPresent() && p.get().get("state").asText().equals("FAILED"),
        Duration.ofSeconds(10));
    String failing = api.plugin(TestBundles.FAILING).orElseThrow().get("failure").asText();
    assertThat(failing).contains("boom: this test plugin always fails to activate");

    assertThat(api.get("/api/version").status()).isEqualTo(200);
    assertThat(api.plugin("io.granule.plugin.vmdisk").orElseThrow().get("state").asText())
        .isEqualTo("ACTIVE");
    Granule.Result r = Granule.run(tmp, "plugins", "--server", server.url.toString());
    assertThat(r.out()).contains("failure: unresolved: missing requirement");

    Files.delete(server.plugins().resolve("broken.jar"));
    api.await(TestBundles.BROKEN, java.util.Optional::isEmpty, Duration.ofSeconds(10));
  }

  @Test
  void operationInProgressFinishesOnTheVersionItStartedWith() throws Exception {
    TestBundles.deploy(TestBundles.slow(bundles, "1.0.0"), server.plugins(), "slow.jar");
    api.await(TestBundles.SLOW, p -> active(p, "1.0.0"), Duration.ofSeconds(10));
    Path image = slowImage("finishes.img", 2_000);

    CompletableFuture<Api.Response> op = api.getAsync("/api/images/info?path=" + image);
    awaitFile(Path.of(image + ".started"));
    TestBundles.deploy(TestBundles.slow(bundles, "2.0.0"), server.plugins(), "slow.jar");

    Api.Response r = op.get(60, TimeUnit.SECONDS);
    assertThat(r.status()).as(r.body().toString()).isEqualTo(200);
    assertThat(r.body().get("plugin").asText()).isEqualTo(TestBundles.SLOW + " 1.0.0");
    assertThat(r.body().get("allocatedBytes").asLong()).isEqualTo(1 << 19);
    api.await(TestBundles.SLOW, p -> active(p, "2.0.0"), Duration.ofSeconds(10));

    // The next operation runs on the new version.
    Path again = slowImage("again.img", 0);
    Api.Response r2 = api.get("/api/images/info?path=" + again);
    assertThat(r2.body().get("plugin").asText()).isEqualTo(TestBundles.SLOW + " 2.0.0");
  }

  @Test
  void operationOutlivingTheDrainTimeoutFailsCleanlyNamingTheUpdate() throws Exception {
    TestBundles.deploy(TestBundles.slow(bundles, "1.0.0"), server.plugins(), "slow.jar");
    api.await(TestBundles.SLOW, p -> active(p, "1.0.0"), Duration.ofSeconds(10));
    Path image = slowImage("slow.img", (DRAIN_SECONDS + 4) * 1000L);

    CompletableFuture<Api.Response> op = api.getAsync("/api/images/info?path=" + image);
    awaitFile(Path.of(image + ".started"));
    Files.delete(server.plugins().resolve("slow.jar"));

    Api.Response r = op.get(60, TimeUnit.SECONDS);
    assertThat(r.status()).isEqualTo(409);
    assertThat(r.body().get("error").asText())
        .contains("plugin " + TestBundles.SLOW + " 1.0.0")
        .contains("was updated or removed while this operation used it")
        .contains("run it again");
    api.await(TestBundles.SLOW, java.util.Optional::isEmpty, Duration.ofSeconds(10));
    assertThat(api.get("/api/version").status()).isEqualTo(200);
  }

  @Test
  void configurationFilesCreateOnePluginInstanceEach() throws Exception {
    TestBundles.deploy(TestBundles.configured(bundles), server.plugins(), "configured.jar");
    api.await(
        TestBundles.CONFIGURED,
        p -> p.isPresent() && p.get().get("state").asText().equals("ACTIVE"),
        Duration.ofSeconds(10));
    Path config = server.data.resolve("config");
    Files.writeString(config.resolve("io.granule.itest.configured-alpha.cfg"), "name = alpha\n");
    Files.writeString(config.resolve("io.granule.itest.configured-beta.cfg"), "name = beta\n");
    api.await(
        TestBundles.CONFIGURED,
        p ->
            p.isPresent()
                && p.get().get("services").toString().contains("\"alpha\"")
                && p.get().get("services").toString().contains("\"beta\""),
        Duration.ofSeconds(10));

    Files.delete(config.resolve("io.granule.itest.configured-alpha.cfg"));
    api.await(
        TestBundles.CONFIGURED,
        p ->
            p.isPresent()
                && !p.get().get("services").toString().contains("\"alpha\"")
                && p.get().get("services").toString().contains("\"beta\""),
        Duration.ofSeconds(10));
  }

  private Path slowImage(String name, long delayMs) throws Exception {
    return slowImage(name, 1 << 20, delayMs, 0);
  }

  private Path slowImage(String name, long size, long delayMs, long readDelayMs) throws Exception {
    ByteBuffer b = ByteBuffer.allocate(32);
    b.put("SLOWTEST".getBytes(StandardCharsets.US_ASCII))
        .putLong(size)
        .putLong(delayMs)
        .putLong(readDelayMs);
    Path p = tmp.resolve(name);
    Files.write(p, b.array());
    return p;
  }

  @Test
  void backupInProgressFinishesOnTheOldVersionAndItsSnapshotRestores() throws Exception {
    TestBundles.deploy(TestBundles.slow(bundles, "1.0.0"), server.plugins(), "slow.jar");
    api.await(TestBundles.SLOW, p -> active(p, "1.0.0"), Duration.ofSeconds(10));
    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    // 8 MiB allocated, read in 1 MiB chunks at 200 ms each: about 1.6 s, under the drain time
    Path image = slowImage("vm.slow", 16 << 20, 0, 200);

    JsonNode job = startBackup(repo, image);
    awaitProgress(job.get("id").asText());
    TestBundles.deploy(TestBundles.slow(bundles, "2.0.0"), server.plugins(), "slow.jar");

    JsonNode done = api.awaitJob(job.get("id").asText());
    assertThat(done.get("state").asText()).as(done.toString()).isEqualTo("SUCCEEDED");
    api.await(TestBundles.SLOW, p -> active(p, "2.0.0"), Duration.ofSeconds(10));

    // The snapshot is whole: it restores to exactly what the v1 plugin read.
    Granule.Result r = Granule.run(tmp, "snapshots", "--repo", repo.toString(), "--json");
    assertThat(Api.JSON.readTree(r.out())).hasSize(1);
    Path out = tmp.resolve("restored.img");
    r =
        Granule.run(
            tmp, "restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    byte[] restored = Files.readAllBytes(out);
    assertThat(restored).hasSize(16 << 20);
    for (int pos : new int[] {0, 4096, (8 << 20) - 1, 8 << 20, (16 << 20) - 1}) {
      byte expected = pos < (8 << 20) ? (byte) ((long) pos * 31 >>> 12) : 0;
      assertThat(restored[pos]).as("byte at " + pos).isEqualTo(expected);
    }
  }

  @Test
  void backupOutlivingTheDrainTimeoutFailsAndLeavesNoSnapshot() throws Exception {
    TestBundles.deploy(TestBundles.slow(bundles, "1.0.0"), server.plugins(), "slow.jar");
    api.await(TestBundles.SLOW, p -> active(p, "1.0.0"), Duration.ofSeconds(10));
    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    // 8 reads of 1.5 s: about 12 s, well past the 4 s drain time
    Path image = slowImage("vm.slow", 16 << 20, 0, 1500);

    JsonNode job = startBackup(repo, image);
    awaitProgress(job.get("id").asText());
    Files.delete(server.plugins().resolve("slow.jar"));

    JsonNode done = api.awaitJob(job.get("id").asText());
    assertThat(done.get("state").asText()).as(done.toString()).isEqualTo("FAILED");
    assertThat(done.get("exitCode").asInt()).isEqualTo(10);
    assertThat(done.get("error").asText())
        .contains("plugin " + TestBundles.SLOW + " 1.0.0")
        .contains("was updated or removed while this operation used it");

    Granule.Result r = Granule.run(tmp, "snapshots", "--repo", repo.toString());
    assertThat(r.out()).contains("no snapshots");
    r = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
  }

  private JsonNode startBackup(Path repo, Path image) throws Exception {
    String body =
        Api.JSON.writeValueAsString(
            java.util.Map.of(
                "repo", repo.toString(),
                "disks", List.of(java.util.Map.of("name", "vm", "path", image.toString()))));
    Api.Response r = api.post("/api/backups", body);
    assertThat(r.status()).as(r.body().toString()).isEqualTo(202);
    return r.body();
  }

  private void awaitProgress(String id) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      JsonNode j = api.get("/api/jobs/" + id).body();
      JsonNode p = j.get("progress");
      if (p != null && !p.isNull() && p.get("bytesRead").asLong() > 0) {
        return;
      }
      assertThat(j.get("state").asText()).isIn("QUEUED", "RUNNING");
      Thread.sleep(20);
    }
    throw new AssertionError("backup job " + id + " showed no progress in 30 s");
  }

  private static void awaitFile(Path p) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (!Files.exists(p)) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError(p + " did not appear: the operation did not start");
      }
      Thread.sleep(20);
    }
  }
}
