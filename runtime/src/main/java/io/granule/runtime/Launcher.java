package io.granule.runtime;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.Constants;
import org.osgi.framework.Filter;
import org.osgi.framework.FrameworkUtil;
import org.osgi.framework.InvalidSyntaxException;
import org.osgi.framework.launch.Framework;
import org.osgi.framework.launch.FrameworkFactory;
import org.osgi.util.tracker.ServiceTracker;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Starts Apache Felix with the embedded run bundles, waits for the engine's command-line service
 * and runs the command on the calling thread.
 *
 * <p>Every process gets its own framework storage in a temporary directory, so several granule
 * commands (two backups, a restore and the server) run side by side without sharing OSGi state.
 * Bundles are installed by reference from the extracted bundle cache, which keeps start-up well
 * under a second.
 */
final class Launcher {
  /** Service property that marks the engine's command-line entry point. */
  static final String MAIN_PROPERTY = "granule.main";

  /** Bundles started only by {@code granule server}: HTTP and the plugin folder watcher. */
  static final List<String> SERVER_ONLY =
      List.of("org.apache.felix.http.jetty12", "org.apache.felix.fileinstall");

  static final String ENGINE = "io.granule.engine";

  private static final long MAIN_SERVICE_TIMEOUT_MS = 30_000;
  private static final long STOP_TIMEOUT_MS = 30_000;

  /**
   * System property a command sets (to {@code true}) when it ends by itself on SIGTERM, as {@code
   * serve nbd} does (its own shutdown hook releases it, and it then closes its repository and
   * overlays): the shutdown hook then lets it finish, up to {@link #STOP_TIMEOUT_MS}, before it
   * stops the framework. Stopped under it, the command's bundles lose their class loaders while it
   * still runs: a class it loads first on the way out (the index's {@code Unmapper} on close) was a
   * {@code NoClassDefFoundError}, and a kept overlay's map could be left unsaved.
   */
  static final String AWAIT_COMMAND_PROPERTY = "granule.stop.awaits.command";

  private final LaunchOptions options;

  /** Set by the shutdown hook (SIGTERM, SIGINT, SIGHUP): the JVM is exiting. */
  private volatile boolean signalled;

  /** Counted down when the command returns (or fails). */
  private final java.util.concurrent.CountDownLatch commandDone =
      new java.util.concurrent.CountDownLatch(1);

  Launcher(LaunchOptions options) {
    this.options = options;
  }

