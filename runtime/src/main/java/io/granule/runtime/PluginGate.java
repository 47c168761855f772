package io.granule.runtime;

import java.net.URI;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.osgi.framework.Bundle;
import org.osgi.framework.hooks.resolver.ResolverHook;
import org.osgi.framework.hooks.resolver.ResolverHookFactory;
import org.osgi.framework.wiring.BundleCapability;
import org.osgi.framework.wiring.BundleRequirement;
import org.osgi.framework.wiring.BundleRevision;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Lets no bundle installed from the data directory resolve (so none of its code runs) unless its
 * file passes the data directory's rules now ({@link DataDirectory#refusal}): the server's folder
 * watcher installs plugins long after the check at start, and a jar another user owned or could
 * write, moved in meanwhile, ran as the server's user. A refused bundle stays installed and is
 * listed as failed; the reason is logged once per file.
 */
final class PluginGate implements ResolverHookFactory {
  private static final Logger LOG = LoggerFactory.getLogger(PluginGate.class);

  /**
   * Service property of the {@code Function<Bundle, String>} that tells why a bundle is refused
   * (null if it is not), for the plugin inventory.
   */
  static final String PROPERTY = "granule.plugin.gate";

  private final Path data;
  private final long uid;
  private final Set<String> logged = ConcurrentHashMap.newKeySet();

  PluginGate(Path data, long uid) {
    this.data = data.toAbsolutePath().normalize();
    this.uid = uid;
  }

  @Override
  public ResolverHook begin(Collection<BundleRevision> triggers) {
    return new ResolverHook() {
      @Override
      public void filterResolvable(Collection<BundleRevision> candidates) {
        candidates.removeIf(r -> refusal(r.getBundle()) != null);
      }

      @Override
      public void filterSingletonCollisions(
          BundleCapability singleton, Collection<BundleCapability> collisionCandidates) {}

      @Override
      public void filterMatches(
          BundleRequirement requirement, Collection<BundleCapability> candidates) {}

      @Override
      public void end() {}
    };
  }

  /**
   * Why {@code b} may not resolve, or null (a bundle not from the data directory is not judged).
   */
  String refusal(Bundle b) {
    Path file = pathOf(b.getLocation());
    if (file == null || !file.startsWith(data)) {
      return null;
    }
    String why = DataDirectory.refusal(data, file, uid);
    if (why != null && logged.add(b.getLocation() + "\0" + why)) {
      LOG.error("not loading plugin {}: {}", file, why);
    }
    return why;
  }

  /** The file a bundle location names ({@code file:}, {@code reference:file:}), or null. */
  static Path pathOf(String location) {
    String loc = location.startsWith("reference:") ? location.substring(10) : location;
    if (!loc.startsWith("file:")) {
      return loc.startsWith("jardir:") ? Path.of(loc.substring(7)) : null;
    }
    try {
      return Path.of(URI.create(loc)).toAbsolutePath().normalize();
    } catch (RuntimeException e) {
      return null;
    }
  }
}
