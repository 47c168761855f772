package io.granule.engine.internal.cli;

import com.fasterxml.jackson.core.type.TypeReference;
import io.granule.engine.api.PluginInfo;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code granule plugins}: lists plugin bundles, here or in a running server. */
@Command(
    name = "plugins",
    mixinStandardHelpOptions = true,
    description = {
      "List plugin bundles: name, version, state, the services each provides, and why a "
          + "failed one failed. Without --server, lists the plugins this installation loads "
          + "(built-in ones and those in DATA/plugins)."
    })
final class PluginsCommand extends ContextCommand {

  @Option(
      names = "--server",
      paramLabel = "URL",
      description = "Ask a running granule server, e.g. http://127.0.0.1:8470")
  URI server;

  @Option(names = "--json", description = "Print JSON instead of a table.")
  boolean json;

  @Override
  public Integer call() throws IOException, InterruptedException {
    List<PluginInfo> plugins = server == null ? context().plugins().plugins() : fetch(server);
    PrintWriter out = context().out();
    if (json) {
      out.println(Json.MAPPER.writeValueAsString(plugins));
    } else {
      printTable(out, plugins);
    }
    out.flush();
    return ExitCodes.OK;
  }

  static List<PluginInfo> fetch(URI server) throws IOException, InterruptedException {
    URI uri = server.resolve("/api/plugins");
    HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    HttpResponse<String> resp;
    try {
      resp =
          client.send(
              HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30)).GET().build(),
              HttpResponse.BodyHandlers.ofString());
    } catch (ConnectException e) {
      throw new CommandException(
          ExitCodes.SERVER,
          "no granule server answers at " + server + ": is it running? (granule server)",
          e);
    }
    if (resp.statusCode() != 200) {
      throw new CommandException(
          ExitCodes.SERVER, "server " + uri + " answered HTTP " + resp.statusCode());
    }
    return Json.MAPPER.readValue(resp.body(), new TypeReference<List<PluginInfo>>() {});
  }

  static void printTable(PrintWriter out, List<PluginInfo> plugins) {
    if (plugins.isEmpty()) {
      out.println("no plugins");
      return;
    }
    int w = Math.max(6, plugins.stream().mapToInt(p -> p.symbolicName().length()).max().orElse(0));
    String fmt = "%-" + w + "s  %-22s  %-9s  %s%n";
    out.printf(Locale.ROOT, fmt, "PLUGIN", "VERSION", "STATE", "SERVICES");
    for (PluginInfo p : plugins) {
      String services =
          p.services().isEmpty()
              ? "-"
              : p.services().stream()
                  .map(s -> s.name() == null ? s.type() : s.type() + " " + s.name())
                  .collect(Collectors.joining(", "));
      out.printf(
          Locale.ROOT,
          fmt,
          p.symbolicName(),
          p.version(),
          p.state().name().toLowerCase(Locale.ROOT),
          services);
      if (p.failure() != null) {
        out.printf(Locale.ROOT, "%" + w + "s  failure: %s%n", "", p.failure());
      }
    }
  }
}
