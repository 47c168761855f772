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
 * Lets a bundle resolve (so that its code runs) only if it is one of granule's own (the runtime's
 * bundle cache, checked at start) or a jar of the data directory's {@code plugins/} that passes the
 * data directory's rules now ({@link DataDirectory#refusal}): the server's folder watcher installs
 * plugins long after the check at start, and a jar another user owned or could write, moved in
 * meanwhile, ran as the server's user. Any other bundle is refused too, wherever it comes from: a
 * folder watcher configured by a refused settings file (its values stripped) watched FileInstall's
 * default {@code ./load}, in the server's working directory, and started what another user put
 * there. A refused bundle stays installed and is listed as failed; the reason is logged once per
 * file.
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
  private final Set<Path> own;
  private final Set<String> logged = ConcurrentHashMap.newKeySet();

  /**
   * A gate for data directory {@code data} of user {@code uid}, letting granule's own bundles
   * {@code own} (the runtime's, as installed by the launcher) resolve.
   */
  PluginGate(Path data, long uid, Collection<Path> own) {
    this.data = data.toAbsolutePath().normalize();
    this.uid = uid;
    this.own =
        own.stream()
            .map(p -> p.toAbsolutePath().normalize())
            .collect(java.util.stream.Collectors.toUnmodifiableSet());
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

  /** Why {@code b} may not resolve, or null. */
  String refusal(Bundle b) {
    if (b.getBundleId() == 0) {
      return null; // the framework itself
    }
    Path file = pathOf(b.getLocation());
    if (file != null && own.contains(file)) {
      return null;
    }
    String why =
        file != null && file.startsWith(data)
            ? DataDirectory.refusal(data, file, uid)
            : "it is not one of granule's own bundles nor a jar of "
                + data.resolve("plugins")
                + " (installed from "
                + b.getLocation()
                + "): plugins load from there only";
    if (why != null && logged.add(b.getLocation() + "\0" + why)) {
      LOG.error("not loading plugin {}: {}", file != null ? file : b.getLocation(), why);
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
