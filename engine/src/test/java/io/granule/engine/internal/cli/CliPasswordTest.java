package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Passwords on the command line: where they come from, and the exit codes when they are wrong. */
class CliPasswordTest {
  @TempDir Path tmp;
  StringWriter out = new StringWriter();
  StringWriter err = new StringWriter();
  final Map<String, String> env = new HashMap<>();
  final Deque<String> typed = new ArrayDeque<>();
  boolean interactive;

  int run(String... args) {
    out = new StringWriter();
    err = new StringWriter();
    Terminal t =
        interactive ? prompt -> typed.isEmpty() ? null : typed.pop().toCharArray() : Terminal.NONE;
    CliContext ctx =
        TestContexts.of(
            TestContexts.formats(), TestContexts.applications(), tmp, out, err, env::get, t);
    return new Cli(ctx).run(args);
  }

  String repo() {
    return tmp.resolve("repo").toString();
  }

  @Test
  void initEncryptsWithThePasswordFromTheEnvironment() throws Exception {
    env.put("GRANULE_PASSWORD", "s3cret");
    assertThat(run("init", "--repo", repo())).isZero();
    assertThat(out.toString()).startsWith("created encrypted repository");
    assertThat(
            new String(Files.readAllBytes(tmp.resolve("repo/config")), StandardCharsets.ISO_8859_1))
        .contains("\"encryption\":\"aes-256-gcm\"");
    assertThat(run("snapshots", "--repo", repo())).isZero();
    env.put("GRANULE_PASSWORD", "wrong");
    assertThat(run("snapshots", "--repo", repo())).isEqualTo(ExitCodes.AUTH);
    assertThat(err.toString())
        .isEqualTo(
            "granule: wrong password for repository at '"
                + repo()
                + "' (no key matches); try again or use the right --password-file"
                + System.lineSeparator());
  }

  @Test
  void withoutAnyPasswordNonInteractiveIsAUsageErrorNamingTheThreeWays() {
    assertThat(run("init", "--repo", repo())).isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString())
        .contains(
            "no password given: set GRANULE_PASSWORD, use --password-file FILE, or run"
                + " interactively to be asked");
    assertThat(tmp.resolve("repo")).doesNotExist();
  }

  @Test
  void passwordFileWinsAndIsReadWithoutItsLineEnding() throws Exception {
    Path f = Files.writeString(tmp.resolve("pw"), "from file\n", StandardCharsets.UTF_8);
    env.put("GRANULE_PASSWORD", "from env");
    assertThat(run("init", "--repo", repo(), "--password-file", f.toString())).isZero();
    assertThat(run("snapshots", "--repo", repo())).isEqualTo(ExitCodes.AUTH);
    env.put("GRANULE_PASSWORD", "from file");
    assertThat(run("snapshots", "--repo", repo())).isZero();
  }

  @Test
  void interactiveInitAsksTwiceAndRefusesAMismatch() {
    interactive = true;
    typed.add("one");
    typed.add("two");
    assertThat(run("init", "--repo", repo())).isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("the passwords differ");
    typed.add("same");
    typed.add("same");
    assertThat(run("init", "--repo", repo())).isZero();
    typed.add("same");
    assertThat(run("snapshots", "--repo", repo())).isZero();
  }

  @Test
  void keyPasswdReplacesTheKey() throws Exception {
    env.put("GRANULE_PASSWORD", "old");
    assertThat(run("init", "--repo", repo())).isZero();
    env.put("GRANULE_NEW_PASSWORD", "new");
    assertThat(run("key", "passwd", "--repo", repo())).isZero();
    assertThat(out.toString()).startsWith("password changed: new key ");
    assertThat(run("key", "list", "--repo", repo())).isEqualTo(ExitCodes.AUTH);
    env.put("GRANULE_PASSWORD", "new");
    assertThat(run("key", "list", "--repo", repo())).isZero();
    assertThat(out.toString().lines()).hasSize(2);
    assertThat(out.toString().lines().skip(1).findFirst().orElseThrow())
        .startsWith("* ")
        .endsWith(" sealed");
    assertThat(run("key", "list", "--repo", repo(), "--json")).isZero();
    com.fasterxml.jackson.databind.JsonNode keys =
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString());
    assertThat(keys).hasSize(1);
    assertThat(keys.get(0).get("version").asInt()).isEqualTo(2);
    assertThat(keys.get(0).get("sealsConfig").asBoolean()).isTrue();
    assertThat(keys.get(0).get("current").asBoolean()).isTrue();
  }

  /**
   * audit11 netkeys F6: whether a key blob seals the config is known only of the one the password
   * opened; another's format is what its unauthenticated frame says, so it is shown as "unverified"
   * (and {@code sealsConfig} null, {@code verified} false in JSON).
   */
  @Test
  void keyListVouchesOnlyForTheBlobThePasswordOpened() throws Exception {
    env.put("GRANULE_PASSWORD", "mine");
    assertThat(run("init", "--repo", repo())).isZero();
    // a blob of another repository (another password) put beside it
    env.put("GRANULE_PASSWORD", "theirs");
    assertThat(run("init", "--repo", tmp.resolve("other").toString())).isZero();
    try (var keys = Files.list(tmp.resolve("other/keys"))) {
      for (Path k : keys.toList()) {
        Files.copy(k, tmp.resolve("repo/keys").resolve(k.getFileName()));
      }
    }
    env.put("GRANULE_PASSWORD", "mine");
    assertThat(run("key", "list", "--repo", repo())).as(err.toString()).isZero();
    java.util.List<String> lines = out.toString().lines().toList();
    assertThat(lines.stream().filter(l -> l.startsWith("* ")))
        .singleElement()
        .matches(l -> l.endsWith(" sealed"));
    assertThat(lines.stream().filter(l -> l.startsWith("  ") && !l.startsWith("  ID")))
        .singleElement()
        .matches(l -> l.endsWith(" unverified"));
    assertThat(out.toString()).contains("a key blob marked 'unverified' is not opened");
    assertThat(out.toString()).doesNotContain("not sealed");
    assertThat(run("key", "list", "--repo", repo(), "--json")).isZero();
    com.fasterxml.jackson.databind.JsonNode keys =
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString());
    assertThat(keys).hasSize(2);
    for (com.fasterxml.jackson.databind.JsonNode k : keys) {
      boolean current = k.get("current").asBoolean();
      assertThat(k.get("verified").asBoolean()).isEqualTo(current);
      assertThat(k.get("version").asInt()).isEqualTo(2);
      if (current) {
        assertThat(k.get("sealsConfig").asBoolean()).isTrue();
      } else {
        assertThat(k.get("sealsConfig").isNull()).isTrue();
      }
    }
  }

  @Test
  void insecureNoEncryptionSaysWhatItMeans() throws Exception {
    assertThat(run("init", "--help")).isZero();
    assertThat(out.toString()).contains("--insecure-no-encryption").contains("Do NOT encrypt");
    assertThat(run("init", "--repo", repo(), "--insecure-no-encryption")).isZero();
    assertThat(out.toString()).startsWith("created UNENCRYPTED repository");
    assertThat(run("snapshots", "--repo", repo())).isZero();
    assertThat(run("key", "passwd", "--repo", repo())).isEqualTo(ExitCodes.USAGE);
  }
}
