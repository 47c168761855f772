package io.granule.engine.internal.rest;

import io.granule.engine.api.PluginInventory;
import io.granule.engine.internal.cli.Json;
import io.granule.engine.internal.image.ImageException;
import io.granule.engine.internal.image.ImageInspector;
import io.granule.engine.internal.osgi.DiskImageFormats;
import io.granule.engine.internal.plugin.PluginUnavailableException;
import jakarta.servlet.Servlet;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import org.osgi.framework.BundleContext;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The REST API under {@code /api}: JSON in, JSON out. Errors are {@code {"error": "…"}} with a
 * status that says whose fault it is (4xx: the request's, 409: a plugin changed, 5xx: ours).
 *
 * <ul>
 *   <li>{@code GET /api/version}
 *   <li>{@code GET /api/plugins}: the plugin inventory, as {@code granule plugins --json}
 *   <li>{@code GET /api/images/info?path=FILE[&format=NAME]}: as {@code granule image info --json}
 * </ul>
 */
@Component(
    service = Servlet.class,
    property = {
      "osgi.http.whiteboard.servlet.pattern=/api/*",
      "osgi.http.whiteboard.servlet.name=granule-api"
    })
public final class ApiServlet extends HttpServlet {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(ApiServlet.class);

  private final transient PluginInventory plugins;
  private final transient DiskImageFormats formats;
  private final String version;

  @Activate
  public ApiServlet(
      BundleContext context,
      @Reference PluginInventory plugins,
      @Reference DiskImageFormats formats) {
    this.plugins = plugins;
    this.formats = formats;
    this.version = context.getBundle().getVersion().toString();
  }

  @Override
  protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    String path = req.getPathInfo() == null ? "/" : req.getPathInfo();
    try {
      switch (path) {
        case "/version" -> send(resp, 200, Map.of("version", version));
        case "/plugins" -> send(resp, 200, plugins.plugins());
        case "/images/info" -> {
          String file = req.getParameter("path");
          if (file == null || file.isBlank()) {
            send(resp, 400, Map.of("error", "parameter 'path' is required"));
            return;
          }
          send(
              resp,
              200,
              new ImageInspector(formats.leases())
                  .inspect(Path.of(file), req.getParameter("format")));
        }
        default -> send(resp, 404, Map.of("error", "no such endpoint: /api" + path));
      }
    } catch (ImageException e) {
      send(resp, 422, Map.of("error", e.getMessage()));
    } catch (PluginUnavailableException e) {
      send(resp, 409, Map.of("error", e.getMessage()));
    } catch (RuntimeException e) {
      LOG.error("GET /api{} failed", path, e);
      send(resp, 500, Map.of("error", String.valueOf(e.getMessage())));
    }
  }

  private static void send(HttpServletResponse resp, int status, Object body) throws IOException {
    resp.setStatus(status);
    resp.setContentType("application/json");
    resp.setCharacterEncoding("UTF-8");
    Json.MAPPER.writeValue(resp.getOutputStream(), body);
  }
}
