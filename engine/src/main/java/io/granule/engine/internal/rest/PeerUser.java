package io.granule.engine.internal.rest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Which local user opened a TCP connection to this host, from the kernel's socket tables ({@code
 * /proc/net/tcp}, {@code /proc/net/tcp6}: the client's socket, ESTABLISHED, whose local port is the
 * connection's client port and whose remote port is the server's, records the user that made it). A
 * loopback API reached by every local user would run their jobs with the server's rights (as root:
 * restore any bytes over any file), so the server serves only the users it runs as.
 */
final class PeerUser {
  private static final List<Path> TABLES =
      List.of(Path.of("/proc/net/tcp"), Path.of("/proc/net/tcp6"));

  private PeerUser() {}

  /**
   * The uid of the process that made the connection from local port {@code clientPort} to {@code
   * serverPort}; empty if no socket or several of different users match.
   */
  static OptionalInt uidOf(int clientPort, int serverPort) {
    Set<Integer> uids = new HashSet<>();
    for (Path t : TABLES) {
      try {
        uids.addAll(uids(Files.readString(t, StandardCharsets.US_ASCII), clientPort, serverPort));
      } catch (IOException | RuntimeException e) {
        // no IPv6 table, say
      }
    }
    return uids.size() == 1 ? OptionalInt.of(uids.iterator().next()) : OptionalInt.empty();
  }

  /**
   * The uids of the established sockets in {@code table} from {@code localPort} to {@code
   * remotePort}.
   */
  static Set<Integer> uids(String table, int localPort, int remotePort) {
    Set<Integer> out = new HashSet<>();
    String local = String.format(Locale.ROOT, ":%04X", localPort);
    String remote = String.format(Locale.ROOT, ":%04X", remotePort);
    for (String line : table.split("\n")) {
      String[] f = line.trim().split("\\s+");
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
      if (f.length > 7
          && f[1].toUpperCase(Locale.ROOT).endsWith(local)
          && f[2].toUpperCase(Locale.ROOT).endsWith(remote)
          && f[3].equals("01")
          && f[7].matches("[0-9]+")) {
        out.add(Integer.parseInt(f[7]));
      }
    }
    return out;
  }

  /** The uid this process runs as, or -1 if it cannot be told. */
  static int self() {
    try {
      return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /**
   * The uids that {@code users} (comma-separated user names or uids, as {@code --api-users} takes
   * them) name; a name this host does not know is left out.
   */
  static Set<Integer> parse(String users) {
    Set<Integer> out = new HashSet<>();
    if (users == null || users.isBlank()) {
      return out;
    }
    for (String u : users.split(",")) {
      String name = u.trim();
      if (name.matches("[0-9]+")) {
        out.add(Integer.parseInt(name));
      } else if (!name.isEmpty()) {
        OptionalInt uid = uidOfName(name);
        uid.ifPresent(out::add);
      }
    }
    return out;
  }

  /** The user name of {@code uid} from /etc/passwd, or "uid N". */
  static String name(int uid) {
    String[] f = passwd(2, Integer.toString(uid));
    return f == null ? "uid " + uid : f[0] + " (uid " + uid + ")";
  }

  private static OptionalInt uidOfName(String name) {
    String[] f = passwd(0, name);
    return f == null || !f[2].matches("[0-9]+")
        ? OptionalInt.empty()
        : OptionalInt.of(Integer.parseInt(f[2]));
  }

  /** The fields of the first /etc/passwd line whose field {@code field} is {@code value}. */
  private static String[] passwd(int field, String value) {
    try {
      for (String line : Files.readAllLines(Path.of("/etc/passwd"))) {
        String[] f = line.split(":");
        if (f.length > 2 && f[field].equals(value)) {
          return f;
        }
      }
    } catch (IOException | RuntimeException e) {
      // not known
    }
    return null;
  }
}
