package io.granule.plugin.mysql.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * Transportable tablespace against dump and load for one larger table (1,000,000 rows, about 130
 * MB) restored into a server on the same host. Opt-in: {@code ./mvnw -o -pl plugin-mysql verify
 * -Dtest=RestoreBenchmarkTest -Dgranule.bench=true}; figures go to {@code
 * target/restore-timings.txt}.
 */
@EnabledIfSystemProperty(named = "granule.bench", matches = "true")
class RestoreBenchmarkTest {
  @TempDir Path base;

  @Test
  void transportableTablespaceAgainstDumpAndLoad() throws Exception {
    Path datadir = base.resolve("data");
    try (MariaDbServer server = MariaDbServer.start(base.resolve("server"), datadir)) {
      server.sql(
          "CREATE DATABASE shop",
          "USE shop",
          "CREATE TABLE shop.big (id INT PRIMARY KEY, a VARCHAR(64), b BIGINT, c TEXT, KEY (b))",
          "INSERT INTO shop.big SELECT seq, MD5(seq), seq * 7, REPEAT('z', 40)"
              + " FROM seq_1_to_1000000",
          "FLUSH TABLES shop.big FOR EXPORT",
          "UNLOCK TABLES");
      Path copy = base.resolve("snapshot/var/lib/mysql");
      Files.createDirectories(copy.getParent());
      MariaDbRestoreTest.run("cp", "-a", datadir.toString(), copy.toString());
      Map<String, String> env = new HashMap<>();
      env.put("PATH", System.getenv("PATH"));
      MysqlPlugin plugin = new MysqlPlugin(env::get);
      DirectorySnapshotView view =
          new DirectorySnapshotView("ab".repeat(32), base.resolve("snapshot"));
      StringBuilder sb = new StringBuilder();
      for (String transport : new String[] {"auto", "dump"}) {
        ObjectRestoreReport r =
            plugin.restore(
                new ObjectRestoreRequest(
                    "shop.big",
                    server.url(null),
                    "shop.big_" + transport,
                    false,
                    Map.of(
                        "transport", transport, "staging-dir", base.resolve("staging").toString())),
                view,
                null,
                (p, d) -> {});
        assertThat(r.rows()).isEqualTo(1_000_000);
        sb.append("1M rows, transport=").append(transport).append(':');
        r.phases()
            .forEach((k, v) -> sb.append(String.format(Locale.ROOT, " %s=%dms", k, v.toMillis())));
        sb.append(" ").append(r.notes()).append('\n');
      }
      Files.writeString(
          Path.of("target", "restore-timings.txt"),
          sb,
          StandardCharsets.UTF_8,
          StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    }
  }
}
