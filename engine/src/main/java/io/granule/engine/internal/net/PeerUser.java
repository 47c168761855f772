package io.granule.engine.internal.net;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Which local user opened a TCP connection to this host: the client's socket, the one whose local
 * address and port are the connection's client end and whose remote address and port are the
 * server's end, records the user that made it. A loopback API reached by every local user would run
 * their jobs with the server's rights (as root: restore any bytes over any file), so the server
 * serves only the users it runs as.
 *
 * <p>The kernel is asked for that one socket ({@code NETLINK_SOCK_DIAG}, an exact lookup of the
 * pair of ends, through {@code libgranule-native}); only where that cannot be done (no library, no
 * inet_diag in the kernel) are its tables ({@code /proc/net/tcp}, {@code /proc/net/tcp6}) read,
 * line by line, up to the first match. Reading and parsing both whole tables for every request let
 * a local user who filled them with his own connections (54k rows, 8 MB) and sent refused requests
 * exhaust the server's heap; and at most {@link #LOOKUPS_AT_ONCE} table reads run at once ({@link
 * Busy} past that). The kernel's exact lookup is one small query: it is not capped, so a flood of
 * another user's connections does not turn the server's own user away.
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
  private static final int ESTABLISHED = 1;

  private static final int FIN_WAIT1 = 4;
  private static final int FIN_WAIT2 = 5;

  /** An accepted socket whose client has sent its FIN (a half-closed request). */
  private static final int CLOSE_WAIT = 8;

  private static final int LISTEN = 10;

  /** The states (bits) of a client's socket that count as its live connection. */
  private static final int CLIENT_STATES = 1 << ESTABLISHED | 1 << FIN_WAIT1 | 1 << FIN_WAIT2;

  /** The states (bits) of an accepted socket still connected to its client. */
  private static final int SERVER_STATES = 1 << ESTABLISHED | 1 << CLOSE_WAIT;

  private static final int ENOENT = 2;

  /** Reads of the tables (the fallback) that may run at once; see {@link #refusal}. */
  public static final int LOOKUPS_AT_ONCE = 4;

  static final java.util.concurrent.Semaphore LOOKUPS =
      new java.util.concurrent.Semaphore(LOOKUPS_AT_ONCE);

  /** Longest line of the tables read (about 150 bytes); a longer one is no socket of ours. */
  private static final int MAX_LINE = 512;

  private static final int SELF = uid("/proc/self");

  /**
   * Thrown by {@link #refusal} when {@link #LOOKUPS_AT_ONCE} lookups are under way: the caller
   * refuses the connection at once (503, or closes it). One shared instance, without a stack trace:
   * a flood of them allocates nothing.
   */
  public static final class Busy extends RuntimeException {
    private static final long serialVersionUID = 1L;

    static final Busy INSTANCE = new Busy();

    private Busy() {
      super(
          LOOKUPS_AT_ONCE
              + " connections are already being checked for their local user: try again",
          null,
          false,
          false);
    }
  }

  private PeerUser() {}

  /**
   * The uid of the process that made the connection from {@code client} to {@code server}; empty if
   * no live socket with an inode has that pair of ends.
   *
   * @throws Busy if the kernel cannot be asked and {@link #LOOKUPS_AT_ONCE} reads of its tables are
   *     under way
   */
  public static OptionalInt uidOf(InetSocketAddress client, InetSocketAddress server) {
    long[] found = exact(client, server, false, server);
    if (found != null) {
      return found.length == 0 ? OptionalInt.empty() : OptionalInt.of((int) found[1]);
    }
    return capped(client, server, CLIENT_STATES);
  }

  /** {@link #scanTables} within the cap of {@link #LOOKUPS_AT_ONCE} reads at once. */
  private static OptionalInt capped(InetSocketAddress local, InetSocketAddress remote, int states) {
    if (!LOOKUPS.tryAcquire()) {
      throw Busy.INSTANCE;
    }
    try {
      return scanTables(local, remote, states);
    } finally {
      LOOKUPS.release();
    }
  }

  /** Whether lookups may ask the kernel (tests turn it off to exercise the tables' cap). */
  static volatile boolean askKernel = true;

  private static final int UNKNOWN = 0;
  private static final int WORKS = 1;
  private static final int UNAVAILABLE = 2;

  /**
   * Whether the kernel answers exact lookups here: {@link #WORKS} once it answered for a socket of
   * this process, {@link #UNAVAILABLE} only after an error that no other user can cause (no
   * library, netlink or sock_diag refused to this process); until then {@link #UNKNOWN}, and asked
   * again at the next lookup.
   *
   * <p>It was decided once, for the life of the process, at the first accepted connection, by
   * connecting to a server socket of its own on a new ephemeral port: a user who held every
   * ephemeral port at that moment (and made that first connection himself) made it fail, and the
   * server read /proc/net/tcp, without the check of the accepted socket, for good (audit10 rest
   * F2). It is now asked of the server's own listening socket, which takes no port, and no failure
   * another user can cause decides it.
   */
  private static volatile int kernel = UNKNOWN;

  /** For tests: the next this many probes fail as a transient error would (ETIMEDOUT). */
  static final java.util.concurrent.atomic.AtomicInteger FAIL_PROBES =
      new java.util.concurrent.atomic.AtomicInteger();

  /** For tests: forget what the kernel answered, as a process that just started. */
  static void forgetKernel() {
    kernel = UNKNOWN;
  }

  /** Whether lookups ask the kernel for the one socket (else they read its tables). */
  static boolean asksTheKernel() {
    if (kernel == UNKNOWN) {
      try (ServerSocket own = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        kernelWorks((InetSocketAddress) own.getLocalSocketAddress());
      } catch (IOException e) {
        // not known yet
      }
    }
    return kernel == WORKS;
  }

  /**
   * Whether the kernel is to be asked now; if not known yet, it is asked for the listening socket
   * of {@code listener} (the connection's server end: the kernel finds the socket listening on that
   * address and port, ours, without any new socket or port).
   */
  private static boolean kernelWorks(InetSocketAddress listener) {
    int k = kernel;
    if (k != UNKNOWN) {
      return k == WORKS;
    }
    int rc = probe(listener);
    if (rc == 0) {
      kernel = WORKS;
      if (warned != null) {
        LOG.info("peer check: the kernel now answers exact socket lookups (NETLINK_SOCK_DIAG)");
      }
      return true;
    }
    if (definite(rc)) {
      kernel = UNAVAILABLE;
      warn(
          "the kernel's exact socket lookup (NETLINK_SOCK_DIAG) is unavailable ("
              + error(rc)
              + "): the peer check reads /proc/net/tcp for the life of this process");
    } else {
      warn(
          "the kernel's exact socket lookup (NETLINK_SOCK_DIAG) did not answer for this server's"
              + " listening socket ("
              + error(rc)
              + "): this connection is checked from /proc/net/tcp; asked again at the next");
    }
    return false;
  }

  /** No library: {@link NativeLibrary#unavailableReason()}. */
  private static final int NO_LIBRARY = Integer.MIN_VALUE;

  private static final int EPERM = 1;
  private static final int EACCES = 13;
  private static final int EPROTONOSUPPORT = 93;
  private static final int EOPNOTSUPP = 95;
  private static final int EAFNOSUPPORT = 97;
  private static final int ETIMEDOUT = 110;

  /** An error no other user can cause: the library, or netlink/sock_diag refused to us. */
  private static boolean definite(int rc) {
    return rc == NO_LIBRARY
        || rc == -EPERM
        || rc == -EACCES
        || rc == -EPROTONOSUPPORT
        || rc == -EOPNOTSUPP
        || rc == -EAFNOSUPPORT;
  }

  private static String error(int rc) {
    return rc == NO_LIBRARY
        ? "libgranule-native: " + NativeLibrary.unavailableReason()
        : rc == -ENOENT ? "listening socket not found" : "errno " + -rc;
  }

  /** 0 if the kernel names this process as the owner of the socket listening at {@code at}. */
  private static int probe(InetSocketAddress at) {
    if (NativeLibrary.unavailableReason() != null) {
      return NO_LIBRARY;
    }
    if (FAIL_PROBES.get() > 0 && FAIL_PROBES.getAndDecrement() > 0) {
      return -ETIMEDOUT;
    }
    byte[] a = v4(at.getAddress().getAddress());
    long[] out = new long[3];
    int rc = -ENOENT;
    // a listener on an IPv6 link-local address is bound to its device: found only there
    int[] devices = {0, LO};
    for (int tried = 0; tried < devices.length; tried++) {
      int device = devices[tried];
      try {
        // the listener answers for its address and port (remote end: none)
        rc =
            diag0(
                a.length == 16,
                java.util.Arrays.copyOf(a, 16),
                at.getPort(),
                new byte[16],
                0,
                device,
                out);
      } catch (UnsatisfiedLinkError e) {
        return NO_LIBRARY;
      }
      if (rc == 0) {
        if (out[0] == LISTEN && out[2] != 0 && (SELF < 0 || (int) out[1] == SELF)) {
          return 0;
        }
        rc = -ENOENT; // not (or no longer) our listener: tells nothing
      } else if (rc != -ENOENT) {
        return rc;
      }
      if (tried == 1) {
        devices = devices(at, at, at);
      }
    }
    return rc;
  }

  /**
   * The kernel's {state, uid, inode} of the socket from {@code local} to {@code remote} (as {@link
   * #diag(InetSocketAddress, InetSocketAddress, boolean, int[])}); null if the kernel is not to be
   * asked now, or failed (the tables are read instead).
   */
  private static long[] exact(
      InetSocketAddress local,
      InetSocketAddress remote,
      boolean serverEnd,
      InetSocketAddress listener) {
    if (!askKernel || !kernelWorks(listener)) {
      return null;
    }
    int[] err = new int[1];
    long[] found = diag(local, remote, serverEnd, err);
    if (found == null) {
      if (definite(err[0])) {
        kernel = UNAVAILABLE;
      }
      warn(
          "the kernel's exact socket lookup failed ("
              + error(err[0])
              + "): this connection is checked from /proc/net/tcp");
    }
    return found;
  }

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(PeerUser.class);

  private static final long WARN_EVERY_NANOS = java.util.concurrent.TimeUnit.MINUTES.toNanos(10);

  private static volatile String warned;
  private static volatile long warnedAt;

  /** Logs {@code why} at WARN, unless it was the last warning and less than 10 minutes ago. */
  private static void warn(String why) {
    long now = System.nanoTime();
    if (!why.equals(warned) || now - warnedAt >= WARN_EVERY_NANOS) {
      warned = why;
      warnedAt = now;
      LOG.warn("peer check: {}", why);
    }
  }

  /**
   * The kernel's {state, uid, inode} of the live socket with local end {@code local} and remote end
   * {@code remote}; empty if there is none; null if the kernel could not be asked.
   */
  static long[] diag(InetSocketAddress local, InetSocketAddress remote) {
    return diag(local, remote, false, new int[1]);
  }

  /**
   * As {@link #diag(InetSocketAddress, InetSocketAddress)}; {@code serverEnd} asks for an accepted
   * socket (established, or closed by the client after its request: CLOSE_WAIT) instead of a
   * client's; where it returns null, {@code err[0]} is the error (-errno, or {@link #NO_LIBRARY}).
   */
  private static long[] diag(
      InetSocketAddress local, InetSocketAddress remote, boolean serverEnd, int[] err) {
    byte[] l = v4(local.getAddress().getAddress());
    byte[] r = v4(remote.getAddress().getAddress());
    if (l.length != r.length) {
      return new long[0]; // an IPv4 end and an IPv6 one: no such connection
    }
    boolean v6 = l.length == 16;
    byte[] src = java.util.Arrays.copyOf(l, 16);
    byte[] dst = java.util.Arrays.copyOf(r, 16);
    long[] out = new long[3];
    // on any device, then on "lo" (a socket bound to a device is found only on that device), then
    // on the devices the connection can be bound to; each lookup is of the exact pair of ends
    int[] devices = {0, LO};
    for (int tried = 0; tried < devices.length; tried++) {
      int rc;
      try {
        rc = diag0(v6, src, local.getPort(), dst, remote.getPort(), devices[tried], out);
      } catch (UnsatisfiedLinkError e) {
        err[0] = NO_LIBRARY;
        return null;
      }
      int state = (int) out[0];
      if (rc == 0
          && (serverEnd ? state == ESTABLISHED || state == CLOSE_WAIT : live(state))
          && out[2] != 0) {
        return out;
      }
      if (rc != 0 && rc != -ENOENT) {
        err[0] = rc;
        return null;
      }
      if (tried == 1) { // not found on any device nor on "lo"
        devices = devices(local, remote, serverEnd ? local : remote);
      }
    }
    return new long[0];
  }

  /** The index of "lo" (1 in every network namespace; 0 if it cannot be told: any device). */
  private static final int LO = index("lo");

  private static int index(String name) {
    try {
      java.net.NetworkInterface i = java.net.NetworkInterface.getByName(name);
      return i == null ? 0 : i.getIndex();
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  /** Devices looked up on past "lo" for one connection, at most (see {@link #devices}). */
  static final int MAX_DEVICES = 8;

  /**
   * 0 and {@link #LO}, then the devices a client's socket to {@code server} can be bound to, at
   * most {@link #MAX_DEVICES} of them: the scope of an IPv6 link-local end (a link-local connect
   * binds the socket to that device), and every device that holds the server's address (a client
   * bound to a device with SO_BINDTODEVICE, unprivileged since Linux 5.7, reaches this host's
   * address on that device). Such a socket is not found on any device nor on "lo": the server's own
   * user was refused there (audit11 netkeys F4). Only the kernel's exact lookup of the pair of ends
   * on one of these names the socket's owner; a socket bound to another device is not found (the
   * connection is refused, as one of no known user).
   */
  static int[] devices(
      InetSocketAddress local, InetSocketAddress remote, InetSocketAddress server) {
    java.util.LinkedHashSet<Integer> out = new java.util.LinkedHashSet<>();
    for (InetSocketAddress end : List.of(local, remote)) {
      if (end.getAddress() instanceof java.net.Inet6Address a && a.getScopeId() > 0) {
        out.add(a.getScopeId());
      }
    }
    byte[] held = v4(server.getAddress().getAddress());
    try {
      java.util.Enumeration<java.net.NetworkInterface> all =
          java.net.NetworkInterface.getNetworkInterfaces();
      while (all != null && all.hasMoreElements() && out.size() < MAX_DEVICES) {
        java.net.NetworkInterface i = all.nextElement();
        for (java.util.Enumeration<InetAddress> as = i.getInetAddresses(); as.hasMoreElements(); ) {
          if (java.util.Arrays.equals(as.nextElement().getAddress(), held)) {
            out.add(i.getIndex());
            break;
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      // the scopes only
    }
    out.remove(0);
    out.remove(LO);
    return java.util.stream.IntStream.concat(
            java.util.stream.IntStream.of(0, LO),
            out.stream().limit(MAX_DEVICES).mapToInt(Integer::intValue))
        .toArray();
  }

  private static boolean live(int state) {
    return state == ESTABLISHED || state == FIN_WAIT1 || state == FIN_WAIT2;
  }

  /** An IPv4-mapped IPv6 address as its IPv4 address (the kernel looks both up alike). */
  private static byte[] v4(byte[] b) {
    if (b.length == 16) {
      for (int i = 0; i < 12; i++) {
        if (b[i] != (i < 10 ? 0 : (byte) 0xff)) {
          return b;
        }
      }
      return java.util.Arrays.copyOfRange(b, 12, 16);
    }
    return b;
  }

  private static native int diag0(
      boolean v6, byte[] src, int sport, byte[] dst, int dport, int ifindex, long[] out);

  /** Tables opened for reading so far (the fallback's). */
  static final java.util.concurrent.atomic.AtomicLong TABLES_READ =
      new java.util.concurrent.atomic.AtomicLong();

  /** As {@link #uidOf}, from the kernel's tables. */
  static OptionalInt scanTables(InetSocketAddress client, InetSocketAddress server) {
    return scanTables(client, server, CLIENT_STATES);
  }

  /**
   * The uid of the socket with an inode from {@code local} to {@code remote} in one of {@code
   * states} (bits), from the kernel's tables.
   */
  private static OptionalInt scanTables(
      InetSocketAddress local, InetSocketAddress remote, int states) {
    byte[][] locals = ascii(forms(local));
    byte[][] remotes = ascii(forms(remote));
    for (Path t : TABLES) {
      TABLES_READ.incrementAndGet();
      try (InputStream in = Files.newInputStream(t)) {
        long uid = scan(in, locals, remotes, states);
        if (uid >= 0) {
          return OptionalInt.of((int) uid); // as parse() keeps uids past 2^31
        }
      } catch (IOException | RuntimeException e) {
        // no IPv6 table, say
      }
    }
    return OptionalInt.empty();
  }

  private static byte[][] ascii(Set<String> forms) {
    return forms.stream().map(f -> f.getBytes(StandardCharsets.US_ASCII)).toArray(byte[][]::new);
  }

  /**
   * The uid of the first live socket in {@code table} (either table's format) whose local end is
   * {@code local} and remote end {@code remote}, or -1: read line by line into one fixed buffer,
   * nothing kept of the lines that do not match.
   */
  static long scan(InputStream table, InetSocketAddress local, InetSocketAddress remote)
      throws IOException {
    return scan(table, ascii(forms(local)), ascii(forms(remote)), CLIENT_STATES);
  }

  private static long scan(InputStream in, byte[][] locals, byte[][] remotes, int states)
      throws IOException {
    byte[] buf = new byte[16384];
    byte[] line = new byte[MAX_LINE];
    int len = 0;
    boolean tooLong = false;
    int n;
    while ((n = in.read(buf)) > 0) {
      for (int i = 0; i < n; i++) {
        byte c = buf[i];
        if (c == '\n') {
          long uid = tooLong ? -1 : match(line, len, locals, remotes, states);
          if (uid >= 0) {
            return uid;
          }
          len = 0;
          tooLong = false;
        } else if (len < MAX_LINE) {
          line[len++] = c;
        } else {
          tooLong = true;
        }
      }
    }
    return tooLong ? -1 : match(line, len, locals, remotes, states);
  }

  /**
   * The uid of {@code line} if it is a live socket with an inode from one of {@code locals} to one
   * of {@code remotes}, else -1. Fields: sl local_address rem_address st tx_queue:rx_queue
   * tr:tm->when retrnsmt uid timeout inode.
   */
  private static long match(byte[] line, int len, byte[][] locals, byte[][] remotes, int states) {
    long uid = -1;
    int field = 0;
    int i = 0;
    while (true) {
      while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
        i++;
      }
      if (i >= len) {
        return -1; // fewer than 10 fields
      }
      int start = i;
      while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
        i++;
      }
      switch (field) {
        case 1:
          if (!oneOf(line, start, i, locals)) {
            return -1;
          }
          break;
        case 2:
          if (!oneOf(line, start, i, remotes)) {
            return -1;
          }
          break;
        case 3:
          int state = i - start == 2 ? hex(line[start]) << 4 | hex(line[start + 1]) : -1;
          if (state < 0 || state > 31 || (states & 1 << state) == 0) {
            return -1;
          }
          break;
        case 7:
          uid = i - start <= 10 ? decimal(line, start, i) : -1;
          if (uid < 0) {
            return -1;
          }
          break;
        case 9:
          long inode = decimal(line, start, i);
          return inode > 0 ? uid : -1; // an inode of 0 (or not a number): no owner
        default:
          break;
      }
      field++;
    }
  }

  private static boolean oneOf(byte[] line, int start, int end, byte[][] forms) {
    for (byte[] f : forms) {
      if (f.length == end - start) {
        boolean same = true;
        for (int k = 0; k < f.length && same; k++) {
          int c = line[start + k];
          same = (c >= 'a' && c <= 'f' ? c - 32 : c) == f[k];
        }
        if (same) {
          return true;
        }
      }
    }
    return false;
  }

  /** The value of hex digit {@code c}, or a negative number. */
  private static int hex(byte c) {
    return c >= '0' && c <= '9'
        ? c - '0'
        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -256;
  }

  /** The decimal number at line[start, end), or -1 (not all digits, or past 18 digits). */
  private static long decimal(byte[] line, int start, int end) {
    if (end == start || end - start > 18) {
      return -1;
    }
    long v = 0;
    for (int k = start; k < end; k++) {
      if (line[k] < '0' || line[k] > '9') {
        return -1;
      }
      v = v * 10 + (line[k] - '0');
    }
    return v;
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
   * or null: a connection made on this host, whatever address it came through, may be used only by
   * the user this process runs as, root and the {@code allowed} users (what it does runs with this
   * process's rights). Only a connection from another host is not judged here (the kernel cannot
   * say who made it): one whose client socket is not in this host's tables, from an address that is
   * not one of this host's.
   *
   * <p>A server on 0.0.0.0, :: or a host address skipped the check for every connection: a local
   * user who connected through the host's own address (192.0.2.2, which a firewall does not filter
   * for local users) was served with root's rights (audit10 rest F1). The kernel finds the client's
   * socket by its pair of ends on any address.
   *
   * @param letIn how to let another user in, for the message (e.g. "start it with --api-users")
   * @throws Busy if the kernel cannot be asked and {@link #LOOKUPS_AT_ONCE} reads of its tables are
   *     under way (refuse the connection at once)
   */
  public static String refusal(
      InetSocketAddress client, InetSocketAddress server, Set<Integer> allowed, String letIn) {
    return judge(client, server, allowed, letIn).refusal;
  }

  /** A refusal, or null; {@code local}: the client's socket is one of this host's. */
  private record Judged(String refusal, boolean local) {}

  private static Judged judge(
      InetSocketAddress client, InetSocketAddress server, Set<Integer> allowed, String letIn) {
    OptionalInt peer = uidOf(client, server);
    if (peer.isEmpty()) {
      if (!server.getAddress().isLoopbackAddress() && !onThisHost(client.getAddress())) {
        return new Judged(null, false); // from another host
      }
      return new Judged(
          "cannot tell which local user made this connection (no live socket from "
              + client.getAddress().getHostAddress()
              + " port "
              + client.getPort()
              + " to this server in the kernel's socket table): refused",
          true);
    }
    int uid = peer.getAsInt();
    int self = self();
    if (uid == self || uid == 0 || allowed.contains(uid)) {
      return new Judged(null, true);
    }
    return new Judged(
        "user "
            + name(uid)
            + " may not use this server: it runs as "
            + name(self)
            + " ("
            + letIn
            + " to let that user in)",
        true);
  }

  /**
   * Whether {@code a} is an address of this host (loopback, the wildcard, or an address of one of
   * its interfaces); if that cannot be told, it is taken as one (the connection is refused).
   */
  static boolean onThisHost(InetAddress a) {
    if (a.isLoopbackAddress() || a.isAnyLocalAddress()) {
      return true;
    }
    try {
      return java.net.NetworkInterface.getByInetAddress(a) != null;
    } catch (IOException | RuntimeException e) {
      return true;
    }
  }

  /**
   * As {@link #refusal}, for a connection just accepted, before anything is read from it: also
   * refused if the accepted socket is no longer connected (the client reset it).
   *
   * <p>The client's socket is looked up by the connection's pair of ends; once a client has reset
   * its connection, another process may connect from the same port, and that new socket (root's,
   * say) is the one the lookup finds: a user who queued a request on a connection and reset it
   * before the server accepted it had it run as root (audit9 rest F6). So the accepted socket
   * itself is asked for after the client's: if it is still connected (established, or half-closed
   * by its client) when the client's socket has been found, no other socket can have taken that
   * pair of ends in between, and the owner found is the one who sent what will be read. The caller
   * accepts connections one at a time (one acceptor thread), so no other accepted socket of this
   * server has that pair of ends while this one is checked: the other connection that has it now
   * waits to be accepted, and a socket not yet accepted has no inode.
   *
   * <p>Where the kernel cannot be asked for one socket, the tables are read for the accepted socket
   * too (it was not checked there, and a user who made the server fall back to the tables had his
   * reset request judged as root's: audit10 rest F2).
   *
   * @throws Busy as {@link #refusal}
   */
  public static String acceptRefusal(
      InetSocketAddress client, InetSocketAddress server, Set<Integer> allowed, String letIn) {
    Judged judged = judge(client, server, allowed, letIn);
    if (judged.refusal != null || !judged.local) {
      return judged.refusal;
    }
    long[] accepted = exact(server, client, true, server);
    boolean connected =
        accepted != null ? accepted.length != 0 : capped(server, client, SERVER_STATES).isPresent();
    if (!connected) {
      return "the connection from "
          + client.getAddress().getHostAddress()
          + " port "
          + client.getPort()
          + " was closed by its client before it was accepted: refused";
    }
    return null;
  }

  /** The uid this process runs as, or -1 if it cannot be told. */
  public static int self() {
    return SELF;
  }

  private static int uid(String path) {
    try {
      return (Integer) Files.getAttribute(Path.of(path), "unix:uid");
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
    try (java.io.BufferedReader r =
        Files.newBufferedReader(Path.of("/etc/passwd"), StandardCharsets.UTF_8)) {
      for (String line = r.readLine(); line != null; line = r.readLine()) {
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
