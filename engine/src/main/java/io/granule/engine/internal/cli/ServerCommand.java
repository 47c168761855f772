package io.granule.engine.internal.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Files;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code granule server}: the long-running runtime with the REST API and hot plugin folder. */
@Command(
    name = "server",
    mixinStandardHelpOptions = true,
    description = {
      "Run the Granule server: the REST API on HOST:PORT and the plugin folder "
          + "DATA/plugins, watched so that dropping a bundle jar there installs and starts it, "
          + "overwriting it updates it and deleting it uninstalls it, with no restart. "
          + "Configuration files (PID.cfg, or FACTORYPID-NAME.cfg for one instance per database "
          + "or disk) dropped into DATA/config reach ConfigAdmin. Logs go to "
          + "DATA/logs/granule.log. Stop with Ctrl-C or SIGTERM."
    })
final class ServerCommand extends ContextCommand {
  /** The documented default port. */
  static final int DEFAULT_PORT = 8470;

  @Option(
      names = "--listen",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:" + DEFAULT_PORT,
      description = "Address to listen on (default: ${DEFAULT-VALUE}; port 0 picks a free port).")
  String listen;

  @Option(
      names = "--api-users",
      paramLabel = "USER[,USER]",
      description =
          "Other local users (names or uids) who may use the API. Without it only the user the"
              + " server runs as, and root, may from this host (through any of its addresses): a"
              + " job runs with the server's rights.")
  String apiUsers;

  @Override
  public Integer call() throws IOException, InterruptedException {
    CliContext ctx = context();
    if (ctx.server() == null) {
      throw new CommandException(
          ExitCodes.RUNTIME, "this runtime was not started as a server; run 'granule server'");
    }
    InetSocketAddress address = ListenAddress.parse(listen, "127.0.0.1:" + DEFAULT_PORT);
    String host = address.getHostString();
    int port = address.getPort();
    if (apiUsers != null) {
      try {
        io.granule.engine.internal.net.PeerUser.parse(apiUsers);
      } catch (IllegalArgumentException e) {
        throw new CommandException(ExitCodes.USAGE, "--api-users: " + e.getMessage());
      }
      System.setProperty(io.granule.engine.internal.rest.ApiServlet.API_USERS, apiUsers);
    }
    Files.createDirectories(ctx.dataDir().resolve("plugins"));
    Files.createDirectories(ctx.dataDir().resolve("config"));
    URI url = ctx.server().start(host, port);
    PrintWriter out = ctx.out();
    out.println("granule server listening on " + url + " (data: " + ctx.dataDir() + ")");
    out.flush();
    String exposed = ListenAddress.exposure(address.getAddress(), "the REST API");
    if (exposed != null) {
      ctx.err().println(exposed);
      ctx.err().flush();
      org.slf4j.LoggerFactory.getLogger(ServerCommand.class).warn("{}", exposed);
    }
    ctx.server().awaitStop();
    return ExitCodes.OK;
  }
}
