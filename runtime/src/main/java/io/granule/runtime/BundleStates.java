package io.granule.runtime;

import java.util.List;
import java.util.stream.Collectors;
import org.osgi.framework.Bundle;

/** Human-readable bundle states, for start-up failures. */
final class BundleStates {
  private BundleStates() {}

  static String describe(List<Bundle> bundles) {
    return bundles.stream()
        .map(b -> b.getSymbolicName() + "=" + name(b.getState()))
        .collect(Collectors.joining(", "));
  }

  static String name(int state) {
    return switch (state) {
      case Bundle.INSTALLED -> "installed (unresolved)";
      case Bundle.RESOLVED -> "resolved";
      case Bundle.STARTING -> "starting";
      case Bundle.STOPPING -> "stopping";
      case Bundle.ACTIVE -> "active";
      case Bundle.UNINSTALLED -> "uninstalled";
      default -> "state " + state;
    };
  }
}
