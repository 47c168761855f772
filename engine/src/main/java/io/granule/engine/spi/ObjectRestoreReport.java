package io.granule.engine.spi;

import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * What a single-object restore did.
 *
 * @param restoredAs where the object now is in the target, e.g. {@code snap_1a2b3c4d.orders}
 * @param rows rows (or messages) restored
 * @param checksum a content checksum of what was restored, computed the same way on the source and
 *     the target so a person can compare (the plugin documents how)
 * @param phases each phase's name and duration, in order
 * @param notes anything a person should know (constraints left out, a replace that happened)
 */
public record ObjectRestoreReport(
    String restoredAs,
    long rows,
    String checksum,
    Map<String, Duration> phases,
    List<String> notes) {

  public ObjectRestoreReport {
    phases =
        phases == null
            ? Map.of()
            : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(phases));
    notes = notes == null ? List.of() : List.copyOf(notes);
  }
}