  int run() throws LaunchException {
    StartupTrace.begin();
    ParentWatch.start();
    // before anything is read from it or written to it: its plugins run as this user
    DataDirectory.check(options.dataDir(), LaunchOptions.uid());
    Logging.configure(options);
    // Logback's configuration (~45 ms of CPU: pattern parsing, the rolling file's date formats)
    // runs on the other core while this thread locates the bundles and starts Felix, none of
    // which logs; it is awaited before anything asks for a logger (PluginGate's, below).
    Thread logging = Logging.initialize();
    StartupTrace.mark("logging");
    BundleCache cache = BundleCache.locate();
    List<Path> bundles = cache.bundles();
    StartupTrace.mark("bundle cache");
    FrameworkStorage storage = FrameworkStorage.create();
    StartupTrace.mark("framework storage");
    // Felix cleans its storage on first init: keep it below the directory that holds the owner lock
    Framework framework = newFramework(frameworkProperties(storage.dir().resolve("felix")));
    StartupTrace.mark("new framework");
    Thread shutdownHook = new Thread(() -> stopOnSignal(framework), "granule-shutdown");
    Runtime.getRuntime().addShutdownHook(shutdownHook);
    try {
      framework.start();
      Logging.await(logging);
      // before any plugin can resolve: what the folder watcher installs later is checked too
      PluginGate gate = new PluginGate(options.dataDir(), LaunchOptions.uid(), bundles);
      framework
          .getBundleContext()
          .registerService(org.osgi.framework.hooks.resolver.ResolverHookFactory.class, gate, null);
      // and says why, for the plugin inventory
      framework
          .getBundleContext()
          .registerService(
              java.util.function.Function.class,
              (java.util.function.Function<Bundle, String>) gate::refusal,
              new java.util.Hashtable<>(java.util.Map.of(PluginGate.PROPERTY, true)));
      // and a setting file's, for the engine's configuration gate
      framework
          .getBundleContext()
          .registerService(
              java.util.function.Function.class,
              (java.util.function.Function<Path, String>)
                  f -> DataDirectory.refusal(options.dataDir(), f, LaunchOptions.uid()),
              new java.util.Hashtable<>(java.util.Map.of("granule.data.file.check", true)));
      StartupTrace.mark("framework start");
      Logger log = LoggerFactory.getLogger(Launcher.class);
      List<Bundle> installed = install(framework.getBundleContext(), bundles, log);
      StartupTrace.mark("install");
      startAll(installed, log);
      StartupTrace.mark("start bundles");
      checkEngine(installed);
      Function<String[], Integer> main = awaitMain(framework.getBundleContext(), installed);
      StartupTrace.mark("await main");
      if (cache.root() != null && options.server()) {
        Thread t = new Thread(() -> CachePruner.run(cache.root()), "granule-cache-prune");
        t.setDaemon(true);
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
      }
      Integer code;
      try {
        code = main.apply(options.args().toArray(String[]::new));
      } finally {
        commandDone.countDown();
      }
      StartupTrace.mark("command");
      if (cache.root() != null && !options.server()) {
        CachePruner.run(cache.root()); // a stat or two; deletes at most once a day
        StartupTrace.mark("cache prune");
      }
      return code == null ? 0 : code;
    } catch (BundleException e) {
      if (signalled) {
        return SIGNALLED;
      }
      throw new LaunchException("unable to start the OSGi framework: " + e.getMessage(), e);
    } catch (RuntimeException | Error | LaunchException e) {
      if (signalled) {
        // the framework was stopped under the command (a signal during start-up, or a command
        // that does not end by itself on one): what failed is the teardown's doing, not news
        return SIGNALLED;
      }
      throw e;
    } finally {
      stop(framework);
      StartupTrace.mark("framework stop");
      storage.close();
      StartupTrace.mark("storage close");
      StartupTrace.print();
      try {
        Runtime.getRuntime().removeShutdownHook(shutdownHook);
      } catch (IllegalStateException shuttingDown) {
        // The JVM is already shutting down (SIGTERM): the hook runs anyway.
      }
    }
  }

  private Map<String, String> frameworkProperties(Path storage) {
    Map<String, String> p = new HashMap<>();
    p.put(Constants.FRAMEWORK_STORAGE, storage.toString());
    p.put(Constants.FRAMEWORK_STORAGE_CLEAN, Constants.FRAMEWORK_STORAGE_CLEAN_ONFIRSTINIT);
    p.put(Constants.FRAMEWORK_SYSTEMPACKAGES_EXTRA, Logging.exportedPackages());
    // Bundles find the data directory through this property (plugins, configuration, logs).
    p.put("granule.data", options.dataDir().toString());
    p.put("granule.mode", options.server() ? "server" : "cli");
    if (!options.server()) {
      // The command line, NUL-separated, for work the engine starts before the command runs (an
      // encrypted repository's key derivation).
      p.put("granule.cli.args", String.join("\0", options.args()));
    }
    // HTTP listens on loopback only, and only when `granule server` configures a port.
    p.put("org.apache.felix.http.host", "127.0.0.1");
    p.put("org.apache.felix.http.enable", "false");
    p.put("org.apache.felix.https.enable", "false");
    if (options.server()) {
      Path plugins = options.dataDir().resolve("plugins");
      Path config = options.dataDir().resolve("config");
      p.put("felix.fileinstall.dir", plugins + "," + config);
      // files only: a subdirectory was installed as an exploded bundle ("jar" mode, the default)
      // though the data directory's check skips subdirectories
      p.put("felix.fileinstall.subdir.mode", "skip");
      p.put("felix.fileinstall.filter", ".*\\.(jar|cfg|config)");
      p.put("felix.fileinstall.poll", "500");
      p.put("felix.fileinstall.noInitialDelay", "true");
      p.put("felix.fileinstall.bundles.new.start", "true");
      p.put("felix.fileinstall.bundles.startTransient", "true");
      p.put("felix.fileinstall.log.default", "slf4j");
      p.put("felix.fileinstall.tmpdir", storage.resolve("fileinstall").toString());
    }
    p.put("felix.log.level", "1");
    return p;
  }

