package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.SnapshotView;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.osgi.service.component.annotations.Component;

/**
 * PostgreSQL 15 and later: quiesce with non-exclusive backup mode, catalog every database, restore
 * one table through a staging server started on the snapshot's copy of the data directory.
 *
 * <p>Restore options: {@code pg-bin} (directory of the staging binaries, default {@code
 * /usr/lib/postgresql/<major>/bin}), {@code pg-user} (the user the staging server runs as when
 * Granule runs as root, default {@code postgres}), {@code pg-data} (the data directory inside the
 * snapshot, {@code [DISK[:PARTITION]:]PATH}, when it cannot be found on its own), {@code
 * staging-dir} (where staging directories are made, default the temporary directory) and {@code
 * staging-timeout} (seconds to wait for the staging server, default 600).
 */
@Component(service = ApplicationPlugin.class)
public final class PostgresPlugin implements ApplicationPlugin {

  @Override
  public String name() {
    return "postgres";
  }

  @Override
  public boolean handles(URI url) {
    return PgUrl.handles(url);
  }

  @Override
  public ApplicationSession connect(URI url) throws ApplicationException {
    return PostgresSession.open(PgUrl.parse(url));
  }

  @Override
  public ObjectRestoreReport restore(
      ObjectRestoreRequest request,
      SnapshotView snapshot,
      ApplicationRecord record,
      RestoreProgress progress)
      throws ApplicationException {
    PhaseLog phases = new PhaseLog(progress);
    Map<String, String> options = request.options();
    try {
      phases.begin("check", request.target().toString());
      TableRestore job = TableRestore.plan(request, snapshot.id());
      job.checkTarget();

      phases.begin("locate", "PostgreSQL data directory in snapshot");
      DataDirectoryLocator.Found found = DataDirectoryLocator.locate(snapshot, record, options);
      PgBinaries bins = PgBinaries.find(found.major(), options);
      List<String> walFiles =
          record == null
              ? List.of()
              : record.files().stream().filter(f -> f.startsWith("pg_wal/")).toList();
      boolean applicationConsistent =
          record != null && record.files().contains("backup_label") && !walFiles.isEmpty();
      Set<String> keep = null;
      if (record != null) {
        String oid = record.metadata().get("database-oid." + job.database());
        boolean listed =
            record.metadata().keySet().stream().anyMatch(k -> k.startsWith("database-oid."));
        if (listed && oid == null) {
          throw new ApplicationException(
              Reason.NOT_FOUND,
              "postgres: database '"
                  + job.database()
                  + "' is not in snapshot "
                  + shortId(snapshot));
        }
        if (oid != null) {
          keep = Set.of(oid, "1");
        }
      }
      if (record != null && record.files().contains("tablespace_map")) {
        job.notes().add("tablespaces other than the default were not extracted");
      }

      Path parent =
          Path.of(options.getOrDefault("staging-dir", System.getProperty("java.io.tmpdir")));
      Path root = Files.createTempDirectory(parent, "granule-pg-staging-");
      Duration timeout =
          Duration.ofSeconds(Long.parseLong(options.getOrDefault("staging-timeout", "600")));
      try (StagingServer staging =
          new StagingServer(root, bins, StagingServer.serverUser(options), timeout)) {
        phases.begin("extract", found.describe());
        long bytes =
            snapshot.extract(
                found.volume(),
                found.path(),
                staging.dataDir(),
                DataDirectoryLocator.filter(applicationConsistent, keep));
        staging.prepare(
            applicationConsistent ? name -> snapshot.openCaptured(record, name) : null,
            walFiles,
            keep != null);
        job.notes()
            .add(
                String.format(
                    java.util.Locale.ROOT,
                    "extracted %,d bytes of %s (%s-consistent%s)",
                    bytes,
                    found.describe(),
                    applicationConsistent ? "application" : "crash",
                    keep == null ? ", all databases" : ", only database " + job.database()));
        List<String> roles = new ArrayList<>();
        if (record != null && record.url() != null) {
          try {
            roles.add(PgUrl.parse(URI.create(record.url())).user());
          } catch (IllegalArgumentException | ApplicationException e) {
            // An unreadable recorded url only costs a candidate role.
          }
        }
        roles.add(PgUrl.parse(request.target()).user());
        roles.add("postgres");
        return job.run(staging, roles, phases);
      }
    } catch (ApplicationException e) {
      throw e;
    } catch (IOException e) {
      throw new ApplicationException(
          Reason.FAILED,
          "postgres restore of " + request.objectId() + " failed: " + e.getMessage(),
          e);
    } finally {
      phases.end();
    }
  }

  private static String shortId(SnapshotView snapshot) {
    String id = snapshot.id();
    return id.length() > 12 ? id.substring(0, 12) : id;
  }
}
