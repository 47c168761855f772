package io.granule.plugin.vmdisk.internal.fs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/** Runs the real tools the tests use as oracles. */
public final class Tools {
  private Tools() {}

  /**
   * Skips the test when {@code tool} is missing, or fails it under CI ({@code CI=true}).
   *
   * @param pkg the Debian package that provides the tool
   */
  public static void require(String tool, String pkg) {
    for (String dir : List.of("/usr/sbin", "/usr/bin", "/sbin", "/bin")) {
      if (Files.isExecutable(Path.of(dir, tool))) {
        return;
      }
    }
    String why = tool + " is not installed (apt-get install " + pkg + ", or run scripts/setup)";
    if ("true".equals(System.getenv("CI"))) {
      fail(why);
    }
    Assumptions.assumeTrue(false, why);
  }

  /**
   * Skips the test when {@code condition} is false, or fails it under CI ({@code CI=true}), where
   * every prerequisite (root, FUSE, a working mount) must be there.
   */
  public static void assume(boolean condition, String why) {
    if (condition) {
      return;
    }
    if ("true".equals(System.getenv("CI"))) {
      fail(why);
    }
    Assumptions.assumeTrue(false, why);
  }

  /** Runs {@code cmd} with {@code stdin}, fails the test unless it exits 0, returns stdout. */
  public static String run(String stdin, String... cmd) throws IOException, InterruptedException {
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(false);
    pb.environment().put("LC_ALL", "C");
    pb.environment().put("TZ", "UTC");
    pb.environment().put("PAGER", "__none__");
    Process p = pb.start();
    try (var in = p.getOutputStream()) {
      if (stdin != null) {
        in.write(stdin.getBytes(StandardCharsets.UTF_8));
      }
    }
    byte[] out = p.getInputStream().readAllBytes();
    byte[] err = p.getErrorStream().readAllBytes();
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("%s finished", cmd[0]).isTrue();
    assertThat(p.exitValue())
        .as(
            "%s exit status; stderr: %s",
            String.join(" ", cmd), new String(err, StandardCharsets.UTF_8))
        .isZero();
    return new String(out, StandardCharsets.UTF_8);
  }
}
