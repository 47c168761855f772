package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code granule serve nbd} against real NBD clients: nbdinfo, nbdcopy, qemu-img, qemu-io and
 * nbdfuse (Debian packages libnbd-bin, qemu-utils, fuse3).
 */
class NbdServeTest {
  private static final Pattern SERVING =
      Pattern.compile(
          "serving snapshot (\\S+) disk (\\S+) \\((.+?)\\) at (nbd://\\S+) \\((read-only|writable)\\)");
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  /** A running {@code granule serve nbd}; closing sends SIGTERM and waits for the exit. */
  static final class Serve implements AutoCloseable {
    final Process process;
    final Path out;
    final Path err;

    /** Export name to URL, in the order printed. */
    final Map<String, String> urls = new LinkedHashMap<>();

    Serve(Path dir, String... args) throws Exception {
      out = Files.createTempFile(dir, "serve", ".out");
      err = Files.createTempFile(dir, "serve", ".err");
      List<String> a = new ArrayList<>(List.of("serve", "nbd"));
      a.addAll(List.of(args));
      process =
          Granule.command(List.of(), a.toArray(String[]::new))
              .directory(dir.toFile())
              .redirectOutput(out.toFile())
              .redirectError(err.toFile())
              .start();
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (System.nanoTime() < deadline) {
        String text = Files.readString(out, StandardCharsets.UTF_8);
        Matcher m = SERVING.matcher(text);
        urls.clear();
        while (m.find()) {
          String url = m.group(4);
          urls.put(url.substring(url.lastIndexOf('/') + 1), url);
        }
        // The default export (empty name) is printed last.
        if (urls.containsKey("")) {
          return;
        }
        if (!process.isAlive()) {
          throw new AssertionError(
              "granule serve nbd exited with "
                  + process.exitValue()
                  + ": "
                  + Files.readString(err, StandardCharsets.UTF_8));
        }
        Thread.sleep(50);
      }
      process.destroyForcibly();
      throw new AssertionError("granule serve nbd printed no URL in 30 s");
    }

    String url(String export) {
      return urls.get(export);
    }

    /** Stops with SIGTERM; returns standard output. */
    String stop() throws IOException, InterruptedException {
      process.destroy();
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        throw new AssertionError("granule serve nbd did not stop on SIGTERM within 30 s");
      }
      return Files.readString(out, StandardCharsets.UTF_8);
    }

