package io.granule.engine.api;

import java.util.List;
import java.util.Objects;

/**
 * One plugin bundle: a bundle whose manifest carries the {@code Granule-Plugin} header, or any
 * bundle deployed through the plugins folder.
 *
 * @param symbolicName the bundle's symbolic name, e.g. {@code io.granule.plugin.vmdisk}
 * @param version the bundle's version
 * @param state what the operator needs to know about it
 * @param location where it was installed from ({@code file:…} for the plugins folder)
 * @param services the plugin services it provides now, e.g. {@code DiskImageFormat qcow2}
 * @param failure why it is not working, or {@code null} when it is
 */
public record PluginInfo(
    String symbolicName,
    String version,
    PluginState state,
    String location,
    List<PluginService> services,
    String failure) {

  public PluginInfo {
    Objects.requireNonNull(symbolicName, "symbolicName");
    Objects.requireNonNull(version, "version");
    Objects.requireNonNull(state, "state");
    services = List.copyOf(services);
  }

  /**
   * A service a plugin provides.
   *
   * @param type the simple name of the SPI interface, e.g. {@code DiskImageFormat}
   * @param name the service's name within that type, e.g. {@code qcow2}, or {@code null}
   */
  public record PluginService(String type, String name) {}
}
