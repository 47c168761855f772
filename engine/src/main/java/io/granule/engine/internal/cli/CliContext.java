package io.granule.engine.internal.cli;

import io.granule.engine.api.PluginInventory;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.FileSystemType;
import io.granule.engine.spi.SnapshotProvider;
import java.io.PrintWriter;
import java.nio.file.Path;

/**
 * What commands need from the runtime. Built by the OSGi wiring in the real runtime, by hand in
 * tests.
 *
 * @param plugins the plugin inventory
 * @param formats the disk image formats plugins provide
 * @param snapshotProviders the snapshot providers (fsfreeze, none, plugins')
 * @param fileSystems the filesystem types plugins provide (ext4, xfs, ntfs)
 * @param server starts the HTTP API (only in a {@code granule server} process)
 * @param dataDir the data directory (plugins, configuration, logs)
 * @param version the product version
 * @param out standard output
 * @param err standard error
 */
public record CliContext(
    PluginInventory plugins,
    PluginLeases<DiskImageFormat> formats,
    PluginLeases<SnapshotProvider> snapshotProviders,
    PluginLeases<FileSystemType> fileSystems,
    ServerControl server,
    Path dataDir,
    String version,
    PrintWriter out,
    PrintWriter err) {}
