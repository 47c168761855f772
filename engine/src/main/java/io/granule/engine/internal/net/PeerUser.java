package io.granule.engine.internal.net;

import java.io.IOException;
import java.net.InetSocketAddress;
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
 * /proc/net/tcp}, {@code /proc/net/tcp6}): the client's socket, the one whose local address and
 * port are the connection's client end and whose remote address and port are the server's end,
 * records the user that made it. A loopback API reached by every local user would run their jobs
 * with the server's rights (as root: restore any bytes over any file), so the server serves only
 * the users it runs as.
 *
 * <p>The whole pair of ends is matched, addresses too: a user who bound his client port on another
 * loopback address (127.0.0.2) matched, by ports alone, a socket of root's to the server from the
 * same port on 127.0.0.1. The kernel keeps the pair of ends unique among live sockets; a socket in
 * TIME_WAIT or without an inode (no owner) is not one.
 */
public final class PeerUser {
  private static final List<Path> TABLES =
      List.of(Path.of("/proc/net/tcp"), Path.of("/proc/net/tcp6"));

  /** Client socket states: established, or closing its sending side after the request. */
  private static final Set<String> CLIENT_STATES = Set.of("01", "04", "05");

  private PeerUser() {}

  /**
   * The uid of the process that made the connection from {@code client} to {@code server}; empty if
   * no socket, or several of different users, match.
   */
  public static OptionalInt uidOf(InetSocketAddress client, InetSocketAddress server) {
    Set<Integer> uids = new HashSet<>();
    for (Path t : TABLES) {
      try {
        uids.addAll(uids(Files.readString(t, StandardCharsets.US_ASCII), client, server));
      } catch (IOException | RuntimeException e) {
        // no IPv6 table, say
      }
    }
    return uids.size() == 1 ? OptionalInt.of(uids.iterator().next()) : OptionalInt.empty();
  }

  /**
   * The uids of the live sockets in {@code table} (either table's format) whose local end is {@code
   * local} and remote end {@code remote}.
   */
  static Set<Integer> uids(String table, InetSocketAddress local, InetSocketAddress remote) {
    Set<String> locals = forms(local);
    Set<String> remotes = forms(remote);
    Set<Integer> out = new HashSet<>();
    for (String line : table.split("\n")) {
      String[] f = line.trim().split("\\s+");
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      if (f.length > 9
          && locals.contains(f[1].toUpperCase(Locale.ROOT))
          && remotes.contains(f[2].toUpperCase(Locale.ROOT))
          && CLIENT_STATES.contains(f[3])
          && f[7].matches("[0-9]{1,10}")
          && f[9].matches("[0-9]+")
          && !f[9].equals("0")) {
        out.add((int) Long.parseLong(f[7])); // as parse() keeps uids past 2^31
      }
    }
    return out;
  }

  /**
   * How the kernel's tables write {@code a}: ADDR:PORT in hex, the address as 32-bit words in this
   * machine's byte order; an IPv4 address also as the IPv4-mapped IPv6 address an IPv6 socket has.
   */
  static Set<String> forms(InetSocketAddress a) {
    byte[] b = a.getAddress().getAddress();
    String port = String.format(Locale.ROOT, ":%04X", a.getPort());
    Set<String> out = new HashSet<>();
    if (b.length == 4) {
      out.add(words(b) + port);
      byte[] mapped = new byte[16];
      mapped[10] = (byte) 0xff;
      mapped[11] = (byte) 0xff;
      System.arraycopy(b, 0, mapped, 12, 4);
      out.add(words(mapped) + port);
    } else {
      out.add(words(b) + port);
      boolean v4mapped = true;
      for (int i = 0; i < 12; i++) {
        v4mapped &= b[i] == (i < 10 ? 0 : (byte) 0xff);
      }
      if (v4mapped) {
        out.add(words(java.util.Arrays.copyOfRange(b, 12, 16)) + port);
      }
    }
    return out;
  }

  private static String words(byte[] b) {
    boolean little = java.nio.ByteOrder.nativeOrder() == java.nio.ByteOrder.LITTLE_ENDIAN;
    StringBuilder sb = new StringBuilder();
    for (int w = 0; w < b.length; w += 4) {
      for (int i = 0; i < 4; i++) {
        sb.append(String.format(Locale.ROOT, "%02X", b[w + (little ? 3 - i : i)] & 0xff));
      }
    }
    return sb.toString();
  }

  /**
   * Why a connection from {@code client} to {@code server} must be refused as another local user's,
   * or null: on a loopback address only the user this process runs as, root and the {@code allowed}
   * users may use it (what it does runs with this process's rights). A connection to any other
   * address is not judged here (the kernel cannot say who made a remote one).
   *
   * @param letIn how to let another user in, for the message (e.g. "start it with --api-users")
   */
  public static String refusal(
      InetSocketAddress client, InetSocketAddress server, Set<Integer> allowed, String letIn) {
    if (!server.getAddress().isLoopbackAddress()) {
      return null;
    }
    OptionalInt peer = uidOf(client, server);
    if (peer.isEmpty()) {
      return "cannot tell which local user made this connection (no single socket from "
          + client.getAddress().getHostAddress()
          + " port "
          + client.getPort()
          + " in /proc/net/tcp): refused";
    }
    int uid = peer.getAsInt();
    int self = self();
    if (uid == self || uid == 0 || allowed.contains(uid)) {
      return null;
    }
    return "user "
        + name(uid)
        + " may not use this server: it runs as "
        + name(self)
        + " ("
        + letIn
        + " to let that user in)";
  }

  /** The uid this process runs as, or -1 if it cannot be told. */
  public static int self() {
    try {
      return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /**
   * The uids that {@code users} (comma-separated user names or uids, as {@code --api-users} takes
   * them) names.
   *
   * @throws IllegalArgumentException naming an entry that is no user of this host or no uid
   */
  public static Set<Integer> parse(String users) {
    Set<Integer> out = new HashSet<>();
    if (users == null || users.isBlank()) {
      return out;
    }
    for (String u : users.split(",")) {
      String name = u.trim();
      if (name.isEmpty()) {
        continue;
      }
      if (name.matches("[0-9]{1,10}") && Long.parseLong(name) <= 0xFFFFFFFEL) {
        out.add((int) Long.parseLong(name)); // uids past 2^31 are kept as the kernel's bits
      } else {
        OptionalInt uid = uidOfName(name);
        if (uid.isEmpty()) {
          throw new IllegalArgumentException(
              "'" + name + "' is no user of this host (nor a uid): name users in /etc/passwd");
        }
        out.add(uid.getAsInt());
      }
    }
    return out;
  }

  /** The user name of {@code uid} from /etc/passwd, or "uid N". */
  public static String name(int uid) {
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
