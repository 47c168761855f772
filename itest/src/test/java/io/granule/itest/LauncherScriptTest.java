package io.granule.itest;

import static io.granule.itest.RepositoryCliTest.sha256;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bin/granule}, as users run it: one-shot commands with the quick compiler (C1) only and
 * hashing and encryption through libcrypto (libgranule-native), a round trip of an encrypted
 * repository in that mode, and {@code GRANULE_JIT} choosing the compiler.
 */
class LauncherScriptTest {
  @TempDir Path tmp;

  private record Run(int exitCode, String out, String err) {}

  private Run launcher(Map<String, String> env, String... args) throws Exception {
    Path script = Path.of("../bin/granule").toAbsolutePath().normalize();
    List<String> cmd = new ArrayList<>(List.of(script.toString()));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile());
    pb.environment().put("GRANULE_JAR", Granule.jar().toAbsolutePath().toString());
    pb.environment().put("GRANULE_PASSWORD", Granule.PASSWORD);
    pb.environment().put("XDG_CACHE_HOME", tmp.resolve("cache").toString()); // CDS archives
    pb.environment().remove("GRANULE_JAVA_OPTS");
    pb.environment().remove("GRANULE_JIT");
    pb.environment().putAll(env);
    Path out = tmp.resolve("out.txt");
    Path err = tmp.resolve("err.txt");
    Process p = pb.redirectOutput(out.toFile()).redirectError(err.toFile()).start();
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("bin/granule " + String.join(" ", args) + " did not finish");
    }
    return new Run(
        p.exitValue(),
        Files.readString(out, StandardCharsets.UTF_8),
        Files.readString(err, StandardCharsets.UTF_8));
  }

  private static boolean libcrypto3() {
    for (String d :
        List.of("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64")) {
      if (Files.exists(Path.of(d, "libcrypto.so.3"))) {
        return true;
      }
    }
    return false;
  }

  private static void requireNativeCrypto() {
    boolean here =
        System.getProperty("os.arch").equals("amd64")
            && System.getProperty("os.name").equals("Linux")
            && libcrypto3();
    if (!here && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("CI machines have libcrypto.so.3 on Linux x86-64 (scripts/setup)");
    }
    Assumptions.assumeTrue(here, "needs libcrypto.so.3 on Linux x86-64");
  }

  @Test
  void oneShotCommandsRunWithTheQuickCompilerAndLibcrypto() throws Exception {
    requireNativeCrypto();
    Run r = launcher(Map.of(), "--version");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out())
        .contains("JIT: quick (C1 only)")
        .containsPattern("Crypto: OpenSSL 3\\.\\S+ .*through libgranule-native")
        .contains("BLAKE3: libgranule-native");
    // a backup to S3 keeps the full JIT: the AWS SDK hashes uploads with the JDK's digests
    r = launcher(Map.of(), "backup", "--repo", "s3:http://127.0.0.1:9/bucket", "--version");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("JIT: full").doesNotContain("quick");
    r = launcher(Map.of("GRANULE_REPO", "s3:http://127.0.0.1:9/bucket"), "prune", "--version");
    assertThat(r.out()).contains("JIT: full");
    r = launcher(Map.of(), "backup", "--repo=" + tmp.resolve("local"), "--version");
    assertThat(r.out()).contains("JIT: quick");
    r = launcher(Map.of(), "restore", "disk", "--repo=s3:http://127.0.0.1:9/b", "--version");
    assertThat(r.out()).contains("JIT: quick");

    r = launcher(Map.of("GRANULE_JIT", "full"), "--version");
    assertThat(r.out()).contains("JIT: full").contains("through libgranule-native");

    // a compiler option of the user's wins over the launcher's choice
    r = launcher(Map.of("GRANULE_JAVA_OPTS", "-XX:-TieredCompilation"), "--version");
    assertThat(r.out()).contains("JIT: full");

    // the JDK's crypto under C1 would crawl: the user is told what to do
    r =
        launcher(
            Map.of("GRANULE_JAVA_OPTS", "-Dgranule.crypto.native=false"),
            "init",
            "--repo",
            tmp.resolve("jdk-repo").toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.err()).contains("native crypto unavailable").contains("GRANULE_JIT=full");
  }

  @Test
  void encryptedRoundTripInTheLaunchersMode() throws Exception {
    requireNativeCrypto();
    Path repo = tmp.resolve("repo");
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 40, 7);
    Run r = launcher(Map.of(), "init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    r = launcher(Map.of(), "backup", "--repo", repo.toString(), "--disk", "vm=" + img);
    assertThat(r.exitCode()).as(r.err()).isZero();
    r = launcher(Map.of(), "verify", "--repo", repo.toString(), "--read-data");
    assertThat(r.exitCode()).as(r.out() + r.err()).isZero();
    Path back = tmp.resolve("back.img");
    r =
        launcher(
            Map.of(),
            "restore",
            "disk",
            "latest:vm",
            "--repo",
            repo.toString(),
            "--to",
            back.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(back)).isEqualTo(sha256(img));
    // the same repository read by the JDK's crypto, under the full JIT: the same bytes
    Path again = tmp.resolve("again.img");
    r =
        launcher(
            Map.of("GRANULE_JAVA_OPTS", "-Dgranule.crypto.native=false", "GRANULE_JIT", "full"),
            "restore",
            "disk",
            "latest:vm",
            "--repo",
            repo.toString(),
            "--to",
            again.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(again)).isEqualTo(sha256(img));
  }

  @Test
  void aCommandPrunesTheCacheOfWhatWasNotUsedForAMonth() throws Exception {
    Path cache = tmp.resolve("cache/granule");
    Instant monthAgo = Instant.now().minus(Duration.ofDays(40));
    Run r = launcher(Map.of(), "--version"); // writes this command's CDS archive
    assertThat(r.exitCode()).as(r.err()).isZero();
    List<Path> ours;
    try (Stream<Path> s = Files.list(cache.resolve("cds"))) {
      ours = s.filter(p -> p.toString().endsWith(".jsa")).toList();
    }
    assertThat(ours).as("the archive of --version").hasSize(1);
    // an archive unused for 40 days, of a jar that is gone; the repository caches of a repository
    // unused for 40 days and of one used today; the archive in use, last marked 40 days ago
    Path gone = Files.writeString(cache.resolve("cds/granule-1-2-3-4-5-6-7-8-9-none.jsa"), "x");
    Files.setLastModifiedTime(gone, FileTime.from(monthAgo));
    Path oldRepo = Files.createDirectories(cache.resolve("a".repeat(64)).resolve("catalog"));
    Files.setLastModifiedTime(
        Files.createFile(oldRepo.resolveSibling(".used")), FileTime.from(monthAgo));
    Path liveRepo = Files.createDirectories(cache.resolve("b".repeat(64)));
    Files.createFile(liveRepo.resolve(".used"));
    Files.setLastModifiedTime(ours.get(0), FileTime.from(monthAgo));
    // the first run pruned (nothing to do) and set the day's mark: move it back a day
    Files.setLastModifiedTime(
        cache.resolve(".pruned"), FileTime.from(Instant.now().minus(Duration.ofHours(25))));

    r = launcher(Map.of(), "--version");

    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(gone).doesNotExist();
    assertThat(oldRepo.getParent()).doesNotExist();
    assertThat(liveRepo).isDirectory();
    assertThat(ours.get(0)).exists();
    assertThat(Files.getLastModifiedTime(ours.get(0)).toInstant())
        .as("the archive that run mapped is marked used")
        .isAfter(Instant.now().minus(Duration.ofHours(1)));
  }

  /**
   * audit10 F-L: the class-data-sharing directory was made ({@code mkdir -p}, following links)
   * before its path was checked: with a cache directory another user owns, his link made this
   * user's {@code cds} directory where he chose. Nothing is made there now (the Java side refuses
   * the cache as before).
   */
  @Test
  void noCdsDirectoryIsMadeThroughAnotherUsersCacheDirectory() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to give a directory to another user");
      throw new AssertionError("needs root under CI");
    }
    Path xdg = Files.createDirectories(tmp.resolve("xdg"));
    Path chosen = Files.createDirectories(tmp.resolve("chosen"));
    Files.createSymbolicLink(xdg.resolve("granule"), chosen);
    Files.setAttribute(xdg, "unix:uid", 65534);
    Run r = launcher(Map.of("XDG_CACHE_HOME", xdg.toString()), "--version");
    assertThat(r.exitCode()).as(r.err()).isEqualTo(70);
    assertThat(chosen.resolve("cds")).doesNotExist();
  }

  /**
   * audit K5: under umask 002 (a user private group's usual umask) the launcher made the cache's
   * parent directories and the runtime extracted its bundles group-writable, then refused them as
   * others' (exit 70, every command). What granule makes itself is now its user's alone.
   */
  @Test
  void underUmask002TheCacheGranuleMakesIsItsOwn() throws Exception {
    Path script = Path.of("../bin/granule").toAbsolutePath().normalize();
    Path xdg = tmp.resolve("fresh/cache"); // neither exists: the launcher makes both
    for (int i = 0; i < 2; i++) {
      ProcessBuilder pb =
          new ProcessBuilder(
                  "sh", "-c", "umask 002 && exec \"$0\" \"$@\"", script.toString(), "--version")
              .directory(tmp.toFile())
              .redirectErrorStream(true);
      pb.environment().put("GRANULE_JAR", Granule.jar().toAbsolutePath().toString());
      pb.environment().put("XDG_CACHE_HOME", xdg.toString());
      pb.environment().remove("GRANULE_JAVA_OPTS");
      Process p = pb.start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).as("run %d: %s", i, out).isZero();
      assertThat(out).as("run %d", i).startsWith("granule ").doesNotContain("refusing");
    }
    for (Path d : List.of(xdg, xdg.resolve("granule"))) {
      assertThat(
              java.nio.file.attribute.PosixFilePermissions.toString(
                  Files.getPosixFilePermissions(d)))
          .as(d.toString())
          .isEqualTo("rwx------");
    }
  }

  /**
   * Starts {@code bin/granule} with {@code args} (a long-running command), its output going to
   * {@code log}, and waits until {@code ready} shows there.
   */
  private Process startLauncher(Path log, String ready, String... args) throws Exception {
    Path script = Path.of("../bin/granule").toAbsolutePath().normalize();
    // SIGHUP, SIGINT and SIGTERM at their defaults, whatever this JVM inherited: under nohup
    // SIGHUP is ignored, a shell started so cannot trap it and java keeps it ignored, and the HUP
    // case could not pass (env execs the launcher: the same pid)
    List<String> cmd =
        new ArrayList<>(List.of("env", "--default-signal=HUP,INT,TERM", script.toString()));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile());
    pb.environment().put("GRANULE_JAR", Granule.jar().toAbsolutePath().toString());
    pb.environment().put("GRANULE_PASSWORD", Granule.PASSWORD);
    pb.environment().put("XDG_CACHE_HOME", tmp.resolve("cache").toString());
    pb.environment().remove("GRANULE_JAVA_OPTS");
    pb.environment().remove("GRANULE_CDS");
    Process p = pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
    while (!Files.readString(log, StandardCharsets.UTF_8).contains(ready)) {
      if (!p.isAlive() || System.nanoTime() > until) {
        p.destroyForcibly();
        throw new AssertionError(
            "bin/granule " + String.join(" ", args) + ": " + Files.readString(log));
      }
      Thread.sleep(100);
    }
    return p;
  }

  /** The java processes serving {@code repo} (their command line names it). */
  private static List<ProcessHandle> serving(Path repo) {
    return ProcessHandle.allProcesses()
        .filter(h -> h.info().commandLine().map(c -> c.contains(repo.toString())).orElse(false))
        .filter(h -> h.info().command().map(c -> c.endsWith("/java")).orElse(false))
        .toList();
  }

  /**
   * Stops the launcher of a long-running command (its pid, as a service manager or {@code kill $!}
   * would) with {@code signal}: java must stop too, and the launcher exit as java did. On a
   * command's first run the launcher runs java as a child (to publish the class-data-sharing
   * archive afterwards), and did not pass the signal on: {@code serve nbd} kept serving.
   */
  private void stopsJava(Path repo, String mode, String signal, int exitCode) throws Exception {
    Path log = tmp.resolve("serve-" + mode + "-" + signal + ".log");
    Process p =
        startLauncher(
            log,
            "nbd://",
            "serve",
            "nbd",
            "latest",
            "--repo",
            repo.toString(),
            "--listen",
            "127.0.0.1:0");
    try {
      List<ProcessHandle> java = serving(repo);
      assertThat(java).as("java serving, in %s mode", mode).hasSize(1);
      if (mode.equals("first-run")) {
        assertThat(java.get(0).pid()).as("java is the launcher's child").isNotEqualTo(p.pid());
        assertThat(java.get(0).parent().map(ProcessHandle::pid)).contains(p.pid());
      } else {
        assertThat(java.get(0).pid()).as("the launcher exec'd java").isEqualTo(p.pid());
      }
      Process kill = new ProcessBuilder("kill", "-s", signal, Long.toString(p.pid())).start();
      assertThat(kill.waitFor()).isZero();
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("the launcher ends").isTrue();
      assertThat(p.exitValue()).as(Files.readString(log)).isEqualTo(exitCode);
      if (signal.equals("KILL")) {
        // nothing waits for java's exit code: it stops as on SIGTERM (its shutdown hooks run)
        assertThat(java.get(0).onExit().get(30, TimeUnit.SECONDS).isAlive()).isFalse();
      }
      for (ProcessHandle h : java) {
        try {
          h.onExit().get(30, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException stillRunning) {
          // named by the assertion below
        }
      }
      assertThat(serving(repo)).as("java left running after %s in %s mode", signal, mode).isEmpty();
      assertThat(Files.readString(log)).contains("stopped serving snapshot");
    } finally {
      for (ProcessHandle h : serving(repo)) {
        h.destroyForcibly();
      }
      p.destroyForcibly();
    }
  }

  /**
   * A command's archive is published after a run that went through, exit code 5 (damage found)
   * included: a verify or repair of a damaged repository wrote a new archive on every run (audit
   * K7); not after a usage error, whose run loaded few classes.
   */
  @Test
  void anArchiveIsPublishedAfterExitCodeFiveNotAfterAUsageError() throws Exception {
    Path repo = backedUpRepository();
    Path pack;
    try (Stream<Path> s = Files.walk(repo.resolve("data"))) {
      pack = s.filter(Files::isRegularFile).findFirst().orElseThrow();
    }
    try (var ch =
        java.nio.channels.FileChannel.open(pack, java.nio.file.StandardOpenOption.WRITE)) {
      ch.write(java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}), 100);
    }
    Path cds = tmp.resolve("cache/granule/cds");
    Run r = launcher(Map.of(), "verify", "--repo", repo.toString(), "--no-such-option");
    assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
    assertThat(archives(cds, "-verify.jsa")).isEmpty();
    r = launcher(Map.of(), "verify", "--repo", repo.toString(), "--read-data");
    assertThat(r.exitCode()).as(r.out() + r.err()).isEqualTo(5);
    assertThat(archives(cds, "-verify.jsa")).hasSize(1);
  }

  /** A repository in the test's directory, with a snapshot of a small image. */
  private Path backedUpRepository() throws Exception {
    Path repo = tmp.resolve("repo");
    Path img = RepositoryCliTest.image(tmp.resolve("vm.img"), 4, 3);
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    assertThat(
            Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "vm=" + img).exitCode())
        .isZero();
    return repo;
  }

  /** The files in {@code dir} whose names end with {@code suffix}. */
  private static List<Path> archives(Path dir, String suffix) throws Exception {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(f -> f.getFileName().toString().endsWith(suffix)).toList();
    }
  }

  @Test
  void stoppingTheLauncherStopsJavaOnAFirstRunAndAfter() throws Exception {
    Path repo = backedUpRepository();
    Path cds = tmp.resolve("cache/granule/cds");
    // no archive of `serve` yet: the launcher runs java as a child to write one
    stopsJava(repo, "first-run", "TERM", 143);
    stopsJava(repo, "first-run", "INT", 130);
    stopsJava(repo, "first-run", "HUP", 129);
    // SIGKILL cannot be passed on: java sees its launcher gone and stops as on SIGTERM (audit K7:
    // it went on serving, holding its lock); the archive it wrote at exit is left under its
    // temporary name, which no one was left to publish or delete
    stopsJava(repo, "first-run", "KILL", 137);
    try (Stream<Path> s = Files.list(cds)) {
      assertThat(s.filter(f -> f.toString().contains("-serve.jsa.tmp.")).toList()).hasSize(1);
    }
    // a run that succeeds publishes the archive, and its dump deleted the killed one's leftover;
    // later runs exec java
    Run r = launcher(Map.of(), "serve", "nbd", "--help");
    assertThat(r.exitCode()).as(r.err()).isZero();
    try (Stream<Path> s = Files.list(cds)) {
      assertThat(s.map(f -> f.getFileName().toString()).filter(f -> f.contains("-serve.jsa")))
          .hasSize(1)
          .allMatch(f -> f.endsWith("-serve.jsa"));
    }
    stopsJava(repo, "later-run", "TERM", 143);
    stopsJava(repo, "later-run", "INT", 130);
  }
}
