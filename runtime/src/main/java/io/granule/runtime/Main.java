package io.granule.runtime;

/**
 * Entry point of the executable jar: {@code java -jar granule.jar COMMAND ...}.
 *
 * <p>Starts the OSGi runtime in this process, hands the command line to the engine bundle and exits
 * with the code the engine returns (see the exit-code table in README.md).
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    int code;
    Launcher launcher = null;
    try {
      launcher = new Launcher(LaunchOptions.parse(args, System.getenv()));
      code = launcher.run();
    } catch (LaunchException e) {
      System.err.println("granule: " + e.getMessage());
      code = e.exitCode();
    }
    System.out.flush();
    System.err.flush();
    if (launcher != null && (code == Launcher.SIGNALLED || launcher.signalled())) {
      // a signal is stopping the JVM: its shutdown hooks finish and it exits with the signal's
      // code (143 for SIGTERM); halting here would cut them short with another code
      return;
    }
    if (Boolean.getBoolean("granule.exit.hooks")) {
      // for profiling: lets JVM shutdown hooks run, such as a flight recording's dump on exit
      System.exit(code);
    }
    Runtime.getRuntime().halt(code);
  }
}
