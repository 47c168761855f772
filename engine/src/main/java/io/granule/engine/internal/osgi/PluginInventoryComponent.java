package io.granule.engine.internal.osgi;

import io.granule.engine.api.PluginInfo;
import io.granule.engine.api.PluginInfo.PluginService;
import io.granule.engine.api.PluginInventory;
import io.granule.engine.api.PluginState;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.Constants;
import org.osgi.framework.ServiceReference;
import org.osgi.framework.namespace.PackageNamespace;
import org.osgi.framework.wiring.BundleRevision;
import org.osgi.framework.wiring.FrameworkWiring;
import org.osgi.resource.Namespace;
import org.osgi.resource.Requirement;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicyOption;
import org.osgi.service.component.runtime.ServiceComponentRuntime;
import org.osgi.service.component.runtime.dto.ComponentConfigurationDTO;
import org.osgi.service.component.runtime.dto.ComponentDescriptionDTO;

/**
 * The plugin inventory, read from the framework on each call.
 *
 * <p>A plugin is a bundle with a {@code Granule-Plugin} manifest header or one installed from the
 * plugins folder. Failure reasons come from the framework itself: unresolved requirements for a
 * bundle that cannot resolve, the start exception for a bundle whose activator throws, and
 * Declarative Services' failure text for a component whose activation throws.
 */
@Component(service = PluginInventory.class)
public final class PluginInventoryComponent implements PluginInventory {
  static final String PLUGIN_HEADER = "Granule-Plugin";
  private static final String SPI_PACKAGE = "io.granule.engine.spi.";

  private final BundleContext context;
  private final Path pluginsDir;
  private final DiskImageFormats formats;

  /** Start failures by bundle id and last-modified time, so each version is tried once. */
  private final Map<String, String> startFailures = new ConcurrentHashMap<>();

  @Reference(
      cardinality = ReferenceCardinality.OPTIONAL,
      policyOption = ReferencePolicyOption.GREEDY)
  volatile ServiceComponentRuntime scr;

  @Activate
  public PluginInventoryComponent(BundleContext context, @Reference DiskImageFormats formats) {
    this.context = context;
    this.formats = formats;
    this.pluginsDir = RuntimeProperties.dataDir(context).resolve("plugins");
  }

  @Override
  public List<PluginInfo> plugins() {
    List<PluginInfo> out = new ArrayList<>();
    for (Bundle b : context.getBundles()) {
      if (isPlugin(b)) {
        out.add(describe(b));
      }
    }
    out.sort(Comparator.comparing(PluginInfo::symbolicName).thenComparing(PluginInfo::version));
    return out;
  }

  boolean isPlugin(Bundle b) {
    if (b.getBundleId() == 0) {
      return false;
    }
    if (b.getHeaders("").get(PLUGIN_HEADER) != null) {
      return true;
    }
    Path p = pathOf(b.getLocation());
    return p != null && p.startsWith(pluginsDir);
  }

  static Path pathOf(String location) {
    String loc = location.startsWith("reference:") ? location.substring(10) : location;
    if (!loc.startsWith("file:")) {
      return null;
    }
    try {
      return Path.of(URI.create(loc)).toAbsolutePath().normalize();
    } catch (RuntimeException e) {
      return null;
    }
  }

  private PluginInfo describe(Bundle b) {
    String bsn = b.getSymbolicName() == null ? "(no symbolic name)" : b.getSymbolicName();
    String version = b.getVersion().toString();
    List<PluginService> services = services(b);
    PluginState state;
    String failure = null;
    boolean fragment = b.getHeaders("").get(Constants.FRAGMENT_HOST) != null;
    switch (b.getState()) {
      case Bundle.INSTALLED -> {
        // Just installed (the plugin folder's watcher starts it next) or unresolvable: asking
        // why resolves it if it can be, and then it has not failed (yet).
        failure = unresolvedReason(b);
        state = failure == null ? stateOf(b) : PluginState.FAILED;
      }
      case Bundle.RESOLVED -> {
        if (fragment) {
          state = PluginState.RESOLVED;
        } else {
          failure = startFailure(b);
          state = failure == null ? stateOf(b) : PluginState.FAILED;
        }
      }
      case Bundle.STARTING -> state = PluginState.STARTING;
      case Bundle.STOPPING -> state = PluginState.STOPPING;
      case Bundle.ACTIVE -> {
        failure = componentFailure(b);
        state = failure == null ? PluginState.ACTIVE : PluginState.FAILED;
      }
      default -> state = PluginState.INSTALLED;
    }
    return new PluginInfo(bsn, version, state, b.getLocation(), services, failure);
  }

