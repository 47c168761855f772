package io.granule.engine.internal.app;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ApplicationRecord;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One application instance as a snapshot's manifest records it (under {@code applications}, keyed
 * by {@code PLUGIN/INSTANCE}): the plugin's {@link ApplicationRecord}, where its captured files and
 * its catalog are stored (streams of the snapshot), and how many objects the catalog lists.
 *
 * @param record what the plugin gets back at restore
 * @param streamPrefix the prefix of the streams holding its captured files: {@code
 *     app/PLUGIN/INSTANCE/}
 * @param catalog the stream holding its catalog (JSON lines of catalog entries), or null
 * @param objects the number of catalog entries
 * @param seconds how long each step took at backup: {@code connect}, {@code quiesce}, {@code
 *     catalog}, {@code held} (from quiesced to the start of release: how long the application was
 *     held), {@code release}; may be empty
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record StoredApplication(
    ApplicationRecord record,
    String streamPrefix,
    String catalog,
    long objects,
    Map<String, Double> seconds) {

  public StoredApplication {
    seconds =
        seconds == null
            ? Map.of()
            : java.util.Collections.unmodifiableMap(new LinkedHashMap<>(seconds));
  }

  static final ObjectMapper JSON =
      new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  /** The key under {@code applications} in the manifest. */
  public String key() {
    return record.plugin() + "/" + record.instance();
  }

  /** The stream name of captured file {@code name}. */
  public String streamOf(String name) {
    return streamPrefix + name;
  }

  /** The prefix of an instance's streams. */
  public static String prefix(String plugin, String instance) {
    return "app/" + plugin + "/" + instance + "/";
  }

  /** As stored in the manifest (plain maps and lists). */
  @SuppressWarnings("unchecked")
  public Map<String, Object> toManifestValue() {
    return JSON.convertValue(this, Map.class);
  }

  /** The applications a snapshot records, in the order stored. */
  public static List<StoredApplication> of(Manifest m) {
    List<StoredApplication> out = new ArrayList<>();
    for (Object v : new LinkedHashMap<>(m.applications()).values()) {
      out.add(JSON.convertValue(v, StoredApplication.class));
    }
    out.sort(java.util.Comparator.comparing(StoredApplication::key));
    return out;
  }
}
