package io.granule.engine.internal.osgi;

import io.granule.engine.internal.cli.CommandException;
import io.granule.engine.internal.cli.ExitCodes;
import io.granule.engine.internal.cli.ServerControl;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.util.Dictionary;
import java.util.Hashtable;
import java.util.concurrent.CountDownLatch;
import org.osgi.framework.BundleContext;
import org.osgi.framework.InvalidSyntaxException;
import org.osgi.service.cm.Configuration;
import org.osgi.service.cm.ConfigurationAdmin;

/**
 * Starts Felix HTTP (Jetty) on the requested address through ConfigAdmin and waits until the REST
 * API answers.
 *
 * <p>The launcher starts the HTTP bundle disabled; this class registers the API's connector ({@link
 * CheckedConnectorFactory}: it binds the host and port of {@code --listen} and closes other local
 * users' connections as it accepts them), enables the bundle, reads the port the connector actually
 * bound (for port 0), waits until the HTTP runtime announces it ({@code osgi.http.endpoint}), then
 * polls {@code /api/version} until the whiteboard serves it.
 */
final class HttpServerControl implements ServerControl {
  static final String HTTP_PID = "org.apache.felix.http";
  private static final String RUNTIME_FILTER =
      "(&(objectClass=org.osgi.service.servlet.runtime.HttpServiceRuntime)(osgi.http.endpoint=*))";
  private static final Duration START_TIMEOUT = Duration.ofSeconds(20);

  private final BundleContext context;
  private final ConfigurationAdmin configAdmin;
  private final CountDownLatch stopped = new CountDownLatch(1);

  HttpServerControl(BundleContext context, ConfigurationAdmin configAdmin) {
    this.context = context;
    this.configAdmin = configAdmin;
  }

  @Override
  public URI start(String host, int port) {
    if (port != 0) {
      try (ServerSocket probe = new ServerSocket()) {
        probe.setReuseAddress(true);
        probe.bind(new InetSocketAddress(host, port));
      } catch (IOException e) {
        throw new CommandException(
            ExitCodes.SERVER,
            "unable to listen on "
                + host
                + ":"
                + port
                + ": "
                + e.getMessage()
                + "; choose another address with --listen HOST:PORT (port 0 picks a free one)");
      }
    }
    // the API's connector, which checks who made each connection as it accepts it; Felix's own
    // (which Felix needs enabled to start Jetty at all) is put on port 0 and removed by it
    CheckedConnectorFactory connectors = new CheckedConnectorFactory(host, port);
    context.registerService(
        org.apache.felix.http.jetty.ConnectorFactory.class, connectors, new Hashtable<>());
    try {
      Configuration c = configAdmin.getConfiguration(HTTP_PID, "?");
      Dictionary<String, Object> props = new Hashtable<>();
      props.put("org.apache.felix.http.enable", Boolean.TRUE);
      props.put("org.apache.felix.https.enable", Boolean.FALSE);
      props.put("org.apache.felix.http.host", host);
      props.put("org.osgi.service.http.port", 0);
      c.update(props);
    } catch (IOException e) {
      throw new CommandException(
          ExitCodes.SERVER, "unable to configure the HTTP server: " + e.getMessage(), e);
    }
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    int bound = -1;
    while (System.nanoTime() < deadline) {
      CheckedConnectorFactory.Checked checked = connectors.connector();
      if (checked != null && checked.isFailed()) {
        break;
      }
      bound = checked != null && checked.isStarted() ? checked.getLocalPort() : -1;
      if (bound > 0 && runtimeUp()) {
        break;
      }
      bound = -1;
      sleep();
    }
    if (bound <= 0) {
      throw new CommandException(
          ExitCodes.SERVER,
          "the HTTP server did not start on "
              + host
              + ":"
              + port
              + " within "
              + START_TIMEOUT.toSeconds()
              + " s; see DATA/logs/granule.log");
    }
    String h = host.contains(":") ? "[" + host + "]" : host;
    URI base = URI.create("http://" + h + ":" + bound + "/");
    awaitApi(base, deadline);
    return base;
  }

  /** Whether the HTTP runtime is announced (the whiteboard then registers the API). */
  private boolean runtimeUp() {
    try {
      return context.getAllServiceReferences(null, RUNTIME_FILTER) != null;
    } catch (InvalidSyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * Waits until {@code base} answers {@code /api/version} with 200. A wildcard address (0.0.0.0,
   * ::) is probed on loopback, which the API serves under that name. Each probe is one request on a
   * connection closed at once: a kept-alive probe of root's stayed open for a minute, a socket
   * other users could pose as.
   */
  private static void awaitApi(URI base, long deadline) {
    String host = base.getHost();
    String bare = host.startsWith("[") ? host.substring(1, host.length() - 1) : host;
    String probeHost;
    try {
      java.net.InetAddress a = java.net.InetAddress.getByName(bare);
      probeHost =
          a.isAnyLocalAddress() ? (a instanceof java.net.Inet6Address ? "::1" : "127.0.0.1") : bare;
    } catch (IOException e) {
      probeHost = bare;
    }
    String hostHeader =
        (probeHost.contains(":") ? "[" + probeHost + "]" : probeHost) + ":" + base.getPort();
    while (System.nanoTime() < deadline) {
      try (java.net.Socket s = new java.net.Socket()) {
        s.connect(new java.net.InetSocketAddress(probeHost, base.getPort()), 2000);
        s.setSoTimeout(2000);
        s.getOutputStream()
            .write(
                ("GET /api/version HTTP/1.1\r\nHost: "
                        + hostHeader
                        + "\r\nConnection: close\r\n\r\n")
                    .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        byte[] head = s.getInputStream().readNBytes(12); // "HTTP/1.1 200"
        if (new String(head, java.nio.charset.StandardCharsets.US_ASCII).endsWith(" 200")) {
          return;
        }
      } catch (IOException e) {
        // not listening yet
      }
      sleep();
    }
    throw new CommandException(
        ExitCodes.SERVER,
        "the REST API did not come up at " + base.resolve("/api/version") + "; see the log");
  }

  private static void sleep() {
    try {
      Thread.sleep(50);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void awaitStop() throws InterruptedException {
    stopped.await();
  }

  void stopped() {
    stopped.countDown();
  }
}