  private static PluginState stateOf(Bundle b) {
    return switch (b.getState()) {
      case Bundle.ACTIVE -> PluginState.ACTIVE;
      case Bundle.STARTING -> PluginState.STARTING;
      case Bundle.STOPPING -> PluginState.STOPPING;
      case Bundle.RESOLVED -> PluginState.RESOLVED;
      default -> PluginState.INSTALLED;
    };
  }

  private List<PluginService> services(Bundle b) {
    ServiceReference<?>[] refs = b.getRegisteredServices();
    List<PluginService> out = new ArrayList<>();
    if (refs == null) {
      return out;
    }
    for (ServiceReference<?> ref : refs) {
      String[] classes = (String[]) ref.getProperty(Constants.OBJECTCLASS);
      for (String c : classes) {
        if (c.startsWith(SPI_PACKAGE)) {
          long id = (Long) ref.getProperty(Constants.SERVICE_ID);
          String name = formats.nameOf(id);
          out.add(new PluginService(c.substring(SPI_PACKAGE.length()), name));
        }
      }
    }
    out.sort(
        Comparator.comparing(PluginService::type)
            .thenComparing(s -> s.name() == null ? "" : s.name()));
    return out;
  }

  /** Why a bundle does not resolve: its mandatory requirements nothing provides. */
  private String unresolvedReason(Bundle b) {
    FrameworkWiring fw = context.getBundle(0).adapt(FrameworkWiring.class);
    fw.resolveBundles(List.of(b));
    if (b.getState() != Bundle.INSTALLED) {
      return null;
    }
    String refused = gateRefusal(b);
    if (refused != null) {
      return "refused: " + refused;
    }
    BundleRevision rev = b.adapt(BundleRevision.class);
    if (rev == null) {
      return "not installed";
    }
    List<String> missing = new ArrayList<>();
    for (Requirement r : rev.getRequirements(null)) {
      String resolution = r.getDirectives().get(Namespace.REQUIREMENT_RESOLUTION_DIRECTIVE);
      String effective = r.getDirectives().get(Namespace.REQUIREMENT_EFFECTIVE_DIRECTIVE);
      if (Namespace.RESOLUTION_OPTIONAL.equals(resolution)
          || (effective != null && !Namespace.EFFECTIVE_RESOLVE.equals(effective))) {
        continue;
      }
      if (fw.findProviders(r).isEmpty()) {
        String filter = r.getDirectives().get(Namespace.REQUIREMENT_FILTER_DIRECTIVE);
        String what =
            PackageNamespace.PACKAGE_NAMESPACE.equals(r.getNamespace())
                ? "package " + filter
                : r.getNamespace() + " " + filter;
        missing.add(what);
      }
    }
    if (missing.isEmpty()) {
      return "unresolved: its requirements exist but do not fit together (a uses constraint);"
          + " see the log";
    }
    return "unresolved: missing requirement " + String.join("; ", missing);
  }

  /**
   * Why the launcher's plugin gate (which lets no plugin from the data directory resolve unless its
   * file is owned by root or this user and writable by no one else) refuses {@code b}, or null.
   */
  private String gateRefusal(Bundle b) {
    try {
      return LauncherChecks.refusal(context, LauncherChecks.PLUGIN_GATE, b);
    } catch (RuntimeException e) {
      return null; // it failed: the generic reason below
    }
  }

  /** Why a resolved bundle did not start, trying it once per bundle version. */
  private String startFailure(Bundle b) {
    String key = b.getBundleId() + "@" + b.getLastModified();
    String known = startFailures.get(key);
    if (known != null) {
      return known;
    }
    try {
      b.start(Bundle.START_TRANSIENT);
      return null;
    } catch (BundleException | RuntimeException e) {
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      String reason = "failed to start: " + cause;
      startFailures.put(key, reason);
      return reason;
    }
  }

  /** Declarative Services components of the bundle that failed to activate. */
  private String componentFailure(Bundle b) {
    ServiceComponentRuntime s = scr;
    if (s == null) {
      return null;
    }
    List<String> failures = new ArrayList<>();
    for (ComponentDescriptionDTO d : s.getComponentDescriptionDTOs(b)) {
      for (ComponentConfigurationDTO c : s.getComponentConfigurationDTOs(d)) {
        if (c.state == ComponentConfigurationDTO.FAILED_ACTIVATION) {
          failures.add("component " + d.name + " failed to activate: " + firstLine(c.failure));
        }
      }
    }
    return failures.isEmpty() ? null : String.join("; ", failures);
  }

  private static String firstLine(String s) {
    if (s == null) {
      return "(no reason given)";
    }
    int nl = s.indexOf('\n');
    return (nl < 0 ? s : s.substring(0, nl)).trim();
  }
}
