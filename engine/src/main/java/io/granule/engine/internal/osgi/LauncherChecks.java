package io.granule.engine.internal.osgi;

import java.util.function.Function;
import org.osgi.framework.BundleContext;
import org.osgi.framework.InvalidSyntaxException;
import org.osgi.framework.ServiceReference;

/**
 * The checks the launcher offers the engine as {@code Function} services marked by a property
 * ({@code granule.plugin.gate}: why a bundle may not resolve; {@code granule.data.file.check}: why
 * a data-directory file may not be used): asked here, the answer is a reason or null.
 */
final class LauncherChecks {
  static final String PLUGIN_GATE = "granule.plugin.gate";
  static final String DATA_FILE = "granule.data.file.check";

  private LauncherChecks() {}

  /**
   * Why the launcher's check {@code property} refuses {@code subject}, or null (also when the
   * launcher offers no such check, as in tests that run the engine without it).
   */
  @SuppressWarnings("unchecked")
  static <T> String refusal(BundleContext context, String property, T subject) {
    ServiceReference<?>[] refs;
    try {
      refs = context.getServiceReferences(Function.class.getName(), "(" + property + "=true)");
    } catch (InvalidSyntaxException e) {
      throw new IllegalStateException(e);
    }
    for (ServiceReference<?> ref : refs == null ? new ServiceReference<?>[0] : refs) {
      Object check = context.getService(ref);
      try {
        if (check instanceof Function<?, ?> f) {
          Object why = ((Function<T, Object>) f).apply(subject);
          return why == null ? null : why.toString();
        }
      } finally {
        context.ungetService(ref);
      }
    }
    return null;
  }
}