    @Override
    public void close() throws IOException {
      if (process.isAlive()) {
        try {
          stop();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          process.destroyForcibly();
        }
      }
    }
  }

  /** The tool, or a skip (a failure under CI) naming the Debian package to install. */
  static void require(String tool, String debianPackage) {
    boolean present =
        Stream.of(System.getenv("PATH").split(":"))
            .anyMatch(d -> Files.isExecutable(Path.of(d, tool)));
    if (!present && "true".equals(System.getenv("CI"))) {
      throw new AssertionError(tool + " is missing: scripts/setup installs " + debianPackage);
    }
    Assumptions.assumeTrue(
        present, tool + " is not installed (Debian package " + debianPackage + ")");
  }

  record Run(int exitCode, String output) {}

  static Run run(Path dir, String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError(String.join(" ", cmd) + " did not finish in 120 s");
    }
    return new Run(p.exitValue(), out);
  }

  static String ok(Path dir, String... cmd) throws Exception {
    Run r = run(dir, cmd);
    assertThat(r.exitCode()).as(String.join(" ", cmd) + ": " + r.output()).isZero();
    return r.output();
  }

  /** A repository holding one backup of a 64 MiB image whose every fourth MiB is zero. */
  private Path backup(Path img) throws Exception {
    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result r =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", img.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    return repo;
  }

  @Test
  void nbdinfoNbdcopyAndQemuImgReadTheServedSnapshotByteIdentical() throws Exception {
    require("nbdinfo", "libnbd-bin");
    require("nbdcopy", "libnbd-bin");
    require("qemu-img", "qemu-utils");
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 64, 7);
    Path repo = backup(img);
    try (Serve s = new Serve(tmp, "latest", "--repo", repo.toString(), "--listen", "127.0.0.1:0")) {
      assertThat(s.urls.keySet()).containsExactly("vm.img", "");
      String info = ok(tmp, "nbdinfo", s.url("vm.img"));
      assertThat(info).contains("export-size: " + 64L * MIB).contains("is_read_only: true");
      assertThat(info).contains("base:allocation");

      // Every fourth MiB of the image is zero: the map alternates 1 MiB hole, 3 MiB data.
      String map = ok(tmp, "nbdinfo", "--map", s.url(""));
      List<String> expected = new ArrayList<>();
      for (int i = 0; i < 64; i += 4) {
        expected.add(
            String.format(java.util.Locale.ROOT, "%d %d 3 hole,zero", (long) i * MIB, MIB));
        expected.add(
            String.format(java.util.Locale.ROOT, "%d %d 0 data", (long) (i + 1) * MIB, 3 * MIB));
      }
      assertThat(map.lines().map(l -> l.trim().replaceAll("\\s+", " ")).toList())
          .containsExactlyElementsOf(expected);

      String sha = RepositoryCliTest.sha256(img);
      ok(tmp, "nbdcopy", s.url("vm.img"), tmp.resolve("copy.img").toString());
      assertThat(RepositoryCliTest.sha256(tmp.resolve("copy.img"))).isEqualTo(sha);
      ok(tmp, "qemu-img", "convert", "-f", "raw", s.url("vm.img"), "-O", "raw", "conv.img");
      assertThat(RepositoryCliTest.sha256(tmp.resolve("conv.img"))).isEqualTo(sha);

      // Two clients at once, each with several connections.
      Process a =
          new ProcessBuilder("nbdcopy", s.url(""), tmp.resolve("a.img").toString())
              .redirectErrorStream(true)
              .start();
      Process b =
          new ProcessBuilder(
                  "qemu-img",
                  "convert",
                  "-f",
                  "raw",
                  s.url("vm.img"),
                  "-O",
                  "raw",
                  tmp.resolve("b.img").toString())
              .redirectErrorStream(true)
              .start();
      assertThat(a.waitFor(120, TimeUnit.SECONDS)).isTrue();
      assertThat(b.waitFor(120, TimeUnit.SECONDS)).isTrue();
      assertThat(a.exitValue()).isZero();
      assertThat(b.exitValue()).isZero();
      assertThat(RepositoryCliTest.sha256(tmp.resolve("a.img"))).isEqualTo(sha);
      assertThat(RepositoryCliTest.sha256(tmp.resolve("b.img"))).isEqualTo(sha);

      // Read-only: a write is refused and nothing changes.
      require("qemu-io", "qemu-utils");
      Run w = run(tmp, "qemu-io", "-f", "raw", "-c", "write -P 0xab 0 64k", s.url(""));
      assertThat(w.exitCode()).isNotZero();
      assertThat(w.output()).contains("Permission denied");
      String stopped = s.stop();
      assertThat(stopped)
          .containsPattern("stopped serving snapshot \\S+: \\d+ chunks \\(.+\\) fetched");
    }
  }

  @Test
  void writableKeepsWritesInTheOverlayAndNeverInTheRepository() throws Exception {
    require("qemu-io", "qemu-utils");
    require("nbdcopy", "libnbd-bin");
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 16, 11);
    String sha = RepositoryCliTest.sha256(img);
    Path repo = backup(img);
    Path overlays = tmp.resolve("overlays");
    byte[] expected = Files.readAllBytes(img);
    java.util.Arrays.fill(expected, 0, 64 * 1024, (byte) 0xab);
    for (int round = 0; round < 2; round++) {
      try (Serve s =
          new Serve(
              tmp,
              "latest:vm.img",
              "--repo",
              repo.toString(),
              "--listen",
              "127.0.0.1:0",
              "--overlay",
              overlays.toString())) {
        if (round == 0) {
          ok(tmp, "qemu-io", "-f", "raw", "-c", "write -P 0xab 0 64k", s.url("vm.img"));
        }
        Path copy = tmp.resolve("written" + round + ".img");
        ok(tmp, "nbdcopy", s.url(""), copy.toString());
        assertThat(Files.readAllBytes(copy))
            .as("round %d: the write is visible", round)
            .isEqualTo(expected);
        assertThat(s.stop()).contains("overlays kept in " + overlays);
      }
    }
    // Without --overlay the write is gone after exit.
    try (Serve s =
        new Serve(
            tmp, "latest", "--repo", repo.toString(), "--listen", "127.0.0.1:0", "--writable")) {
      ok(tmp, "qemu-io", "-f", "raw", "-c", "write -P 0xcd 1m 4k", s.url(""));
      s.stop();
    }
    try (Serve s = new Serve(tmp, "latest", "--repo", repo.toString(), "--listen", "127.0.0.1:0")) {
      ok(tmp, "nbdcopy", s.url(""), tmp.resolve("fresh.img").toString());
      assertThat(RepositoryCliTest.sha256(tmp.resolve("fresh.img"))).isEqualTo(sha);
    }
    Granule.Result v = Granule.run(tmp, "verify", "--repo", repo.toString(), "--read-data");
    assertThat(v.exitCode()).as(v.out() + v.err()).isZero();
    Granule.Result r =
        Granule.run(
            tmp, "restore", "disk", "latest", "--repo", repo.toString(), "--to", "restored.img");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(RepositoryCliTest.sha256(tmp.resolve("restored.img"))).isEqualTo(sha);
  }

  /**
   * SIGTERM stopped the framework while the command still closed its repository: about one stop in
   * six printed a NoClassDefFoundError (the index's Unmapper, or a picocli class, loaded first
   * after the bundles' class loaders were gone). The launcher now lets the command end first.
   * Several stops, each with its report and nothing thrown (a race: a broken build fails here most
   * of the time, not always).
   */
  @Test
  void sigtermStopsCleanlyEveryTime() throws Exception {
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 8, 3);
    Path repo = backup(img);
    for (int i = 0; i < 6; i++) {
      Serve s = new Serve(tmp, "latest", "--repo", repo.toString(), "--listen", "127.0.0.1:0");
      String out = s.stop();
      String err = Files.readString(s.err, StandardCharsets.UTF_8);
      assertThat(s.process.exitValue()).as(err).isEqualTo(143);
      assertThat(out).contains("stopped serving snapshot");
      assertThat(err).as("stop %d", i).doesNotContain("Exception").doesNotContain("Error");
    }
  }

  @Test
  void errorsMapToTheDocumentedExitCodes() throws Exception {
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 2, 3);
    Path repo = backup(img);
    Granule.Result r = Granule.run(tmp, "serve", "nbd", "0123456789ab", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(4);
    r = Granule.run(tmp, "serve", "nbd", "latest:sdz", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(4);
    assertThat(r.err()).contains("has no disk 'sdz'");
    r = Granule.run(tmp, "serve", "nbd", "latest", "--repo", tmp.resolve("nowhere").toString());
    assertThat(r.exitCode()).as(r.err()).isEqualTo(3);
    try (ServerSocket busy = new ServerSocket()) {
      busy.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      r =
          Granule.run(
              tmp,
              "serve",
              "nbd",
              "latest",
              "--repo",
              repo.toString(),
              "--listen",
              "127.0.0.1:" + busy.getLocalPort());
      assertThat(r.exitCode()).as(r.err()).isEqualTo(12);
      assertThat(r.err()).contains("unable to listen on 127.0.0.1:" + busy.getLocalPort());
    }
    r = Granule.run(tmp, "serve", "nbd", "latest", "--repo", repo.toString(), "--listen", "nope");
    assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
  }

  @Test
  void nbdfuseAndALoopMountServeTheFilesOfABackedUpExt4Image() throws Exception {
    require("nbdfuse", "libnbd-bin");
    require("fusermount3", "fuse3");
    require("mkfs.ext4", "e2fsprogs");
    Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")), "mount -o loop needs root");
    Assumptions.assumeTrue(Files.exists(Path.of("/dev/fuse")), "no /dev/fuse");
    long seed = new Random().nextLong();
    Random rnd = new Random(seed);
    Path tree = tmp.resolve("tree");
    Files.createDirectories(tree.resolve("etc/app"));
    Map<String, byte[]> files = new LinkedHashMap<>();
    for (int i = 0; i < 20; i++) {
      byte[] data = new byte[rnd.nextInt(300_000)];
      rnd.nextBytes(data);
      String name = (i % 2 == 0 ? "etc/app/" : "") + "file" + i + ".bin";
      files.put(name, data);
      Files.write(tree.resolve(name), data);
    }
    Path img = tmp.resolve("fs.img");
    ok(tmp, "mkfs.ext4", "-q", "-F", "-d", tree.toString(), img.toString(), "32M");
    Path repo = backup(img);
    Path fuse = Files.createDirectories(tmp.resolve("fuse"));
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));
    try (Serve s = new Serve(tmp, "latest", "--repo", repo.toString(), "--listen", "127.0.0.1:0")) {
      Path pidfile = tmp.resolve("nbdfuse.pid");
      Process nbdfuse =
          new ProcessBuilder("nbdfuse", "-r", "-P", pidfile.toString(), fuse.toString(), s.url(""))
              .redirectErrorStream(true)
              .redirectOutput(tmp.resolve("nbdfuse.log").toFile())
              .start();
      try {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!Files.exists(pidfile) && nbdfuse.isAlive() && System.nanoTime() < deadline) {
          Thread.sleep(50);
        }
        assertThat(Files.exists(pidfile))
            .as("nbdfuse is ready: " + Files.readString(tmp.resolve("nbdfuse.log")))
            .isTrue();
        ok(tmp, "mount", "-o", "loop,ro", fuse.resolve("nbd").toString(), mnt.toString());
        try {
          for (Map.Entry<String, byte[]> f : files.entrySet()) {
            assertThat(Files.readAllBytes(mnt.resolve(f.getKey())))
                .as("seed %d: %s", seed, f.getKey())
                .isEqualTo(f.getValue());
          }
        } finally {
          ok(tmp, "umount", mnt.toString());
        }
      } finally {
        run(tmp, "fusermount3", "-u", fuse.toString());
        if (!nbdfuse.waitFor(30, TimeUnit.SECONDS)) {
          nbdfuse.destroyForcibly();
        }
      }
    }
  }
}
