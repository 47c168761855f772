/**
 * What the Granule engine offers to other bundles and tools: plugin inventory, repositories,
 * snapshots and restores. Every type here is implemented by the engine ({@code @ProviderType});
 * callers only use them.
 *
 * <p>Versioned by semantic versioning: a minor version adds, a major version breaks. bnd baselining
 * fails the build when a change needs a larger version bump than the one declared here.
 */
@Export
@Version("1.0.0")
package io.granule.engine.api;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
