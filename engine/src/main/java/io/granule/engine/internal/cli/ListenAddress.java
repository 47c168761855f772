package io.granule.engine.internal.cli;

import java.net.InetSocketAddress;

/** Parses {@code --listen HOST:PORT} ({@code [v6]:PORT} too; port 0 picks a free one). */
final class ListenAddress {
  private ListenAddress() {}

  /**
   * @param example shown in the error, e.g. {@code 127.0.0.1:8470}
   * @throws CommandException with {@link ExitCodes#USAGE} for a malformed address, {@link
   *     ExitCodes#SERVER} for an unknown host
   */
  static InetSocketAddress parse(String listen, String example) {
    int colon = listen.lastIndexOf(':');
    if (colon <= 0 || colon == listen.length() - 1) {
      throw new CommandException(
          ExitCodes.USAGE, "--listen '" + listen + "' is not HOST:PORT, e.g. " + example);
    }
    String host = listen.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    int port;
    try {
      port = Integer.parseInt(listen.substring(colon + 1));
    } catch (NumberFormatException e) {
      port = -1;
    }
    if (port < 0 || port > 65535) {
      throw new CommandException(
          ExitCodes.USAGE, "--listen '" + listen + "': the port must be 0 to 65535");
    }
    InetSocketAddress a = new InetSocketAddress(host, port);
    if (a.isUnresolved()) {
      throw new CommandException(
          ExitCodes.SERVER, "unable to listen on " + listen + ": unknown host '" + host + "'");
    }
    return a;
  }

  /**
   * The warning to print when a server listens on {@code a}, or null for a loopback address: with
   * no password, anyone on another host who can reach the port is served with the server's rights;
   * local users are checked as on loopback (their connections through this host's own addresses
   * too), remote ones cannot be.
   *
   * @param what the server, e.g. "the REST API"
   */
  static String exposure(java.net.InetAddress a, String what) {
    if (a == null || a.isLoopbackAddress()) {
      return null;
    }
    return "warning: "
        + what
        + " listens on "
        + a.getHostAddress()
        + ", not a loopback address, with no password: a client on another host that can reach"
        + " this port is served with this process's rights (uid "
        + io.granule.engine.internal.net.PeerUser.self()
        + (io.granule.engine.internal.net.PeerUser.self() == 0 ? ", root" : "")
        + "). Local users are checked as on loopback; remote ones cannot be. Let only trusted"
        + " hosts reach it (a firewall rule for the port), or keep it on 127.0.0.1 and reach it"
        + " through an SSH tunnel.";
  }
}
