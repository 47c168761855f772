package io.granule.engine.spi;

import java.util.List;
import java.util.Map;

/**
 * What a snapshot holds about one application instance that was backed up with {@code --app}.
 *
 * @param plugin the plugin's {@link ApplicationPlugin#name}
 * @param instance the instance key ({@link ApplicationInfo#instance})
 * @param url the connection URL, without any password
 * @param product the product, e.g. {@code PostgreSQL}
 * @param version the server version
 * @param consistency {@code application} when the instance was quiesced for the snapshot, {@code
 *     crash} when only the filesystem was frozen
 * @param dataPaths the host paths that held its files
 * @param attributes {@link ApplicationInfo#attributes}
 * @param metadata {@link Captured#metadata}
 * @param files the names of the {@link Captured#files}, readable with {@link
 *     SnapshotView#openCaptured}
 */
public record ApplicationRecord(
    String plugin,
    String instance,
    String url,
    String product,
    String version,
    String consistency,
    List<String> dataPaths,
    Map<String, String> attributes,
    Map<String, String> metadata,
    List<String> files) {

  public ApplicationRecord {
    dataPaths = dataPaths == null ? List.of() : List.copyOf(dataPaths);
    attributes = attributes == null ? Map.of() : Map.copyOf(attributes);
    metadata = metadata == null ? Map.of() : Map.copyOf(metadata);
    files = files == null ? List.of() : List.copyOf(files);
  }
}
