package io.granule.engine.spi;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What {@link ApplicationPlugin#connect} found about an instance.
 *
 * @param instance a stable key for this instance, unique within a snapshot, made of letters,
 *     digits, '.', '_' and '-', e.g. {@code db1-5432}; used in stored names
 * @param product the product and flavour, e.g. {@code PostgreSQL} or {@code MariaDB}
 * @param version the server version as it reports it, e.g. {@code 15.18}
 * @param dataPaths the host paths that hold the instance's files (data directory, tablespaces,
 *     WAL), which the engine uses to check that the disks being backed up cover them
 * @param attributes anything else worth recording (system identifier, port, encoding)
 */
public record ApplicationInfo(
    String instance,
    String product,
    String version,
    List<String> dataPaths,
    Map<String, String> attributes) {

  public ApplicationInfo {
    Objects.requireNonNull(product, "product");
    Objects.requireNonNull(version, "version");
    if (instance == null || !instance.matches("[A-Za-z0-9._-]{1,100}")) {
      throw new IllegalArgumentException("invalid instance key '" + instance + "'");
    }
    dataPaths = List.copyOf(dataPaths);
    attributes = Map.copyOf(attributes);
  }
}
