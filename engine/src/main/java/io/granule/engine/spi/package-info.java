/**
 * What plugins implement to extend the engine: disk image formats (readers, and writers for
 * restores), snapshot providers, filesystem readers, and applications (quiesce, catalog and
 * single-object restore: {@link io.granule.engine.spi.ApplicationPlugin}). Types plugins implement
 * are {@code @ConsumerType}; types the engine hands to plugins are {@code @ProviderType}.
 *
 * <p>Plugins register their implementations as OSGi services (whiteboard pattern); the engine
 * tracks them dynamically, so a plugin can be installed, updated and removed while the engine runs.
 */
@Export
@Version("1.4.0")
package io.granule.engine.spi;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
