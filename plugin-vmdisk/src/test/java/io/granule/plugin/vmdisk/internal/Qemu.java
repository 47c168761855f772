package io.granule.plugin.vmdisk.internal;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Runs qemu-img and qemu-io (Debian package {@code qemu-utils}), the oracles of the reader tests.
 * Under CI a missing qemu-img fails the test; elsewhere it skips it.
 */
final class Qemu {
  private Qemu() {}

  /** Skips (or under CI fails) the calling test when qemu-img or qemu-io is missing. */
  static void assumeAvailable() {
    boolean present = onPath("qemu-img") && onPath("qemu-io");
    if (!present) {
      String why = "qemu-img and qemu-io (Debian package qemu-utils) are needed as test oracles";
      if ("true".equals(System.getenv("CI"))) {
        fail(why + " and CI=true: install them with scripts/setup");
      }
      Assumptions.assumeTrue(false, why + "; skipping");
    }
  }

  private static boolean onPath(String tool) {
    String path = System.getenv("PATH");
    if (path == null) {
      return false;
    }
    for (String dir : path.split(":")) {
      if (Files.isExecutable(Path.of(dir, tool))) {
        return true;
      }
    }
    return false;
  }

  /** Runs {@code qemu-img ARGS} and returns its output; fails the test if it fails. */
  static String img(String... args) {
    return run("qemu-img", args);
  }

  /** Runs {@code qemu-io ARGS}; fails the test if it fails. */
  static String io(String... args) {
    return run("qemu-io", args);
  }

  /** Runs {@code qemu-img ARGS}; returns whether it succeeded. */
  static boolean tryImg(String... args) {
    try {
      return exec("qemu-img", args).exit == 0;
    } catch (IOException e) {
      return false;
    }
  }

  /** Converts {@code image} of format {@code format} to a raw file and returns it. */
  static Path toRaw(Path image, String format, Path raw) {
    img("convert", "-f", format, "-O", "raw", image.toString(), raw.toString());
    return raw;
  }

  private record Result(int exit, String output) {}

  private static String run(String tool, String... args) {
    try {
      Result r = exec(tool, args);
      if (r.exit != 0) {
        fail(tool + " " + String.join(" ", args) + " failed (" + r.exit + "): " + r.output);
      }
      return r.output;
    } catch (IOException e) {
      throw new AssertionError(tool + " could not run: " + e, e);
    }
  }

  private static Result exec(String tool, String... args) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(tool);
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    try {
      byte[] out = p.getInputStream().readAllBytes();
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException(tool + " timed out");
      }
      return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    }
  }
}
