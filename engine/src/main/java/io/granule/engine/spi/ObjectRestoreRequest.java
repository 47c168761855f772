package io.granule.engine.spi;

import java.net.URI;
import java.util.Map;
import java.util.Objects;

/**
 * What to restore and where.
 *
 * @param objectId the object's {@link CatalogEntry#id}, without the plugin's prefix
 * @param target the live instance to load it into, e.g. {@code postgres://u@host:5432/shop}
 * @param as the name to give it there, in the plugin's syntax ({@code schema.table}), or null for
 *     the default: a new namespace named after the snapshot, so no name can clash; a name without
 *     its namespace part goes into that snapshot-named namespace
 * @param replace replace the live object of the same name (in one transaction where the product
 *     allows)
 * @param options plugin-specific options, e.g. {@code pg-bin=/usr/lib/postgresql/15/bin}
 */
public record ObjectRestoreRequest(
    String objectId, URI target, String as, boolean replace, Map<String, String> options) {

  public ObjectRestoreRequest {
    Objects.requireNonNull(objectId, "objectId");
    Objects.requireNonNull(target, "target");
    options = options == null ? Map.of() : Map.copyOf(options);
  }
}
