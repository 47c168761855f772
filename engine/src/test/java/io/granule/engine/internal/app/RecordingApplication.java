package io.granule.engine.internal.app;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationInfo;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.Captured;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.Quiesce;
import io.granule.engine.spi.SnapshotView;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * An application plugin for engine tests (scheme {@code test}) that records every call the engine
 * makes, in order, and fails where told: {@link #failAt} names an event such as {@code quiesce
 * db2}. Its restore reads a captured file back through the view and fails like a real plugin for
 * the object ids {@code missing-tool} and {@code taken}.
 */
public final class RecordingApplication implements ApplicationPlugin {
  public final List<String> events;
  public volatile String failAt = "";

  public RecordingApplication(List<String> events) {
    this.events = events;
  }

  public RecordingApplication() {
    this(Collections.synchronizedList(new ArrayList<>()));
  }

  void event(String e) throws ApplicationException {
    events.add(e);
    if (failAt.equals(e)) {
      throw new ApplicationException(
          e.startsWith("connect")
              ? ApplicationException.Reason.AUTH
              : ApplicationException.Reason.FAILED,
          e.startsWith("connect") ? "password authentication failed" : "injected at " + e);
    }
  }

  @Override
  public String name() {
    return "test";
  }

  @Override
  public boolean handles(URI url) {
    return url.getScheme().equals("test");
  }

  @Override
  public ApplicationSession connect(URI url) throws ApplicationException {
    String host = url.getHost();
    event("connect " + host);
    return new ApplicationSession() {
      @Override
      public ApplicationInfo info() {
        return new ApplicationInfo(host, "TestDB", "1.0", List.of("/data/" + host), Map.of());
      }

      @Override
      public Quiesce quiesce(Duration maxHold) throws ApplicationException {
        event("quiesce " + host);
        return new Quiesce() {
          @Override
          public void check() throws ApplicationException {
            event("check " + host);
          }

          @Override
          public Captured release() throws ApplicationException {
            event("release " + host);
            return new Captured(
                Map.of("lsn", "0/" + host),
                List.of(
                    new Captured.CapturedFile(
                        "wal/0001",
                        () ->
                            new ByteArrayInputStream(
                                ("wal of " + host).getBytes(StandardCharsets.UTF_8))),
                    new Captured.CapturedFile(
                        "backup_label", () -> new ByteArrayInputStream(new byte[0]))));
          }

          @Override
          public void close() {
            events.add("close-quiesce " + host);
          }
        };
      }

      @Override
      public List<CatalogEntry> catalog() throws ApplicationException {
        event("catalog " + host);
        String db = url.getPath().substring(1);
        return List.of(
            new CatalogEntry(db, "database", db, null, 100, -1, List.of(), Map.of()),
            new CatalogEntry(
                db + "/public.orders",
                "table",
                "public.orders",
                db,
                8192,
                42,
                List.of("base/1/16384"),
                Map.of("relfilenode", "16384")));
      }

      @Override
      public void close() {
        events.add("close-session " + host);
      }
    };
  }

  @Override
  public ObjectRestoreReport restore(
      ObjectRestoreRequest request,
      SnapshotView snapshot,
      ApplicationRecord record,
      RestoreProgress progress)
      throws ApplicationException {
    progress.phase("load", "");
    if (request.objectId().endsWith("missing-tool")) {
      throw new ApplicationException(
          ApplicationException.Reason.MISSING_TOOL, "no staging binaries of TestDB 1");
    }
    if (request.objectId().endsWith("taken")) {
      throw new ApplicationException(
          ApplicationException.Reason.TARGET_EXISTS, "table taken already exists");
    }
    try (InputStream in = snapshot.openCaptured(record, "wal/0001")) {
      String wal = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      return new ObjectRestoreReport(
          "restored.orders", 42, wal, Map.of("load", Duration.ofMillis(1)), List.of());
    } catch (IOException e) {
      throw new ApplicationException(ApplicationException.Reason.FAILED, e.getMessage(), e);
    }
  }
}
