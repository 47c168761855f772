package io.granule.engine.internal.osgi;

import io.granule.engine.api.PluginInventory;
import io.granule.engine.internal.cli.Cli;
import io.granule.engine.internal.cli.CliContext;
import io.granule.engine.internal.image.FsFreeze;
import io.granule.engine.internal.repo.crypto.PrederivedKeys;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.Charset;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.service.cm.ConfigurationAdmin;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Deactivate;
import org.osgi.service.component.annotations.Reference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The command-line entry point the launcher calls: a {@code Function<String[], Integer>} service
 * with {@code granule.main=true}, run on the launcher's main thread.
 *
 * <p>In a one-shot command the plugins folder is installed synchronously first, so the command sees
 * the same plugins the server would; in the server, FileInstall watches the folder instead.
 */
@Component(service = Function.class, property = "granule.main=true", immediate = true)
public final class CliComponent implements Function<String[], Integer> {
  private static final Logger LOG = LoggerFactory.getLogger(CliComponent.class);

  private final BundleContext context;
  private final PluginInventory plugins;
  private final DiskImageFormats formats;
  private final SnapshotProviders snapshotProviders;
  private final FileSystemTypes fileSystems;
  private final ApplicationPlugins applications;
  private final HttpServerControl server;

  /** The start-up warm-up's thread (one-shot commands), waited for on deactivation; or null. */
  private final Thread warmup;

  @Activate
  public CliComponent(
      BundleContext context,
      @Reference PluginInventory plugins,
      @Reference DiskImageFormats formats,
      @Reference SnapshotProviders snapshotProviders,
      @Reference FileSystemTypes fileSystems,
      @Reference ApplicationPlugins applications,
      @Reference ConfigurationAdmin configAdmin) {
    this.context = context;
    this.plugins = plugins;
    this.formats = formats;
    this.snapshotProviders = snapshotProviders;
    this.fileSystems = fileSystems;
    this.applications = applications;
    this.server =
        RuntimeProperties.server(context) ? new HttpServerControl(context, configAdmin) : null;
    this.warmup = server == null ? StartupWarmup.start() : null;
  }

  @Deactivate
  void deactivate() {
    StartupWarmup.await(warmup);
    if (server != null) {
      server.stopped();
    }
  }

  @Override
  public Integer apply(String[] args) {
    // A granule process killed while it held a freeze left the filesystem frozen: thaw it.
    FsFreeze.thawStale();
    Path data = RuntimeProperties.dataDir(context);
    if (!RuntimeProperties.server(context)) {
      installPluginFolder(data.resolve("plugins"));
    }
    Charset cs = Charset.defaultCharset();
    PrintWriter out = new PrintWriter(new OutputStreamWriter(System.out, cs), true);
    PrintWriter err = new PrintWriter(new OutputStreamWriter(System.err, cs), true);
    String version = context.getBundle().getVersion().toString();
    CliContext ctx =
        new CliContext(
            plugins,
            formats.leases(),
            snapshotProviders.leases(),
            fileSystems.leases(),
            applications.leases(),
            server,
            data,
            version,
            out,
            err);
    try {
      return new Cli(ctx).run(args);
    } finally {
      PrederivedKeys.forget();
    }
  }

  private void installPluginFolder(Path dir) {
    if (!Files.isDirectory(dir)) {
      return;
    }
    List<Bundle> installed = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.jar")) {
      for (Path jar : ds) {
        try {
          installed.add(context.installBundle(jar.toUri().toString()));
        } catch (BundleException e) {
          LOG.warn("plugin {} cannot be installed: {}", jar, e.getMessage());
        }
      }
    } catch (IOException e) {
      LOG.warn("unable to read the plugins folder {}: {}", dir, e.toString());
    }
    for (Bundle b : installed) {
      if (b.getHeaders("").get(org.osgi.framework.Constants.FRAGMENT_HOST) == null) {
        try {
          b.start(Bundle.START_TRANSIENT);
        } catch (BundleException e) {
          LOG.warn("plugin {} failed to start: {}", b.getSymbolicName(), e.getMessage());
        }
      }
    }
  }
}
