package io.granule.plugin.mysql.internal;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;

/** Skips a test whose prerequisite is missing, or fails it under CI ({@code CI=true}). */
final class Prerequisites {
  private Prerequisites() {}

  static void require(String tool, String pkg) {
    for (String dir : List.of("/usr/sbin", "/usr/bin", "/sbin", "/bin")) {
      if (Files.isExecutable(Path.of(dir, tool))) {
        return;
      }
    }
    assume(false, tool + " is not installed (apt-get install " + pkg + ", or run scripts/setup)");
  }

  static void assume(boolean condition, String why) {
    if (condition) {
      return;
    }
    if ("true".equals(System.getenv("CI"))) {
      fail(why);
    }
    Assumptions.assumeTrue(false, why);
  }
}
