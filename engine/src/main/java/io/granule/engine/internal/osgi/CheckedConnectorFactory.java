package io.granule.engine.internal.osgi;

import io.granule.engine.internal.net.PeerUser;
import io.granule.engine.internal.rest.ApiServlet;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import org.apache.felix.http.jetty.ConnectorFactory;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The REST API's only connector: one that asks the kernel which local user made each connection as
 * it accepts it, before a byte of it is read, and closes another user's at once.
 *
 * <p>The check at request time ({@code ApiServlet.otherUser}) ran only once a request's headers had
 * come: another local user could hold thousands of connections that never finished them, and the
 * server ran out of descriptors (audit9 rest F3); and it judged the pair of ends Jetty reported
 * when the request was served, which another user could make root's by resetting his connection
 * while it waited to be accepted (F6, see {@link PeerUser#acceptRefusal}). Here, as in {@code
 * NbdServer}'s accept loop, the check runs on the accepting thread (one: connections are judged one
 * at a time, in the order they are accepted), and a refused connection is closed before it is
 * handed to Jetty; the request-time check stays.
 *
 * <p>Felix HTTP starts Jetty only with its own connector enabled: it is configured on port 0 of the
 * listening address, and removed (stopped) here as Felix adds this factory's connector, before
 * Felix announces the server, so it never serves the API. Its HTTP configuration (header and URI
 * limits) and idle timeout are copied to this connector.
 */
final class CheckedConnectorFactory implements ConnectorFactory {
  // not LOG: Jetty's AbstractConnector has a LOG of its own, which the connector below would see
  private static final Logger API_LOG = LoggerFactory.getLogger(CheckedConnectorFactory.class);

  private final String host;
  private final int port;
  private volatile Checked connector;

  CheckedConnectorFactory(String host, int port) {
    this.host = host;
    this.port = port;
  }

  /** The connector made last, or null. */
  Checked connector() {
    return connector;
  }

  @Override
  public Connector createConnector(Server server) {
    HttpConfiguration config = new HttpConfiguration();
    long idle = -1;
    for (Connector c : server.getConnectors()) {
      if (c instanceof Checked) {
        continue;
      }
      // Felix's own connector: its settings are kept, the connector is not
      if (c instanceof ServerConnector sc) {
        HttpConnectionFactory f = sc.getConnectionFactory(HttpConnectionFactory.class);
        if (f != null) {
          config = new HttpConfiguration(f.getHttpConfiguration());
        }
        idle = sc.getIdleTimeout();
      }
      try {
        c.stop();
      } catch (Exception e) {
        API_LOG.warn("could not stop the HTTP server's default connector: {}", e.toString());
      }
      server.removeConnector(c);
    }
    Checked c = new Checked(server, new HttpConnectionFactory(config));
    c.setHost(host);
    c.setPort(port);
    if (idle > 0) {
      c.setIdleTimeout(idle);
    }
    connector = c;
    return c;
  }

  /** A connector that refuses other local users' connections as it accepts them. */
  static final class Checked extends ServerConnector {
    private static final long LOG_EVERY_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(10);

    // the acceptor's alone (one thread)
    private long refusedSinceLog;
    private long lastLog = System.nanoTime() - LOG_EVERY_NANOS;

    Checked(Server server, HttpConnectionFactory http) {
      super(server, 1, -1, http); // one acceptor: see PeerUser.acceptRefusal
    }

    /** As ServerConnector's, with the check between the accept and the hand-over to Jetty. */
    @Override
    public void accept(int acceptorID) throws IOException {
      if (!(getTransport() instanceof ServerSocketChannel server) || !server.isOpen()) {
        return;
      }
      SocketChannel channel = server.accept();
      if (channel == null) {
        return;
      }
      String refused;
      try {
        refused = refusal(channel);
      } catch (IOException | RuntimeException e) {
        refused = "cannot tell who made the connection: " + e;
      }
      if (refused != null) {
        refusedSinceLog++;
        long now = System.nanoTime();
        if (now - lastLog >= LOG_EVERY_NANOS) {
          // at most one line per interval: a flood of connections is no flood of the log
          lastLog = now;
          API_LOG.warn(
              "REST API: closed {} connection(s) as they were accepted; the last: {}",
              refusedSinceLog,
              refused);
          refusedSinceLog = 0;
        }
        try {
          channel.close();
        } catch (IOException e) {
          // closed anyway
        }
        return;
      }
      channel.configureBlocking(false);
      configure(channel.socket());
      getSelectorManager().accept(channel);
    }

    private static String refusal(SocketChannel channel) throws IOException {
      if (!(channel.getRemoteAddress() instanceof InetSocketAddress client)
          || !(channel.getLocalAddress() instanceof InetSocketAddress local)) {
        return "not a TCP connection";
      }
      try {
        return PeerUser.acceptRefusal(
            client, local, ApiServlet.allowedUsers(), "start it with --api-users NAME");
      } catch (PeerUser.Busy e) {
        // the kernel's tables are being read for other connections: closed, not handed on to the
        // request-time check, which cannot tell whether the accepted socket is still the client's
        // (audit10 rest F2: a user who kept the cap busy had his reset request judged as root's)
        return e.getMessage();
      }
    }
  }
}
