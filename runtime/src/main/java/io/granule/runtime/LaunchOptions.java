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
 *     /var/lib/granule} for root and {@code $XDG_DATA_HOME/granule} ({@code
 *     ~/.local/share/granule}) for other users (see {@link DataDirectory})
 */
public record LaunchOptions(List<String> args, boolean server, Path dataDir) {

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
      data = env.get("GRANULE_DATA");
    }
    Path dir =
        data == null || data.isEmpty()
            ? DataDirectory.defaultFor(env, uid(), System.getProperty("user.home"))
            : Path.of(data);
    return new LaunchOptions(
        List.of(args), "server".equals(command), dir.toAbsolutePath().normalize());
  }

  /** This process's effective user id (from /proc/self/status; -1 if it cannot be read). */
  static long uid() {
    try {
      for (String line :
          java.nio.file.Files.readAllLines(
              Path.of("/proc/self/status"), java.nio.charset.StandardCharsets.US_ASCII)) {
        if (line.startsWith("Uid:")) {
          return Long.parseLong(line.substring(4).trim().split("\\s+")[1]);
        }
      }
    } catch (java.io.IOException | RuntimeException e) {
      // not Linux: no user is trusted but root, and no default for root
    }
    return -1;
  }
}
