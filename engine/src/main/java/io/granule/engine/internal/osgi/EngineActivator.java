package io.granule.engine.internal.osgi;

import io.granule.engine.internal.cli.KeyPrefetch;
import io.granule.engine.internal.repo.crypto.PrederivedKeys;
import org.osgi.framework.BundleActivator;
import org.osgi.framework.BundleContext;

/**
 * The engine bundle's activator. In a one-shot command it starts the work that does not need the
 * components, as early as the runtime can run engine code: the derivation of an encrypted
 * repository's key ({@link KeyPrefetch}), on a spare core while the runtime starts the other
 * bundles and the components (about a quarter of a second before the command runs).
 */
public final class EngineActivator implements BundleActivator {
  @Override
  public void start(BundleContext context) {
    if (!RuntimeProperties.server(context)) {
      KeyPrefetch.start(RuntimeProperties.cliArgs(context), System::getenv);
    }
  }

  @Override
  public void stop(BundleContext context) {
    PrederivedKeys.forget();
  }
}
