package io.granule.itest;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs the real granule executable jar in a child process. */
final class Granule {
  private static final Pattern URL = Pattern.compile("listening on (http://\\S+/)");

  private Granule() {}

  static Path jar() {
    Path jar = Path.of(System.getProperty("granule.jar", "../runtime/target/granule.jar"));
    if (!Files.isRegularFile(jar)) {
      throw new IllegalStateException(jar + " is missing: build with ./mvnw package first");
    }
    return jar;
  }

  /**
   * The repository password every command gets in {@code GRANULE_PASSWORD}, so that tests exercise
   * the default, encrypted path (a test overrides it through the environment map).
   */
  static final String PASSWORD = "itest password";

  /**
   * The environment for a server that serves unencrypted repositories: no password (a password
   * given for an unencrypted repository is refused, see {@link #command}).
   */
  static final java.util.Map<String, String> NO_PASSWORD =
      java.util.Collections.singletonMap("GRANULE_PASSWORD", null);

  /**
   * Repositories made with {@code --insecure-no-encryption}: commands naming one get no {@code
   * GRANULE_PASSWORD}, as a password given for an unencrypted repository is refused (it may be an
   * encrypted one whose config was rewritten).
   */
  private static final java.util.Set<String> UNENCRYPTED =
      java.util.concurrent.ConcurrentHashMap.newKeySet();

  static ProcessBuilder command(List<String> jvmArgs, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(jvmArgs);
    cmd.add("-jar");
    cmd.add(jar().toString());
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd);
    List<String> a = List.of(args);
    int repo = a.indexOf("--repo");
    String named = repo >= 0 && repo + 1 < a.size() ? a.get(repo + 1) : null;
    if (named != null && a.contains("--insecure-no-encryption")) {
      UNENCRYPTED.add(named);
    }
    if (named == null || !UNENCRYPTED.contains(named)) {
      pb.environment().put("GRANULE_PASSWORD", PASSWORD);
    }
    return pb;
  }

  /** Adds {@code env} to {@code pb}'s environment; a null value removes the variable. */
  static void withEnv(ProcessBuilder pb, java.util.Map<String, String> env) {
    env.forEach(
        (k, v) -> {
          if (v == null) {
            pb.environment().remove(k);
          } else {
            pb.environment().put(k, v);
          }
        });
  }

  /** The result of a one-shot command. */
  record Result(int exitCode, String out, String err) {}

  /** Runs a one-shot command and waits for it (at most 60 s). */
  static Result run(Path workDir, String... args) throws IOException, InterruptedException {
    return run(workDir, java.util.Map.of(), args);
  }

  /** Runs a one-shot command with extra environment variables (a null value removes one). */
  static Result run(Path workDir, java.util.Map<String, String> env, String... args)
      throws IOException, InterruptedException {
    return run(workDir, env, null, args);
  }

  /** Runs a one-shot command with extra environment variables and {@code stdin} as input. */
  static Result run(Path workDir, java.util.Map<String, String> env, Path stdin, String... args)
      throws IOException, InterruptedException {
    Path out = Files.createTempFile(workDir, "out", ".txt");
    Path err = Files.createTempFile(workDir, "err", ".txt");
    ProcessBuilder pb = command(List.of(), args);
    withEnv(pb, env);
    if (stdin != null) {
      pb.redirectInput(stdin.toFile());
    }
    Process p =
        pb.directory(workDir.toFile())
            .redirectOutput(out.toFile())
            .redirectError(err.toFile())
            .start();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("granule " + String.join(" ", args) + " did not finish in 60 s");
    }
    return new Result(
        p.exitValue(),
        Files.readString(out, StandardCharsets.UTF_8),
        Files.readString(err, StandardCharsets.UTF_8));
  }

  /** A running {@code granule server}. */
  static final class Server implements AutoCloseable {
    final Process process;
    final URI url;
    final Path data;
    final Path log;

    private Server(Process process, URI url, Path data, Path log) {
      this.process = process;
      this.url = url;
      this.data = data;
      this.log = log;
    }

    static Server start(Path data, List<String> jvmArgs) throws Exception {
      return start(data, jvmArgs, java.util.Map.of());
    }

    /** Starts a server with extra environment variables. */
    static Server start(Path data, List<String> jvmArgs, java.util.Map<String, String> env)
        throws Exception {
      return start(data, jvmArgs, env, "127.0.0.1:0");
    }

    /** Starts a server listening on {@code listen}. */
    static Server start(
        Path data, List<String> jvmArgs, java.util.Map<String, String> env, String listen)
        throws Exception {
      return start(data, jvmArgs, env, listen, null);
    }

    /** Starts a server listening on {@code listen}, in working directory {@code workDir}. */
    static Server start(
        Path data,
        List<String> jvmArgs,
        java.util.Map<String, String> env,
        String listen,
        Path workDir)
        throws Exception {
      Files.createDirectories(data);
      Path log = data.resolve("server-console.txt");
      ProcessBuilder pb = command(jvmArgs, "server", "--data", data.toString(), "--listen", listen);
      if (workDir != null) {
        pb.directory(workDir.toFile());
      }
      withEnv(pb, env);
      Process p = pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (System.nanoTime() < deadline) {
        Matcher m = URL.matcher(Files.readString(log));
        if (m.find()) {
          return new Server(p, URI.create(m.group(1)), data, log);
        }
        if (!p.isAlive()) {
          throw new AssertionError("server exited: " + Files.readString(log));
        }
        Thread.sleep(50);
      }
      p.destroyForcibly();
      throw new AssertionError("server printed no URL in 30 s: " + Files.readString(log));
    }

    Path plugins() {
      return data.resolve("plugins");
    }

    String console() throws IOException {
      return Files.readString(log);
    }

    @Override
    public void close() throws Exception {
      process.destroy();
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
      }
    }
  }
}
