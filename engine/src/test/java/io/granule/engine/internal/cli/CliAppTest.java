package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.app.RecordingApplication;
import io.granule.engine.internal.image.RawFormat;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.DiskImageFormat;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code backup --app}, {@code catalog} and {@code restore table} on the command line: output,
 * JSON, and the exit code of each application failure. The application is the engine tests'
 * recording plugin; the PostgreSQL and MariaDB plugins are tested end to end in the itest module.
 */
class CliAppTest {
  @TempDir Path tmp;
  StringWriter out = new StringWriter();
  StringWriter err = new StringWriter();
  final Map<String, String> env = new HashMap<>();
  final RecordingApplication app = new RecordingApplication();
  PluginLeases<DiskImageFormat> formats;
  PluginLeases<ApplicationPlugin> apps;

  @BeforeEach
  void setUp() throws Exception {
    formats = new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
    formats.added("raw", new RawFormat(), new Origin("io.granule.engine", "0"), 0);
    apps = new PluginLeases<>("ApplicationPlugin", ApplicationPlugin::name, Duration.ofSeconds(1));
    apps.added("t", app, new Origin("test", "0"), 0);
    env.put("GRANULE_PASSWORD", "pw");
    env.put("XDG_CACHE_HOME", tmp.resolve("cache").toString());
    byte[] data = new byte[1 << 20];
    new Random(3).nextBytes(data);
    Files.write(tmp.resolve("vm.img"), data);
    assertThat(run("init", "--repo", repo())).as(err.toString()).isZero();
  }

  int run(String... args) {
    out = new StringWriter();
    err = new StringWriter();
    CliContext ctx = TestContexts.of(formats, apps, tmp, out, err, env::get, Terminal.NONE);
    return new Cli(ctx).run(args);
  }

  String repo() {
    return tmp.resolve("repo").toString();
  }

  int backup(String... urls) {
    List<String> args =
        new java.util.ArrayList<>(
            List.of("backup", "--repo", repo(), "--disk", tmp.resolve("vm.img").toString()));
    for (String u : urls) {
      args.add("--app");
      args.add(u);
    }
    args.add("--no-progress");
    return run(args.toArray(String[]::new));
  }

