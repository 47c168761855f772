package io.granule.engine.internal.cli;

import io.granule.engine.api.PluginInventory;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.FileSystemType;
import io.granule.engine.spi.SnapshotProvider;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * What commands need from the runtime. Built by the OSGi wiring in the real runtime, by hand in
 * tests.
 *
 * @param plugins the plugin inventory
 * @param formats the disk image formats plugins provide
 * @param snapshotProviders the snapshot providers (fsfreeze, none, plugins')
 * @param fileSystems the filesystem types plugins provide (ext4, xfs, ntfs)
 * @param applications the application plugins (postgres, mysql, ...)
 * @param server starts the HTTP API (only in a {@code granule server} process)
 * @param dataDir the data directory (plugins, configuration, logs)
 * @param version the product version
 * @param out standard output
 * @param err standard error
 * @param env the environment ({@code GRANULE_PASSWORD}, ...)
 * @param terminal where passwords are asked interactively
 */
public record CliContext(
    PluginInventory plugins,
    PluginLeases<DiskImageFormat> formats,
    PluginLeases<SnapshotProvider> snapshotProviders,
    PluginLeases<FileSystemType> fileSystems,
    PluginLeases<ApplicationPlugin> applications,
    ServerControl server,
    Path dataDir,
    String version,
    PrintWriter out,
    PrintWriter err,
    Function<String, String> env,
    Terminal terminal) {

  /** A context with the process environment and console. */
  public CliContext(
      PluginInventory plugins,
      PluginLeases<DiskImageFormat> formats,
      PluginLeases<SnapshotProvider> snapshotProviders,
      PluginLeases<FileSystemType> fileSystems,
      PluginLeases<ApplicationPlugin> applications,
      ServerControl server,
      Path dataDir,
      String version,
      PrintWriter out,
      PrintWriter err) {
    this(
        plugins,
        formats,
        snapshotProviders,
        fileSystems,
        applications,
        server,
        dataDir,
        version,
        out,
        err,
        System::getenv,
        Terminal.system());
  }
}
