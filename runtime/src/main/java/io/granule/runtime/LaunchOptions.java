package io.granule.runtime;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What the launcher must know before the engine parses the command line: whether this process is
 * the long-running server (HTTP, plugin folder watching, log file) or a one-shot command, and where
 * the data directory is.
 *
 * <p>The engine parses the full command line again with picocli; this class only peeks at the two
 * things that change how the runtime starts, and never rejects anything.
 *
 * @param args the command line, unchanged, handed on to the engine
 * @param server true when the command is {@code server}
 * @param dataDir the data directory: {@code --data DIR}, else {@code $GRANULE_DATA}, else {@code
 *     ./granule-data}
 */
public record LaunchOptions(List<String> args, boolean server, Path dataDir) {

  static final String DEFAULT_DATA_DIR = "granule-data";

  public LaunchOptions {
    args = List.copyOf(args);
  }

  /** Peeks at {@code args}; see the class comment. */
  public static LaunchOptions parse(String[] args, Map<String, String> env) {
    String data = null;
    String command = null;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (a.equals("--")) {
        break;
      } else if (a.equals("--data") && i + 1 < args.length) {
        data = args[++i];
      } else if (a.startsWith("--data=")) {
        data = a.substring("--data=".length());
      } else if (command == null && !a.startsWith("-")) {
        command = a;
      }
    }
    if (data == null) {
      data = env.getOrDefault("GRANULE_DATA", DEFAULT_DATA_DIR);
    }
    return new LaunchOptions(
        List.of(args), "server".equals(command), Path.of(data).toAbsolutePath().normalize());
  }
}
