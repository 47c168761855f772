package io.granule.engine.internal.nbd;

import java.io.Closeable;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Network Block Device server (fixed newstyle handshake) offering a fixed set of {@link
 * NbdExport}s over TCP, one thread per connection, at most {@link #MAX_CONNECTIONS} at once (a
 * further client is accepted and closed at once).
 *
 * <p>A connection that breaks the protocol (bad magic, oversized option or write, unknown export
 * with {@code NBD_OPT_EXPORT_NAME}) is closed; the server and the other connections go on. A read
 * that fails (e.g. a damaged chunk) is answered with {@code EIO} and logged. Requests of one
 * connection are answered in order.
 *
 * <p>Thread-safe. {@link #close} stops listening, closes every connection and waits for their
 * threads; it does not close the exports' images.
 */
public final class NbdServer implements Closeable {
  /** Connections served at once. */
  public static final int MAX_CONNECTIONS = 16;

  /** The largest read or write one request may ask for, also advertised as maximum block size. */
  public static final int MAX_REQUEST = 32 * 1024 * 1024;

  /** Time a client has to finish the handshake. */
  static final int HANDSHAKE_TIMEOUT_MS = 30_000;

  private static final Logger LOG = LoggerFactory.getLogger(NbdServer.class);

  private final Map<String, NbdExport> exports = new LinkedHashMap<>();
  private final Set<NbdConnection> connections = ConcurrentHashMap.newKeySet();
  private ServerSocket socket;
  private Thread acceptor;
  private volatile boolean closing;

  /**
   * A server offering {@code exports}; names must be unique.
   *
   * @throws IllegalArgumentException if two exports share a name or there is none
   */
  public NbdServer(List<NbdExport> exports) {
    if (exports.isEmpty()) {
      throw new IllegalArgumentException("an NBD server needs at least one export");
    }
    for (NbdExport e : exports) {
      if (this.exports.putIfAbsent(e.name(), e) != null) {
        throw new IllegalArgumentException("two exports named '" + e.name() + "'");
      }
    }
  }

  /**
   * Starts listening on {@code address} (port 0 picks a free one) and accepting clients.
   *
   * @throws IOException if it cannot listen there (e.g. {@link java.net.BindException})
   */
  public synchronized void start(InetSocketAddress address) throws IOException {
    if (socket != null) {
      throw new IllegalStateException("the NBD server is already started");
    }
    ServerSocket s = new ServerSocket();
    try {
      s.setReuseAddress(true);
      s.bind(address, 64);
    } catch (IOException e) {
      s.close();
      throw e;
    }
    socket = s;
    acceptor = new Thread(this::acceptLoop, "nbd-accept-" + s.getLocalPort());
    acceptor.setDaemon(true);
    acceptor.start();
  }

  private volatile java.util.Set<Integer> allowedUsers = java.util.Set.of();

  /**
   * On a loopback address, let these users (uids) connect besides this process's user and root;
   * nobody else may (the kernel's socket table says who connected). On any other address every
   * client is served.
   */
  public NbdServer allowUsers(java.util.Set<Integer> uids) {
    this.allowedUsers = java.util.Set.copyOf(uids);
    return this;
  }

  /** The address the server listens on; only after {@link #start}. */
  public synchronized InetSocketAddress address() {
    return (InetSocketAddress) socket.getLocalSocketAddress();
  }

  /** Connections open now. */
  public int connections() {
    return connections.size();
  }

  Map<String, NbdExport> exports() {
    return exports;
  }

  private void acceptLoop() {
    while (!closing) {
      Socket client;
      try {
        client = socket.accept();
      } catch (IOException e) {
        if (!closing) {
          LOG.warn("nbd: accept failed: {}", e.getMessage());
        }
        continue;
      }
      String refused;
      try {
        refused =
            io.granule.engine.internal.net.PeerUser.acceptRefusal(
                (InetSocketAddress) client.getRemoteSocketAddress(),
                (InetSocketAddress) client.getLocalSocketAddress(),
                allowedUsers,
                "serve with --users NAME");
      } catch (io.granule.engine.internal.net.PeerUser.Busy e) {
        closeQuietly(client); // too many lookups at once (with the API's, in this process)
        continue;
      }
      if (refused != null) {
        // a loopback export reached by every local user would let them read the whole backup
        // and write into a writable export another user runs
        LOG.warn("nbd: refusing {}: {}", client.getRemoteSocketAddress(), refused);
        closeQuietly(client);
        continue;
      }
      if (connections.size() >= MAX_CONNECTIONS) {
        LOG.warn(
            "nbd: refusing {}: {} connections already open",
            client.getRemoteSocketAddress(),
            MAX_CONNECTIONS);
        closeQuietly(client);
        continue;
      }
      NbdConnection c = new NbdConnection(this, client);
      Thread t = new Thread(c, "nbd-" + client.getRemoteSocketAddress());
      t.setDaemon(true);
      c.thread = t;
      connections.add(c);
      t.start();
    }
  }

  void finished(NbdConnection c) {
    connections.remove(c);
  }

  static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // Nothing left to do with a socket that fails to close.
    }
  }

  @Override
  public void close() throws IOException {
    Thread accepting;
    synchronized (this) {
      if (socket == null || closing) {
        return;
      }
      closing = true;
      socket.close();
      accepting = acceptor;
    }
    try {
      accepting.join(TimeUnit.SECONDS.toMillis(5));
      for (NbdConnection c : List.copyOf(connections)) {
        c.abort();
      }
      for (NbdConnection c : List.copyOf(connections)) {
        c.thread.join(TimeUnit.SECONDS.toMillis(5));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new SocketException("interrupted while closing the NBD server");
    }
  }
}
