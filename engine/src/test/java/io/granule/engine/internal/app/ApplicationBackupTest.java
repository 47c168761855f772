package io.granule.engine.internal.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawFormat;
import io.granule.engine.internal.ops.BackupOperation;
import io.granule.engine.internal.ops.BackupOperation.AppSpec;
import io.granule.engine.internal.ops.BackupOperation.ConsistencySpec;
import io.granule.engine.internal.ops.BackupOperation.DiskSpec;
import io.granule.engine.internal.ops.ConsistencyException;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.SnapshotNotFoundException;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.CatalogEntry;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.FileSystemType;
import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The order of an application-aware backup (quiesce apps, freeze, read, thaw, release, store) and
 * its failure paths: whatever step fails, every quiesced application is released, every hold is
 * closed, and no snapshot is written. Uses an in-test application plugin that records what the
 * engine asks of it (the real PostgreSQL and MariaDB plugins have their own tests against real
 * servers).
 */
class ApplicationBackupTest {
  @TempDir Path tmp;

  private final List<String> events = Collections.synchronizedList(new ArrayList<>());
  private PluginLeases<DiskImageFormat> formats;
  private PluginLeases<SnapshotProvider> providers;
  private PluginLeases<ApplicationPlugin> apps;
  private Path disk;
  private Repository repo;

  private RecordingApplication app;

