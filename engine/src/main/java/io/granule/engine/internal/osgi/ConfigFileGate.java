package io.granule.engine.internal.osgi;

import java.net.URI;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Dictionary;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.osgi.framework.BundleContext;
import org.osgi.framework.ServiceReference;
import org.osgi.service.cm.ConfigurationPlugin;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Settings from a {@code .cfg} file of the data directory reach a plugin only if the file passes
 * the data directory's rules when it is read, not only at the server's start (the launcher's check,
 * offered as a {@code Function<Path, String>} service with {@code granule.data.file.check=true}): a
 * file another user owned, moved in later, was his to rewrite, and a plugin's settings can name
 * programs it runs. A refused file's settings are stripped (the plugin sees none of its values) and
 * the reason is logged, once per file and reason.
 *
 * <p>Stripped is not inert for a folder watcher: a refused {@code
 * org.apache.felix.fileinstall-NAME.cfg} still made a FileInstall watcher, with FileInstall's
 * defaults: {@code ./load} in the server's working directory, every jar there installed and
 * started. A refused watcher gets settings that watch nothing instead (the data directory's {@code
 * plugins/}, already watched, with a filter no file name matches); the launcher's plugin gate would
 * refuse what it installed anyway.
 */
@Component(service = ConfigurationPlugin.class)
public final class ConfigFileGate implements ConfigurationPlugin {
  private static final Logger LOG = LoggerFactory.getLogger(ConfigFileGate.class);

  /** FileInstall's property naming the file a configuration came from. */
  static final String FILENAME = "felix.fileinstall.filename";

  /** FileInstall's factory of folder watchers. */
  static final String FILEINSTALL = "org.apache.felix.fileinstall";

  /** A regular expression no file name matches. */
  static final String NOTHING = "(?!)";

  private static final Set<String> KEPT =
      Set.of("service.pid", "service.factoryPid", FILENAME, "service.bundleLocation");

  private final BundleContext context;
  private final Set<String> logged = ConcurrentHashMap.newKeySet();

  @Activate
  public ConfigFileGate(BundleContext context) {
    this.context = context;
  }

  @Override
  public void modifyConfiguration(ServiceReference<?> target, Dictionary<String, Object> props) {
    Object file = props.get(FILENAME);
    if (file == null) {
      return;
    }
    String why;
    try {
      why = refusal(Path.of(URI.create(file.toString())));
    } catch (RuntimeException e) {
      why = "its file " + file + " cannot be checked: " + e.getMessage();
    }
    if (why == null) {
      return;
    }
    List<String> keys = Collections.list(props.keys());
    for (String k : keys) {
      if (!KEPT.contains(k)) {
        props.remove(k);
      }
    }
    props.put("granule.refused", why);
    if (FILEINSTALL.equals(props.get("service.factoryPid"))) {
      String data = context.getProperty("granule.data");
      props.put(
          "felix.fileinstall.dir",
          data == null ? "/proc/granule-refused" : Path.of(data, "plugins").toString());
      props.put("felix.fileinstall.filter", NOTHING);
      props.put("felix.fileinstall.subdir.mode", "skip");
      props.put("felix.fileinstall.poll", "3600000");
      props.put("felix.fileinstall.bundles.new.start", "false");
    }
    if (logged.add(file + "\0" + why)) {
      LOG.error("not applying the settings of {}: {}", file, why);
    }
  }

  /** Why {@code file} may not configure anything, or null (no check offered: nothing refused). */
  private String refusal(Path file) {
    return LauncherChecks.refusal(context, LauncherChecks.DATA_FILE, file);
  }
}
