package io.granule.plugin.postgres.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Runs external programs (the PostgreSQL client and server binaries) with a time limit. */
final class Processes {
  private Processes() {}

  /** What a finished program did. */
  record Result(int exitCode, String stdout, String stderr) {
    boolean ok() {
      return exitCode == 0;
    }

    /** The last lines of stderr (or stdout), for an error message. */
    String tail() {
      String s = stderr.isBlank() ? stdout : stderr;
      s = s.strip();
      return s.length() > 2000 ? "…" + s.substring(s.length() - 2000) : s;
    }
  }

  /**
   * Runs {@code cmd}, feeding it {@code stdin} (or nothing), and waits at most {@code timeout}.
   * {@code env} adds to this process's environment; a null value removes the variable.
   *
   * @throws IOException if it cannot start or does not finish in time (it is then killed)
   */
  static Result run(
      List<String> cmd, Map<String, String> env, Path dir, String stdin, Duration timeout)
      throws IOException {
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.environment().put("LC_ALL", "C");
    env.forEach(
        (k, v) -> {
          if (v == null) {
            pb.environment().remove(k);
          } else {
            pb.environment().put(k, v);
          }
        });
    if (dir != null) {
      pb.directory(dir.toFile());
    }
    Process p = pb.start();
    CompletableFuture<String> out = drain(p.getInputStream());
    CompletableFuture<String> err = drain(p.getErrorStream());
    try (var in = p.getOutputStream()) {
      if (stdin != null) {
        in.write(stdin.getBytes(StandardCharsets.UTF_8));
      }
    } catch (IOException e) {
      // The program may exit without reading its input; its exit status tells.
    }
    try {
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new IOException(
            "'" + String.join(" ", cmd) + "' did not finish within " + timeout + "; killed");
      }
      return new Result(p.exitValue(), out.join(), err.join());
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while running " + cmd.get(0), e);
    }
  }

  // One thread per stream: the common pool may have a single thread on a small machine, and a
  // program blocked on a full stderr pipe would then never finish.
  private static CompletableFuture<String> drain(InputStream in) {
    CompletableFuture<String> f = new CompletableFuture<>();
    Thread t =
        new Thread(
            () -> {
              try (in) {
                f.complete(new String(in.readAllBytes(), StandardCharsets.UTF_8));
              } catch (IOException e) {
                f.complete("");
              }
            },
            "granule-postgres-drain");
    t.setDaemon(true);
    t.start();
    return f;
  }
}