  @BeforeEach
  void setUp() throws IOException {
    formats = new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
    formats.added("raw", new RawFormat(), new Origin("io.granule.engine", "0"), 0);
    providers =
        new PluginLeases<>("SnapshotProvider", SnapshotProvider::name, Duration.ofSeconds(1));
    providers.added("rec", new RecordingProvider(), new Origin("test", "0"), 0);
    apps = new PluginLeases<>("ApplicationPlugin", ApplicationPlugin::name, Duration.ofSeconds(1));
    RecordingApplication app = new RecordingApplication(events);
    this.app = app;
    apps.added("t", app, new Origin("test", "0"), 0);
    disk = tmp.resolve("disk.img");
    byte[] data = new byte[3 << 20];
    new Random(1).nextBytes(data);
    Files.write(disk, data);
    repo =
        Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(64 << 10));
  }

  private BackupResult backup(List<String> urls, boolean freeze) {
    List<URI> us = urls.stream().map(AppUrls::parse).toList();
    return new BackupOperation(formats, providers, apps)
        .run(
            repo,
            List.of(DiskSpec.parse("vm=" + disk, null)),
            List.of(),
            freeze
                ? new ConsistencySpec("rec", List.of(Path.of("/proc")), Duration.ofSeconds(30))
                : null,
            new AppSpec(us, Duration.ofSeconds(30)),
            "h1",
            List.of(),
            p -> {});
  }

  @Test
  void quiesceFreezeReadThawReleaseStoreInThatOrder() throws Exception {
    BackupResult r = backup(List.of("test://u:secret@db1:1/a", "test://u@db2:2/b"), true);
    assertThat(events)
        .containsExactly(
            "connect db1",
            "connect db2",
            "quiesce db1",
            "catalog db1",
            "quiesce db2",
            "catalog db2",
            "freeze",
            "check db1",
            "check db2",
            "thaw",
            "release db2",
            "release db1",
            "close-quiesce db2",
            "close-session db2",
            "close-quiesce db1",
            "close-session db1");
    Manifest m = repo.resolve(r.manifest().id());
    List<StoredApplication> stored = StoredApplication.of(m);
    assertThat(stored).extracting(StoredApplication::key).containsExactly("test/db1", "test/db2");
    ApplicationRecord rec = stored.get(0).record();
    assertThat(rec.url()).isEqualTo("test://u@db1:1/a").doesNotContain("secret");
    assertThat(rec.consistency()).isEqualTo("application");
    assertThat(rec.metadata()).containsEntry("lsn", "0/db1");
    assertThat(rec.files()).containsExactly("wal/0001", "backup_label");
    // captured files and catalogs are streams of the snapshot, read back exactly
    try (InputStream in = repo.openStream(m, stored.get(0).streamOf("wal/0001"))) {
      assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("wal of db1");
    }
    List<CatalogEntry> cat = Catalogs.read(repo, m, stored.get(1), tmp.resolve("cache"));
    assertThat(cat).extracting(CatalogEntry::id).containsExactly("b", "b/public.orders");
    assertThat(cat.get(1).rows()).isEqualTo(42);
    assertThat(cat.get(1).files()).containsExactly("base/1/16384");
    // the second read comes from the local cache, equal
    assertThat(Catalogs.read(repo, m, stored.get(1), tmp.resolve("cache"))).isEqualTo(cat);
    assertThat(Files.list(tmp.resolve("cache")).count()).isEqualTo(1);
  }

  @Test
  void noPluginLeaseOutlivesTheBackup() throws Exception {
    // a second plugin after the one that handles the URL: its lease must be closed too, or its
    // removal (an update, the runtime's shutdown) waits for the drain timeout
    apps.added("other", new RecordingApplication(), new Origin("other", "0"), 0);
    backup(List.of("test://u@db1:1/a"), true);
    long t0 = System.nanoTime();
    assertThat(apps.removed("other")).isZero();
    assertThat(apps.removed("t")).isZero();
    assertThat(System.nanoTime() - t0).isLessThan(500_000_000L);
  }

  @Test
  void withoutFreezeTheAppsAreReleasedAfterTheDisksAreRead() {
    backup(List.of("test://u@db1:1/a"), false);
    assertThat(events)
        .containsExactly(
            "connect db1",
            "quiesce db1",
            "catalog db1",
            "release db1",
            "close-quiesce db1",
            "close-session db1");
  }

  @Test
  void aQuiesceFailureReleasesTheAppsAlreadyQuiescedAndNamesTheStep() {
    app.failAt = "quiesce db2";
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a", "test://u@db2:2/b"), true))
        .isInstanceOf(ApplicationFailure.class)
        .hasMessageContaining("test://u@db2:2/b")
        .hasMessageContaining("quiesce failed");
    assertThat(events).doesNotContain("freeze").contains("close-quiesce db1", "close-session db2");
    assertThat(events.indexOf("close-quiesce db1")).isGreaterThan(events.indexOf("quiesce db2"));
    assertThat(repo.snapshots()).isEmpty();
  }

  @Test
  void aFreezeFailureReleasesEveryApp() {
    app.failAt = "freeze";
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a"), true))
        .isInstanceOf(ConsistencyException.class)
        .hasMessageContaining("unable to begin");
    assertThat(events)
        .contains("close-quiesce db1", "close-session db1")
        .doesNotContain("release db1");
    assertThat(repo.snapshots()).isEmpty();
  }

  @Test
  void aReleaseFailureThawsFailsTheBackupAndWritesNoSnapshot() {
    app.failAt = "release db1";
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a"), true))
        .isInstanceOf(ApplicationFailure.class)
        .hasMessageContaining("release failed");
    assertThat(events).contains("thaw", "close-quiesce db1", "close-session db1");
    assertThat(repo.snapshots()).isEmpty();
  }

  @Test
  void aHoldThatEndedEarlyFailsTheBackupAndThaws() {
    app.failAt = "check db1";
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a"), true))
        .isInstanceOf(ApplicationFailure.class)
        .hasMessageContaining("hold failed");
    assertThat(events).contains("thaw", "close-quiesce db1").doesNotContain("release db1");
    assertThat(repo.snapshots()).isEmpty();
  }

  @Test
  void anUnreadableDiskReleasesEverything() throws IOException {
    app.failAt = "none";
    Files.delete(disk);
    Files.createDirectory(disk);
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a"), true))
        .isInstanceOf(RuntimeException.class);
    // the disk is opened before anything is quiesced: nothing was held
    assertThat(events).doesNotContain("quiesce db1", "freeze");
  }

  @Test
  void aConnectFailureKeepsItsReason() {
    app.failAt = "connect db1";
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a"), false))
        .isInstanceOfSatisfying(
            ApplicationFailure.class,
            e -> assertThat(e.reason()).isEqualTo(ApplicationException.Reason.AUTH))
        .hasMessageContaining("connect failed: password authentication failed");
  }

  @Test
  void aUrlNoPluginHandlesIsAPluginError() {
    assertThatThrownBy(() -> backup(List.of("nosuch://u@db1:1/a"), false))
        .isInstanceOf(io.granule.engine.internal.plugin.PluginUnavailableException.class)
        .hasMessageContaining("no application plugin handles 'nosuch://u@db1:1/a'")
        .hasMessageContaining("test");
  }

  @Test
  void theSameInstanceTwiceIsRefusedBeforeAnythingIsHeld() {
    assertThatThrownBy(() -> backup(List.of("test://u@db1:1/a", "test://u@db1:1/b"), false))
        .isInstanceOf(ApplicationFailure.class)
        .hasMessageContaining("named twice");
    assertThat(events).doesNotContain("quiesce db1");
  }

  @Test
  void objectRestoreFindsTheRecordAndRefusesUnknownObjectsWithSuggestions() throws Exception {
    BackupResult r = backup(List.of("test://u@db1:1/a", "test://u@db2:2/b"), false);
    Manifest m = repo.resolve(r.manifest().id());
    PluginLeases<FileSystemType> fs =
        new PluginLeases<>("FileSystemType", FileSystemType::name, Duration.ofSeconds(1));
    ObjectRestore.Result res =
        ObjectRestore.run(
            repo,
            m,
            "test:b/public.orders",
            URI.create("test://u@target:3/b"),
            null,
            false,
            Map.of("k", "v"),
            null,
            apps,
            fs,
            null,
            (phase, detail) -> events.add("phase " + phase));
    assertThat(res.record().instance()).isEqualTo("db2");
    assertThat(res.entry().rows()).isEqualTo(42);
    assertThat(res.report().restoredAs()).isEqualTo("restored.orders");
    // the plugin read its captured file through the view, and the engine counted the bytes
    assertThat(res.report().checksum()).isEqualTo("wal of db2");
    assertThat(res.bytesFetched()).isEqualTo("wal of db2".length());
    assertThat(events).contains("phase load");
    assertThatThrownBy(
            () ->
                ObjectRestore.run(
                    repo,
                    m,
                    "test:b/public.order",
                    URI.create("test://t:1/b"),
                    null,
                    false,
                    Map.of(),
                    null,
                    apps,
                    fs,
                    null,
                    (p, d) -> {}))
        .isInstanceOf(SnapshotNotFoundException.class)
        .hasMessageContaining("did you mean")
        .hasMessageContaining("test:b/public.orders");
    assertThatThrownBy(
            () ->
                ObjectRestore.run(
                    repo,
                    m,
                    "orders",
                    URI.create("test://t:1/b"),
                    null,
                    false,
                    Map.of(),
                    null,
                    apps,
                    fs,
                    null,
                    (p, d) -> {}))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("PLUGIN:ID");
  }

  private final class RecordingProvider implements SnapshotProvider {
    @Override
    public String name() {
      return "rec";
    }

    @Override
    public Hold begin(List<Path> targets, Duration maxHold) throws IOException {
      events.add("freeze");
      if (app.failAt.equals("freeze")) {
        throw new IOException("injected freeze failure");
      }
      return new Hold() {
        boolean closed;

        @Override
        public void check() {}

        @Override
        public void close() {
          if (!closed) {
            closed = true;
            events.add("thaw");
          }
        }
      };
    }
  }
}
