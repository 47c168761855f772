package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The executable jar against a real S3 server (s3proxy on a free loopback port): proves the
 * embedded AWS SDK works inside the OSGi runtime, and an encrypted repository round-trips on S3.
 */
class S3CliTest {
  @TempDir Path tmp;
  private Process s3proxy;
  private int port;
  private Map<String, String> env;

  @BeforeEach
  void startS3proxy() throws Exception {
    Path jar = Path.of(System.getProperty("granule.s3proxy.jar", "target/s3proxy/s3proxy.jar"));
    if (!Files.isRegularFile(jar)) {
      String why = "s3proxy is missing at " + jar + ": run the Maven build";
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError(why);
      }
      Assumptions.assumeTrue(false, why);
    }
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    Path data = tmp.resolve("s3data");
    // with the filesystem provider a bucket is a directory
    Files.createDirectories(data.resolve("granule-itest"));
    Path props = tmp.resolve("s3proxy.properties");
    Files.writeString(
        props,
        String.join(
            "\n",
            "s3proxy.endpoint=http://127.0.0.1:" + port,
            "s3proxy.authorization=aws-v2-or-v4",
            "s3proxy.identity=itest-access",
            "s3proxy.credential=itest-secret",
            "jclouds.provider=filesystem-nio2",
            "jclouds.identity=itest-access",
            "jclouds.credential=itest-secret",
            "jclouds.filesystem.basedir=" + data,
            ""),
        StandardCharsets.UTF_8);
    s3proxy =
        new ProcessBuilder(
                List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m",
                    "-jar",
                    jar.toAbsolutePath().toString(),
                    "--properties",
                    props.toString()))
            .redirectErrorStream(true)
            .redirectOutput(tmp.resolve("s3proxy.log").toFile())
            .start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      assertThat(s3proxy.isAlive()).as("s3proxy is running").isTrue();
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 500);
        break;
      } catch (IOException e) {
        assertThat(System.nanoTime()).as("s3proxy listens within 60 s").isLessThan(deadline);
        Thread.sleep(100);
      }
    }
    env =
        Map.of(
            "AWS_ACCESS_KEY_ID", "itest-access",
            "AWS_SECRET_ACCESS_KEY", "itest-secret",
            "XDG_CACHE_HOME", tmp.resolve("cache").toString());
  }

  @AfterEach
  void stopS3proxy() throws Exception {
    if (s3proxy != null) {
      s3proxy.destroy();
      if (!s3proxy.waitFor(10, TimeUnit.SECONDS)) {
        s3proxy.destroyForcibly();
      }
    }
  }

  Granule.Result granule(String... args) throws Exception {
    return Granule.run(tmp, env, args);
  }

  @Test
  void initBackupRestoreVerifyOnS3() throws Exception {
    String repo = "s3:http://127.0.0.1:" + port + "/granule-itest/hosts/web1";
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 12, 7);
    Granule.Result r = granule("init", "--repo", repo);
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).startsWith("created encrypted repository").contains(repo);

    r = granule("backup", "--repo", repo, "--disk", img.toString(), "--host", "web1");
    assertThat(r.exitCode()).as(r.err()).isZero();
    r = granule("snapshots", "--repo", repo);
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("web1");

    Path out = tmp.resolve("out.img");
    r = granule("restore", "disk", "latest", "--repo", repo, "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(RepositoryCliTest.sha256(out)).isEqualTo(RepositoryCliTest.sha256(img));

    r = granule("verify", "--repo", repo, "--read-data");
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();

    // the objects are where the layout says, and say nothing in plain text
    Path root = tmp.resolve("s3data/granule-itest/hosts/web1");
    assertThat(root.resolve("config")).isRegularFile();
    try (Stream<Path> keys = Files.list(root.resolve("keys"))) {
      assertThat(keys.count()).isEqualTo(1);
    }
    // snapshots and indexes are cached locally under the repository id
    try (Stream<Path> cached = Files.walk(tmp.resolve("cache/granule"))) {
      assertThat(cached.map(p -> p.getParent().getFileName() + "/" + p.getFileName()))
          .anyMatch(s -> s.startsWith("snapshots/"));
    }

    Granule.Result wrong =
        Granule.run(
            tmp,
            Map.of(
                "AWS_ACCESS_KEY_ID", "itest-access",
                "AWS_SECRET_ACCESS_KEY", "itest-secret",
                "GRANULE_PASSWORD", "not it"),
            "snapshots",
            "--repo",
            repo);
    assertThat(wrong.exitCode()).isEqualTo(8);
  }

  /**
   * audit Z-M1 on S3: the server damaged every index blob and cut a pack's trailer; this host's
   * metadata cache holds the only intact copies of the blobs that locate the pack's records. Verify
   * says so, a dry run says what it would put back, and repair puts them back and salvages the
   * pack: a host with no cache then restores every snapshot.
   */
  @Test
  void repairPutsBackWhatOnlyThisHostsCacheHoldsIntact() throws Exception {
    String repo = "s3:http://127.0.0.1:" + port + "/granule-itest/hosts/db1";
    Path a = RepositoryCliTest.image(tmp.resolve("a.img"), 12, 7);
    Path b = RepositoryCliTest.image(tmp.resolve("b.img"), 8, 9);
    assertThat(granule("init", "--repo", repo).exitCode()).isZero();
    for (Path img : List.of(a, b)) {
      Granule.Result r = granule("backup", "--repo", repo, "--disk", img.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
    }
    Granule.Result r = granule("snapshots", "--repo", repo, "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    List<String> ids = new java.util.ArrayList<>();
    java.util.regex.Matcher m =
        java.util.regex.Pattern.compile("\"id\"\\s*:\\s*\"([0-9a-f]+)\"").matcher(r.out());
    while (m.find()) {
      ids.add(m.group(1));
    }
    assertThat(ids).hasSize(2);
    for (String id : ids) { // this host caches the metadata it reads
      r =
          granule(
              "restore", "disk", id, "--repo", repo, "--to", tmp.resolve(id + ".img").toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(tmp.resolve(id + ".img")))
          .isIn(RepositoryCliTest.sha256(a), RepositoryCliTest.sha256(b));
    }
    Path root = tmp.resolve("s3data/granule-itest/hosts/db1");
    List<Path> blobs;
    try (Stream<Path> s = Files.walk(root.resolve("index"))) {
      blobs = s.filter(Files::isRegularFile).toList();
    }
    assertThat(blobs).isNotEmpty();
    for (Path blob : blobs) {
      byte[] bytes = Files.readAllBytes(blob);
      bytes[bytes.length / 2] ^= 0x40;
      Files.write(blob, bytes);
    }
    Path pack;
    try (Stream<Path> s = Files.walk(root.resolve("data"))) {
      pack =
          s.filter(Files::isRegularFile)
              .max(java.util.Comparator.comparingLong(p -> p.toFile().length()))
              .orElseThrow();
    }
    byte[] bytes = Files.readAllBytes(pack);
    for (int i = bytes.length - 40; i < bytes.length; i++) {
      bytes[i] ^= 0x21; // its trailer's place and checksum: no record is located by the pack
    }
    Files.write(pack, bytes);

    r = granule("verify", "--repo", repo);
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(5);
    assertThat(r.out()).contains("run 'granule repair' on this host to put it back");
    r = granule("repair", "--repo", repo, "--dry-run", "--no-progress");
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(5);
    assertThat(r.out())
        .contains("would put back from this host's cache " + blobs.size() + " metadata blob")
        .contains("0 chunks lost");
    r = granule("repair", "--repo", repo, "--no-progress");
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
    assertThat(r.out())
        .contains("put back from this host's cache " + blobs.size() + " metadata blob")
        .contains("0 chunks lost");

    Map<String, String> otherHost =
        Map.of(
            "AWS_ACCESS_KEY_ID", "itest-access",
            "AWS_SECRET_ACCESS_KEY", "itest-secret",
            "XDG_CACHE_HOME", tmp.resolve("other-cache").toString());
    r = Granule.run(tmp, otherHost, "verify", "--repo", repo, "--read-data");
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
    for (int i = 0; i < ids.size(); i++) {
      Path out = tmp.resolve("other-" + i + ".img");
      r =
          Granule.run(
              tmp,
              otherHost,
              "restore",
              "disk",
              ids.get(i),
              "--repo",
              repo,
              "--to",
              out.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(RepositoryCliTest.sha256(out))
          .isEqualTo(RepositoryCliTest.sha256(tmp.resolve(ids.get(i) + ".img")));
    }
  }
}
