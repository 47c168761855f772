package io.granule.engine.internal.app;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.SnapshotNotFoundException;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.FileSystemType;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Restores one application object ({@code PLUGIN:ID}, e.g. {@code postgres:shop/public.orders})
 * from a snapshot into a live instance, through the plugin named by the prefix.
 *
 * <p>When the snapshot was taken with {@code --app} for that plugin, the object must be in its
 * catalog (else the error suggests close names) and the plugin gets the stored record (captured
 * files, consistency point). Without one, the plugin gets no record and relies on the application's
 * crash recovery.
 */
public final class ObjectRestore {

  /**
   * What happened.
   *
   * @param report the plugin's report
   * @param plugin the plugin's name
   * @param objectId the object id without the plugin prefix
   * @param record the stored record used, or null (crash-consistent)
   * @param entry the object's catalog entry, or null when not cataloged
   * @param bytesFetched chunk bytes fetched from the repository
   * @param chunksFetched chunks fetched from the repository
   * @param dataChunks chunks holding data on the snapshot's disks
   * @param diskBytes the size of the snapshot's disks
   * @param elapsed the whole restore's duration
   */
  public record Result(
      ObjectRestoreReport report,
      String plugin,
      String objectId,
      ApplicationRecord record,
      CatalogEntry entry,
      long bytesFetched,
      long chunksFetched,
      long dataChunks,
      long diskBytes,
      Duration elapsed) {

    /** {@code application} or {@code crash}: how consistent the restored object's source was. */
    public String consistency() {
      return record == null ? "crash" : record.consistency();
    }

    /** What the CLI's {@code --json} and the REST job result show, {@code object} included. */
    public Map<String, Object> summary() {
      Map<String, Object> o = new java.util.LinkedHashMap<>();
      o.put("object", plugin + ":" + objectId);
      o.put("restoredAs", report.restoredAs());
      o.put("rows", report.rows());
      o.put("checksum", report.checksum());
      o.put("consistency", consistency());
      Map<String, Double> phases = new java.util.LinkedHashMap<>();
      report.phases().forEach((k, v) -> phases.put(k, v.toNanos() / 1e9));
      o.put("phases", phases);
      o.put("seconds", elapsed.toNanos() / 1e9);
      o.put("bytesFetched", bytesFetched);
      o.put("chunksFetched", chunksFetched);
      o.put("diskDataChunks", dataChunks);
      o.put("diskBytes", diskBytes);
      o.put("notes", report.notes());
      return o;
    }
  }

  private ObjectRestore() {}

  /**
   * Fails unless {@code object} reads PLUGIN:ID.
   *
   * @throws IllegalArgumentException naming the expected form
   */
  public static void checkObject(String object) {
    int colon = object.indexOf(':');
    if (colon <= 0 || colon == object.length() - 1) {
      throw new IllegalArgumentException(
          "invalid object '"
              + object
              + "': use PLUGIN:ID as 'granule catalog SNAP' lists it, e.g. postgres:shop/public.orders");
    }
  }

  /**
   * @param object {@code PLUGIN:ID}
   * @param instance the instance key when the snapshot holds several of the plugin's, or null
   * @param catalogCache the local catalog cache of this repository, or null
   * @throws IllegalArgumentException if {@code object} has no plugin prefix
   * @throws SnapshotNotFoundException if the object or instance is not in the snapshot
   * @throws ApplicationFailure if the plugin fails
   */
  public static Result run(
      Repository repository,
      Manifest snapshot,
      String object,
      URI target,
      String as,
      boolean replace,
      Map<String, String> options,
      String instance,
      PluginLeases<ApplicationPlugin> plugins,
      PluginLeases<FileSystemType> fileSystems,
      Path catalogCache,
      ApplicationPlugin.RestoreProgress progress) {
    checkObject(object);
    int colon = object.indexOf(':');
    String pluginName = object.substring(0, colon);
    String id = object.substring(colon + 1);
    long t0 = System.nanoTime();
    try (Lease<ApplicationPlugin> lease = plugins.acquire(pluginName)) {
      StoredApplication app = null;
      CatalogEntry entry = null;
      List<StoredApplication> candidates = new ArrayList<>();
      for (StoredApplication a : StoredApplication.of(snapshot)) {
        if (a.record().plugin().equals(pluginName)
            && (instance == null || a.record().instance().equals(instance))) {
          candidates.add(a);
        }
      }
      if (instance != null && candidates.isEmpty()) {
        throw new SnapshotNotFoundException(
            "snapshot "
                + snapshot.id().substring(0, 12)
                + " holds no "
                + pluginName
                + " instance '"
                + instance
                + "' (it holds: "
                + StoredApplication.of(snapshot).stream().map(StoredApplication::key).toList()
                + ")");
      }
      List<String> near = new ArrayList<>();
      for (StoredApplication a : candidates) {
        for (CatalogEntry e : Catalogs.read(repository, snapshot, a, catalogCache)) {
          if (e.id().equals(id)) {
            if (app != null) {
              throw new IllegalArgumentException(
                  "object '"
                      + object
                      + "' is in two instances of snapshot "
                      + snapshot.id().substring(0, 12)
                      + " ("
                      + app.record().instance()
                      + ", "
                      + a.record().instance()
                      + "): choose one with --instance");
            }
            app = a;
            entry = e;
          } else if (e.id().toLowerCase(Locale.ROOT).contains(lastPart(id))) {
            near.add(pluginName + ":" + e.id());
          }
        }
      }
      if (app == null && !candidates.isEmpty()) {
        throw new SnapshotNotFoundException(
            "no object '"
                + object
                + "' in the catalog of snapshot "
                + snapshot.id().substring(0, 12)
                + (near.isEmpty()
                    ? " (list it with: granule catalog " + snapshot.id().substring(0, 12) + ")"
                    : " (did you mean "
                        + String.join(", ", near.stream().limit(5).toList())
                        + "?)"));
      }
      ApplicationRecord record = app == null ? null : app.record();
      try (EngineSnapshotView view = new EngineSnapshotView(repository, snapshot, fileSystems)) {
        ObjectRestoreReport report;
        try {
          report =
              lease
                  .get()
                  .restore(
                      new ObjectRestoreRequest(id, target, as, replace, options),
                      view,
                      record,
                      progress);
        } catch (ApplicationException | RuntimeException e) {
          if (e instanceof ApplicationFailure af) {
            throw af;
          }
          throw ApplicationFailure.of(
              "restore of " + object + " into " + AppUrls.redact(target), "restore", e);
        }
        return new Result(
            report,
            pluginName,
            id,
            record,
            entry,
            view.bytesFetched(),
            view.chunksFetched(),
            view.dataChunks(),
            view.diskBytes(),
            Duration.ofNanos(System.nanoTime() - t0));
      }
    }
  }

  private static String lastPart(String id) {
    String s = id.toLowerCase(Locale.ROOT);
    int cut = Math.max(s.lastIndexOf('/'), s.lastIndexOf('.'));
    return cut >= 0 ? s.substring(cut + 1) : s;
  }
}
