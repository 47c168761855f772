package io.granule.engine.internal;

/** Tests that need root: under CI (which runs as root) its absence fails, elsewhere it skips. */
public final class TestRoot {
  private TestRoot() {}

  /** Requires root; {@code why} says what for ("mounting a file system"). */
  public static void require(String why) {
    if ("root".equals(System.getProperty("user.name"))) {
      return;
    }
    if ("true".equals(System.getenv("CI"))) {
      throw new AssertionError("this test needs root for " + why + ", which CI has");
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(false, "needs root for " + why);
  }
}