  private static Framework newFramework(Map<String, String> properties) throws LaunchException {
    FrameworkFactory factory =
        ServiceLoader.load(FrameworkFactory.class, Launcher.class.getClassLoader())
            .findFirst()
            .orElseThrow(
                () -> new LaunchException("no OSGi framework on the class path: rebuild granule"));
    return factory.newFramework(properties);
  }

  private List<Bundle> install(BundleContext context, List<Path> bundles, Logger log)
      throws LaunchException {
    List<Bundle> installed = new ArrayList<>();
    for (Path jar : bundles) {
      try {
        installed.add(context.installBundle("reference:" + jar.toUri()));
      } catch (BundleException e) {
        throw new LaunchException("unable to install bundle " + jar + ": " + e.getMessage(), e);
      }
    }
    log.debug("installed {} bundles", installed.size());
    return installed;
  }

  private void startAll(List<Bundle> installed, Logger log) {
    for (Bundle b : installed) {
      boolean fragment = b.getHeaders().get(Constants.FRAGMENT_HOST) != null;
      if (fragment || (!options.server() && SERVER_ONLY.contains(b.getSymbolicName()))) {
        continue;
      }
      try {
        b.start(Bundle.START_TRANSIENT);
        StartupTrace.detail(b.getSymbolicName());
      } catch (BundleException e) {
        // One broken bundle must not take the runtime down: the engine reports it as failed.
        log.error("bundle {} failed to start: {}", b.getSymbolicName(), e.getMessage());
      }
    }
  }

  /** Fails at once, with the framework's reason, when the engine bundle did not start. */
  private static void checkEngine(List<Bundle> installed) throws LaunchException {
    for (Bundle b : installed) {
      if (ENGINE.equals(b.getSymbolicName()) && b.getState() != Bundle.ACTIVE) {
        String reason;
        try {
          b.start(Bundle.START_TRANSIENT);
          return;
        } catch (BundleException e) {
          reason = e.getMessage();
        }
        throw new LaunchException("the engine bundle cannot start: " + reason);
      }
    }
  }

  @SuppressWarnings("unchecked")
  private static Function<String[], Integer> awaitMain(BundleContext context, List<Bundle> bundles)
      throws LaunchException {
    Filter filter;
    try {
      filter =
          FrameworkUtil.createFilter(
              "(&(objectClass=" + Function.class.getName() + ")(" + MAIN_PROPERTY + "=true))");
    } catch (InvalidSyntaxException e) {
      throw new IllegalStateException(e);
    }
    ServiceTracker<Object, Object> tracker = new ServiceTracker<>(context, filter, null);
    tracker.open();
    try {
      Object service = tracker.waitForService(MAIN_SERVICE_TIMEOUT_MS);
      if (service == null) {
        throw new LaunchException(
            "the engine did not start within "
                + TimeUnit.MILLISECONDS.toSeconds(MAIN_SERVICE_TIMEOUT_MS)
                + " s; bundle states: "
                + BundleStates.describe(bundles));
      }
      return (Function<String[], Integer>) service;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new LaunchException("interrupted while starting", e);
    } finally {
      tracker.close();
    }
  }

  /** What {@link #run} returns when a signal stopped the framework: the JVM exits with its code. */
  static final int SIGNALLED = -1;

  /** Whether a signal is stopping this process (its exit code is then the signal's). */
  boolean signalled() {
    return signalled;
  }

  /**
   * The shutdown hook: stops the framework, after the command has ended if it said it ends by
   * itself on a signal ({@link #AWAIT_COMMAND_PROPERTY}); never in {@code granule server}, whose
   * command waits for the framework to stop.
   */
  private void stopOnSignal(Framework framework) {
    signalled = true;
    if (!options.server() && Boolean.getBoolean(AWAIT_COMMAND_PROPERTY)) {
      try {
        commandDone.await(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    stop(framework);
  }

  private static void stop(Framework framework) {
    try {
      if ((framework.getState() & (Bundle.STARTING | Bundle.ACTIVE | Bundle.STOPPING)) != 0) {
        framework.stop();
        framework.waitForStop(STOP_TIMEOUT_MS);
      }
    } catch (BundleException | InterruptedException | RuntimeException e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      LoggerFactory.getLogger(Launcher.class)
          .warn("the runtime did not stop cleanly: {}", e.toString());
    }
  }
}
