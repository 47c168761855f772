package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.app.EngineSnapshotView;
import io.granule.engine.internal.app.ObjectRestore;
import io.granule.engine.internal.app.StoredApplication;
import io.granule.engine.internal.image.FsFreeze;
import io.granule.engine.internal.image.RawFormat;
import io.granule.engine.internal.ops.BackupOperation;
import io.granule.engine.internal.ops.BackupOperation.AppSpec;
import io.granule.engine.internal.ops.BackupOperation.ConsistencySpec;
import io.granule.engine.internal.ops.BackupOperation.DiskSpec;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.FileSystemType;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.SnapshotProvider;
import io.granule.plugin.vmdisk.internal.fs.ext4.Ext4FileSystemType;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole loop through the engine: a live MariaDB whose data directory is on a loop-mounted ext4
 * image, a writer committing, an engine backup of the raw image with {@code --app mysql://…}
 * (quiesce, freeze, read, thaw, release, store the record and catalog), then single-table restores
 * through the engine's {@link EngineSnapshotView} (the ext4 reader over repository chunks).
 *
 * <p>Each writer round commits five orders and one customer in one transaction, so in any
 * consistent snapshot {@code orders = 2000 + 5 × customers}, with order ids a gap-free prefix.
 */
class EngineRestoreTest {
  @TempDir static Path base;
  static Path mnt;
  static boolean mounted;
  static MariaDbServer server;
  static Repository repo;
  static Manifest snapshot;
  static final Map<String, String> env = new HashMap<>();
  static PluginLeases<ApplicationPlugin> apps;
  static PluginLeases<FileSystemType> fileSystems;

  @BeforeAll
  static void backUp() throws Exception {
    Prerequisites.assume(MariaDbServer.isRoot(), "needs root (loop mount, fsfreeze)");
    Prerequisites.require("mkfs.ext4", "e2fsprogs");
    Prerequisites.require("fsfreeze", "util-linux");
    env.put("PATH", System.getenv("PATH"));
    Path img = base.resolve("db.img");
    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
      f.setLength(768L << 20);
    }
    MariaDbRestoreTest.run("mkfs.ext4", "-q", "-F", img.toString());
    mnt = Files.createDirectories(base.resolve("mnt"));
    Process mount =
        new ProcessBuilder("mount", "-o", "loop", img.toString(), mnt.toString())
            .redirectErrorStream(true)
            .start();
    String out = new String(mount.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    Prerequisites.assume(mount.waitFor() == 0, "mount -o loop failed: " + out);
    mounted = true;
    server = MariaDbServer.start(base.resolve("server"), mnt.resolve("var/lib/mysql"));
    server.sql(
        "CREATE DATABASE shop",
        "CREATE DATABASE crm",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(200))",
        "CREATE TABLE crm.customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50))",
        "USE shop",
        // Explicit ids: a multi-row INSERT … SELECT reserves auto-increment values in batches.
        "INSERT INTO shop.orders SELECT seq, CONCAT('preload ', seq) FROM seq_1_to_2000");
    AtomicBoolean stop = new AtomicBoolean();
    AtomicInteger rounds = new AtomicInteger();
    AtomicReference<Throwable> failed = new AtomicReference<>();
    Thread writer =
        new Thread(
            () -> {
              try (Connection c = server.connect();
                  Statement s = c.createStatement()) {
                c.setAutoCommit(false);
                while (!stop.get()) {
                  for (int i = 0; i < 5; i++) {
                    s.execute("INSERT INTO shop.orders (note) VALUES ('live')");
                  }
                  s.execute("INSERT INTO crm.customers (name) VALUES ('c')");
                  c.commit();
                  rounds.incrementAndGet();
                }
              } catch (Throwable e) {
                failed.set(e);
              }
            });
    writer.start();
    try {
      while (rounds.get() < 50 && failed.get() == null) {
        Thread.sleep(10);
      }
      PluginLeases<DiskImageFormat> formats =
          new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
      formats.added("raw", new RawFormat(), new Origin("io.granule.engine", "0"), 0);
      PluginLeases<SnapshotProvider> providers =
          new PluginLeases<>("SnapshotProvider", SnapshotProvider::name, Duration.ofSeconds(1));
      providers.added("fsfreeze", new FsFreeze(), new Origin("io.granule.engine", "0"), 0);
      apps =
          new PluginLeases<>("ApplicationPlugin", ApplicationPlugin::name, Duration.ofSeconds(1));
      apps.added("mysql", new MysqlPlugin(env::get), new Origin("io.granule.plugin.mysql", "0"), 0);
      fileSystems =
          new PluginLeases<>("FileSystemType", FileSystemType::name, Duration.ofSeconds(1));
      fileSystems.added(
          "ext4", new Ext4FileSystemType(), new Origin("io.granule.plugin.vmdisk", "0"), 0);
      repo = Repository.init(base.resolve("repo"), RepositoryConfig.defaults());
      snapshot =
          new BackupOperation(formats, providers, apps)
              .run(
                  repo,
                  List.of(DiskSpec.parse("db=" + img, "raw")),
                  List.of(),
                  new ConsistencySpec("fsfreeze", List.of(mnt), Duration.ofSeconds(60)),
                  new AppSpec(List.of(server.url(null)), Duration.ofSeconds(60)),
                  "test-host",
                  List.of(),
                  p -> {})
              .manifest();
      int atBackup = rounds.get();
      while (rounds.get() < atBackup + 50 && failed.get() == null) {
        Thread.sleep(10);
      }
    } finally {
      stop.set(true);
      writer.join(30_000);
    }
    assertThat(failed.get()).isNull();
  }

  @AfterAll
  static void cleanUp() throws Exception {
    if (repo != null) {
      repo.close();
    }
    if (server != null) {
      server.close();
    }
    if (mounted) {
      MariaDbRestoreTest.run("umount", mnt.toString());
    }
  }

  private ObjectRestoreReport restore(String object, String as) throws Exception {
    Map<String, String> options = Map.of("staging-dir", base.resolve("staging").toString());
    List<String> phases = new ArrayList<>();
    ObjectRestore.Result r =
        ObjectRestore.run(
            repo,
            snapshot,
            "mysql:" + object,
            server.url(null),
            as,
            false,
            options,
            null,
            apps,
            fileSystems,
            null,
            (phase, detail) -> phases.add(phase));
    assertThat(r.record()).isNotNull();
    assertThat(r.record().consistency()).isEqualTo("application");
    assertThat(r.entry().kind()).isEqualTo("table");
    StringBuilder sb = new StringBuilder("engine restore " + object + ":");
    r.report()
        .phases()
        .forEach((k, v) -> sb.append(String.format(Locale.ROOT, " %s=%dms", k, v.toMillis())));
    sb.append(
        String.format(
            Locale.ROOT,
            " fetched=%d bytes of %d disk bytes, total %d ms%n",
            r.bytesFetched(),
            r.diskBytes(),
            r.elapsed().toMillis()));
    Files.writeString(
        Path.of("target", "restore-timings.txt"),
        sb,
        StandardCharsets.UTF_8,
        StandardOpenOption.CREATE,
        StandardOpenOption.APPEND);
    return r.report();
  }

  private static long scalar(String sql) throws Exception {
    return Long.parseLong(server.query(sql));
  }

  @Test
  void restoresConsistentTablesFromAnEngineSnapshot() throws Exception {
    List<StoredApplication> stored = StoredApplication.of(snapshot);
    assertThat(stored).hasSize(1);
    ApplicationRecord record = stored.get(0).record();
    assertThat(record.product()).isEqualTo("MariaDB");
    assertThat(record.metadata())
        .containsEntry("quiesce", "mariadb_backup_stage")
        .containsKeys("binlog_file", "binlog_position", "gtid_binlog_pos");

    ObjectRestoreReport orders = restore("shop.orders", "shop.orders_then");
    ObjectRestoreReport customers = restore("crm.customers", "crm.customers_then");
    assertThat(orders.rows()).isEqualTo(2000 + 5 * customers.rows());
    assertThat(customers.rows()).isGreaterThanOrEqualTo(50);
    assertThat(scalar("SELECT MIN(id) FROM shop.orders_then")).isEqualTo(1);
    assertThat(scalar("SELECT MAX(id) FROM shop.orders_then")).isEqualTo(orders.rows());
    // The live tables moved on.
    assertThat(scalar("SELECT COUNT(*) FROM crm.customers")).isGreaterThan(customers.rows());
    assertThat(orders.notes()).anyMatch(n -> n.contains("equals the snapshot's table"));
  }

  @Test
  void withoutTheRecordTheSameSnapshotRestoresFromCrashRecovery() throws Exception {
    try (EngineSnapshotView view = new EngineSnapshotView(repo, snapshot, fileSystems)) {
      ObjectRestoreReport r =
          new MysqlPlugin(env::get)
              .restore(
                  new ObjectRestoreRequest(
                      "crm.customers",
                      server.url(null),
                      "crm.customers_crash",
                      false,
                      Map.of("staging-dir", base.resolve("staging").toString())),
                  view,
                  null,
                  (p, d) -> {});
      assertThat(r.notes()).anyMatch(n -> n.startsWith("data directory found by searching"));
      assertThat(r.rows()).isGreaterThanOrEqualTo(50);
    }
  }
}
