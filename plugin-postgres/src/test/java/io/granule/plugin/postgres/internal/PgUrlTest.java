package io.granule.plugin.postgres.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.ApplicationException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PgUrlTest {
  @Test
  void parsesUrlsAndHidesThePassword() throws Exception {
    PgUrl u =
        PgUrl.parse(URI.create("postgresql://app:p%40ss@db.example:6543/shop?sslmode=require"));
    assertThat(u.host()).isEqualTo("db.example");
    assertThat(u.port()).isEqualTo(6543);
    assertThat(u.user()).isEqualTo("app");
    assertThat(u.password()).isEqualTo("p@ss");
    assertThat(u.database()).isEqualTo("shop");
    assertThat(u.params()).containsEntry("sslmode", "require");
    assertThat(u.toString())
        .isEqualTo("postgres://app@db.example:6543/shop")
        .doesNotContain("p@ss");
    assertThat(u.instanceKey()).isEqualTo("db.example-6543");
    assertThat(u.jdbcUrl()).isEqualTo("jdbc:postgresql://db.example:6543/shop");

    PgUrl d = PgUrl.parse(URI.create("postgres://h"));
    assertThat(d.port()).isEqualTo(5432);
    assertThat(d.user()).isEqualTo("postgres");
    assertThat(d.database()).isEqualTo("postgres");
    assertThat(PgUrl.parse(URI.create("postgres://[::1]:5/x")).instanceKey()).isEqualTo("__1-5");
    assertThatThrownBy(() -> PgUrl.parse(URI.create("mysql://h/x")))
        .isInstanceOf(ApplicationException.class);
  }

  @Test
  void passwordFromEnvironmentThenPasswordFile(@TempDir Path home) throws Exception {
    PgUrl u = PgUrl.parse(URI.create("postgres://app@127.0.0.1:6543/shop"));
    assertThat(Passwords.find(u, Map.of("PGPASSWORD", "env"), home)).isEqualTo("env");
    assertThat(Passwords.find(u, Map.of(), home)).isNull();
    Path pgpass = home.resolve(".pgpass");
    Files.write(
        pgpass,
        List.of(
            "# comment",
            "other:*:*:app:no",
            "localhost:6543:shop:app:fr\\:om\\\\file",
            "*:*:*:*:fallback"),
        StandardCharsets.UTF_8);
    Files.setPosixFilePermissions(pgpass, PosixFilePermissions.fromString("rw-------"));
    assertThat(Passwords.find(u, Map.of(), home)).isEqualTo("fr:om\\file");
    assertThat(Passwords.find(u.withDatabase("crm"), Map.of(), home)).isEqualTo("fallback");
    assertThat(Passwords.find(u, Map.of("PGPASSFILE", home.resolve("none").toString()), home))
        .isNull();
    // libpq ignores a password file others can read
    Files.setPosixFilePermissions(pgpass, PosixFilePermissions.fromString("rw-r--r--"));
    assertThat(Passwords.find(u, Map.of(), home)).isNull();
  }

  @Test
  void walSegmentsSpanLogBoundaries() {
    assertThat(
            BackupHold.segments("0000000100000000000000FE", "000000010000000100000001", 16 << 20))
        .containsExactly(
            "0000000100000000000000FE",
            "0000000100000000000000FF",
            "000000010000000100000000",
            "000000010000000100000001");
  }

  @Test
  void foreignKeyLinesOfTheTableOfContents() {
    String line = "3363; 2606 16420 FK CONSTRAINT s orders orders_customer_id_fkey postgres";
    assertThat(
            TableRestore.isForeignKeyToLeaveOut(line, java.util.Set.of("orders_customer_id_fkey")))
        .isTrue();
    assertThat(TableRestore.isForeignKeyToLeaveOut(line, java.util.Set.of("orders_parent_fkey")))
        .isFalse();
    assertThat(
            TableRestore.isForeignKeyToLeaveOut(
                "3360; 2606 16410 CONSTRAINT s orders orders_pkey postgres",
                java.util.Set.of("orders_pkey")))
        .isFalse();
  }
}
