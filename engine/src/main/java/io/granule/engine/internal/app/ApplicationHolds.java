package io.granule.engine.internal.app;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.repo.backup.BackupRequest.Extras;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedStream;
import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.Quiesce;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The applications of one backup, from connection to release: {@link #quiesce} connects to each,
 * quiesces it and reads its catalog; {@link #release} (after the disks are read and the filesystems
 * thawed) ends each hold and turns what it captured into streams and manifest metadata; {@link
 * #close} ends whatever is still held, on every path, and never throws.
 *
 * <p>Applications are quiesced in the order given and released in reverse order.
 */
public final class ApplicationHolds implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ApplicationHolds.class);

  private final PluginLeases<ApplicationPlugin> plugins;
  private final List<URI> urls;
  private final Duration maxHold;
  private final List<Held> held = new ArrayList<>();
  private final List<InputStream> opened = new ArrayList<>();

  private static final class Held {
    final URI url;
    final String shown;
    final Lease<ApplicationPlugin> lease;
    ApplicationSession session;
    ApplicationInfo info;
    Quiesce quiesce;
    List<CatalogEntry> catalog = List.of();
    final Map<String, Double> seconds = new LinkedHashMap<>();
    long quiescedAt;

    void time(String step, long startNanos) {
      seconds.put(step, Math.round((System.nanoTime() - startNanos) / 1e6) / 1e3);
    }

    Held(URI url, Lease<ApplicationPlugin> lease) {
      this.url = url;
      this.shown = AppUrls.redact(url);
      this.lease = lease;
    }
  }

  /**
   * @param plugins the application plugins
   * @param urls the applications' connection URLs
   * @param maxHold the longest each may stay quiesced
   */
  public ApplicationHolds(
      PluginLeases<ApplicationPlugin> plugins, List<URI> urls, Duration maxHold) {
    this.plugins = plugins;
    this.urls = List.copyOf(urls);
    this.maxHold = maxHold;
  }

  /** True when there are no applications. */
  public boolean isEmpty() {
    return urls.isEmpty();
  }

  /**
   * Finds each application's plugin, connects, quiesces and reads the catalog. On failure,
   * everything done so far is undone before the exception leaves.
   *
   * @throws ApplicationFailure naming the application and the step
   * @throws io.granule.engine.internal.plugin.PluginUnavailableException if no plugin handles a URL
   */
  public void quiesce() {
    try {
      for (URI url : urls) {
        held.add(new Held(url, pluginFor(url)));
      }
      for (Held h : held) {
        try {
          long t0 = System.nanoTime();
          h.session = h.lease.get().connect(h.url);
          h.time("connect", t0);
          h.info = h.session.info();
        } catch (ApplicationException | RuntimeException e) {
          throw ApplicationFailure.of(h.shown, "connect", e);
        }
      }
      java.util.Set<String> keys = new java.util.HashSet<>();
      for (Held h : held) {
        if (!keys.add(h.lease.get().name() + "/" + h.info.instance())) {
          throw new ApplicationFailure(
              ApplicationException.Reason.FAILED,
              h.shown + ": the same instance is named twice by --app: give it once",
              null);
        }
      }
      for (Held h : held) {
        try {
          long t0 = System.nanoTime();
          h.quiesce = h.session.quiesce(maxHold);
          h.time("quiesce", t0);
          h.quiescedAt = System.nanoTime();
        } catch (ApplicationException | RuntimeException e) {
          throw ApplicationFailure.of(h.shown, "quiesce", e);
        }
        LOG.info("{}: quiesced", h.shown);
        try {
          long t0 = System.nanoTime();
          h.catalog = h.session.catalog();
          h.time("catalog", t0);
        } catch (ApplicationException | RuntimeException e) {
          throw ApplicationFailure.of(h.shown, "catalog", e);
        }
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  private Lease<ApplicationPlugin> pluginFor(URI url) {
    // Every lease not returned is closed: a leaked lease would make an update or the runtime's
    // shutdown wait for it until the drain timeout.
    Lease<ApplicationPlugin> chosen = null;
    for (Lease<ApplicationPlugin> l : plugins.acquireAll()) {
      boolean mine;
      try {
        mine = chosen == null && l.get().handles(url);
      } catch (RuntimeException e) {
        mine = false;
      }
      if (mine) {
        chosen = l;
      } else {
        l.close();
      }
    }
    if (chosen != null) {
      return chosen;
    }
    throw new io.granule.engine.internal.plugin.PluginUnavailableException(
        "no application plugin handles '"
            + AppUrls.redact(url)
            + "' (application plugins: "
            + (plugins.names().isEmpty() ? "none" : String.join(", ", plugins.names()))
            + "); install the plugin for its scheme");
  }

  /**
   * Warnings for application data paths that exist on this host but on no disk of the backup (their
   * data would not be in the snapshot). Call after {@link #quiesce}.
   */
  public List<String> coverageNotes(List<java.nio.file.Path> disks) {
    List<String> notes = new ArrayList<>();
    DiskCoverage coverage = new DiskCoverage();
    for (Held h : held) {
      if (h.info == null) {
        continue;
      }
      for (String p : h.info.dataPaths()) {
        java.util.Optional<Boolean> covered;
        try {
          covered = coverage.covers(disks, java.nio.file.Path.of(p));
        } catch (java.nio.file.InvalidPathException e) {
          continue;
        }
        if (covered.isPresent() && !covered.get()) {
          notes.add(
              "WARNING: "
                  + h.shown
                  + ": its data path "
                  + p
                  + " is on none of the disks of this backup, so the snapshot does not hold it"
                  + " (back up the disk or image it is on)");
        }
      }
    }
    return notes;
  }

  /** Throws if any hold ended early. */
  public void check() {
    for (Held h : held) {
      try {
        h.quiesce.check();
      } catch (ApplicationException | RuntimeException e) {
        throw ApplicationFailure.of(h.shown, "hold", e);
      }
    }
  }

  /**
   * Ends every hold normally, right after the disks were read, and returns what to store: one
   * stream per captured file, one per catalog, and the manifest's application records.
   *
   * @throws ApplicationFailure if a hold ended early or could not end cleanly
   */
  public Extras release() {
    List<NamedStream> streams = new ArrayList<>();
    Map<String, Object> apps = new LinkedHashMap<>();
    List<Captured> captured = new ArrayList<>();
    for (int i = held.size() - 1; i >= 0; i--) {
      Held h = held.get(i);
      try {
        long t0 = System.nanoTime();
        h.time("held", h.quiescedAt);
        captured.add(0, h.quiesce.release());
        h.time("release", t0);
      } catch (ApplicationException | RuntimeException e) {
        throw ApplicationFailure.of(h.shown, "release", e);
      }
      LOG.info("{}: released", h.shown);
    }
    for (int i = 0; i < held.size(); i++) {
      Held h = held.get(i);
      Captured c = captured.get(i);
      String plugin = h.lease.get().name();
      String prefix = StoredApplication.prefix(plugin, h.info.instance());
      List<String> files = new ArrayList<>();
      for (Captured.CapturedFile f : c.files()) {
        InputStream in;
        try {
          in = f.content().open();
        } catch (IOException e) {
          throw ApplicationFailure.of(h.shown, "reading captured file " + f.name(), e);
        }
        opened.add(in);
        streams.add(new NamedStream(prefix + f.name(), in));
        files.add(f.name());
      }
      String catalogStream = prefix + "catalog.jsonl";
      streams.add(
          new NamedStream(catalogStream, new ByteArrayInputStream(Catalogs.encode(h.catalog))));
      ApplicationRecord record =
          new ApplicationRecord(
              plugin,
              h.info.instance(),
              h.shown,
              h.info.product(),
              h.info.version(),
              "application",
              h.info.dataPaths(),
              h.info.attributes(),
              c.metadata(),
              files);
      StoredApplication stored =
          new StoredApplication(record, prefix, catalogStream, h.catalog.size(), h.seconds);
      apps.put(stored.key(), stored.toManifestValue());
    }
    return new Extras(streams, apps);
  }

  /** Ends every hold still in place and disconnects; never throws. */
  @Override
  public void close() {
    for (InputStream in : opened) {
      try {
        in.close();
      } catch (IOException e) {
        // reading is over
      }
    }
    opened.clear();
    for (int i = held.size() - 1; i >= 0; i--) {
      Held h = held.get(i);
      try {
        if (h.quiesce != null) {
          h.quiesce.close();
        }
      } catch (RuntimeException e) {
        LOG.warn("{}: ending the hold: {}", h.shown, e.toString());
      }
      try {
        if (h.session != null) {
          h.session.close();
        }
      } catch (RuntimeException e) {
        LOG.warn("{}: disconnecting: {}", h.shown, e.toString());
      }
      h.lease.close();
    }
    held.clear();
  }
}