  /**
   * A repository everyone can write is used with a warning: whoever can write it can delete,
   * withhold or roll back backups, and (for a client with no pin) downgrade its config.
   */
  @Test
  void aRepositoryEveryoneCanWriteIsUsedWithAWarning() throws Exception {
    assertThat(run("snapshots", "--repo", repo())).isZero();
    assertThat(err.toString()).doesNotContain("warning");
    Files.setPosixFilePermissions(
        tmp.resolve("repo/keys"),
        java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
    assertThat(run("snapshots", "--repo", repo())).isZero();
    assertThat(err.toString())
        .contains("warning: " + tmp.resolve("repo/keys") + " can be written by every user");
  }

  @Test
  void backupReportsEachApplicationAndCatalogListsAndFindsObjects() throws Exception {
    assertThat(backup("test://u:pw123@db1:1/shop")).as(err.toString()).isZero();
    assertThat(out.toString())
        .contains("app  test/db1")
        .contains("TestDB 1.0, application-consistent, 2 objects cataloged")
        .doesNotContain("stream app/")
        .doesNotContain("pw123");
    assertThat(backup("test://u@db2:2/crm")).isZero();

    assertThat(run("snapshots", "--repo", repo())).isZero();
    assertThat(out.toString()).contains("APPS").contains("test/db1").contains("test/db2");

    assertThat(run("catalog", "latest", "--repo", repo())).isZero();
    assertThat(out.toString())
        .contains("test:crm/public.orders")
        .contains("table")
        .contains("~42 rows")
        .doesNotContain("shop");

    assertThat(run("catalog", "--find", "ORDERS", "--repo", repo(), "--json")).isZero();
    JsonNode hits = new ObjectMapper().readTree(out.toString());
    assertThat(hits).hasSize(2);
    assertThat(hits.get(0).get("object").asText()).isEqualTo("test:shop/public.orders");
    assertThat(hits.get(1).get("object").asText()).isEqualTo("test:crm/public.orders");
    assertThat(hits.get(0).get("rows").asLong()).isEqualTo(42);
    // searched once: every catalog is now in the local cache
    // one repository directory (beside pins/, which records that the repository is encrypted)
    assertThat(Files.list(tmp.resolve("cache/granule")).map(p -> p.getFileName().toString()))
        .contains("pins")
        .filteredOn(n -> !n.equals("pins"))
        .hasSize(1);

    assertThat(run("catalog", "--find", "nothing-like-it", "--repo", repo())).isZero();
    assertThat(out.toString()).contains("no object matches");
    assertThat(run("catalog", "--repo", repo())).isEqualTo(ExitCodes.USAGE);
  }

  /**
   * A repository of more chunks than an index worth keeping (65 536) keeps its chunk index in the
   * user's cache, in the repository's directory, from the first command that loads it; the next
   * commands read it and give the same answers.
   */
  @Test
  void theChunkIndexIsKeptInTheUsersCache() throws Exception {
    Path image = tmp.resolve("many.img");
    byte[] block = new byte[1 << 20];
    Random r = new Random(9);
    try (var o = Files.newOutputStream(image)) {
      for (int i = 0; i < 260; i++) { // 66 560 chunks of 4 KiB
        r.nextBytes(block);
        o.write(block);
      }
    }
    String many = tmp.resolve("many").toString();
    assertThat(run("init", "--repo", many, "--chunk-size", "4K")).as(err.toString()).isZero();
    String args = "--repo=" + many;
    assertThat(run("backup", args, "--disk", "vm=" + image, "--no-progress"))
        .as(err.toString())
        .isZero();
    String id =
        new String(
                Files.readAllBytes(Path.of(many, "config")),
                java.nio.charset.StandardCharsets.ISO_8859_1)
            .replaceAll("(?s).*\"repositoryId\":\"([0-9a-f]+)\".*", "$1");
    Path kept = tmp.resolve("cache/granule").resolve(id).resolve("chunk-index");
    assertThat(kept).doesNotExist(); // the backup loaded an empty index
    assertThat(run("stats", args, "--json")).as(err.toString()).isZero();
    long chunks = new ObjectMapper().readTree(out.toString()).get("chunks").asLong();
    assertThat(chunks).isEqualTo(66_560);
    assertThat(kept).isRegularFile();
    long written = Files.getLastModifiedTime(kept).toMillis();
    assertThat(Files.size(kept)).isGreaterThan(chunks * 64);
    assertThat(run("stats", args, "--json")).as(err.toString()).isZero();
    assertThat(new ObjectMapper().readTree(out.toString()).get("chunks").asLong())
        .isEqualTo(chunks);
    assertThat(Files.getLastModifiedTime(kept).toMillis()).isEqualTo(written); // read, not written
    assertThat(run("backup", args, "--disk", "vm=" + image, "--no-progress")).isZero();
    assertThat(out.toString()).contains("0 B new");
  }

  @Test
  void restoreTablePrintsRowsChecksumPhasesAndChunks() throws Exception {
    assertThat(backup("test://u@db1:1/shop")).isZero();
    assertThat(
            run(
                "restore",
                "table",
                "latest",
                "test:shop/public.orders",
                "--to",
                "test://u:secret@target:1/shop",
                "--repo",
                repo()))
        .as(err.toString())
        .isZero();
    assertThat(out.toString())
        .contains("restored test:shop/public.orders")
        .contains("application-consistent")
        .contains("as restored.orders: 42 rows, checksum wal of db1")
        .contains("load 0.00 s");
    assertThat(err.toString()).contains("load");
    assertThat(out.toString() + err.toString()).doesNotContain("secret");

    assertThat(
            run(
                "restore",
                "table",
                "latest",
                "test:shop/public.orders",
                "--to",
                "test://u@target:1/shop",
                "--repo",
                repo(),
                "--json"))
        .isZero();
    JsonNode o = new ObjectMapper().readTree(out.toString());
    assertThat(o.get("rows").asLong()).isEqualTo(42);
    assertThat(o.get("bytesFetched").asLong()).isEqualTo("wal of db1".length());
  }

  @Test
  void applicationFailuresHaveTheirExitCodes() throws Exception {
    app.failAt = "connect db1";
    assertThat(backup("test://u@db1:1/shop")).isEqualTo(ExitCodes.AUTH);
    assertThat(err.toString()).contains("test://u@db1:1/shop: connect failed");
    app.failAt = "quiesce db1";
    assertThat(backup("test://u@db1:1/shop")).isEqualTo(ExitCodes.APPLICATION);
    assertThat(err.toString()).contains("quiesce failed");
    assertThat(backup("nosuch://u@db1:1/shop")).isEqualTo(ExitCodes.PLUGIN);
    assertThat(backup("not a url")).isEqualTo(ExitCodes.USAGE);
    app.failAt = "";
    assertThat(backup("test://u@db1:1/shop")).isZero();

    String to = "test://u@t:1/shop";
    assertThat(run("restore", "table", "latest", "test:shop/nosuch", "--to", to, "--repo", repo()))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(run("restore", "table", "latest", "nosuch:shop/x", "--to", to, "--repo", repo()))
        .isEqualTo(ExitCodes.PLUGIN);
    assertThat(run("restore", "table", "latest", "shop.x", "--to", to, "--repo", repo()))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(
            run(
                "restore",
                "table",
                "latest",
                "test:shop/public.orders",
                "--to",
                "x",
                "--repo",
                repo()))
        .isEqualTo(ExitCodes.USAGE);
  }

  @Test
  void pluginRestoreFailuresMapToExitCodes() throws Exception {
    // objects the recording plugin refuses like a real one would; cataloged under other names, so
    // these ids are not in the catalog: use a snapshot without --app (crash-consistent path)
    assertThat(backup()).isZero();
    String to = "test://u@t:1/shop";
    assertThat(
            run(
                "restore",
                "table",
                "latest",
                "test:shop/missing-tool",
                "--to",
                to,
                "--repo",
                repo()))
        .isEqualTo(ExitCodes.TOOL);
    assertThat(err.toString()).contains("no staging binaries of TestDB 1");
    assertThat(run("restore", "table", "latest", "test:shop/taken", "--to", to, "--repo", repo()))
        .isEqualTo(ExitCodes.TARGET);
  }
}
