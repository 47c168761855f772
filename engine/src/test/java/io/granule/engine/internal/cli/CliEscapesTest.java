package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Names from a manifest (host, tags, disks, streams) and from the command line reach an operator's
 * terminal: control characters are shown escaped in listings and messages, kept exact in JSON, and
 * refused in the names a backup is given (audit12 storage L2).
 */
class CliEscapesTest {
  @TempDir Path tmp;
  StringWriter out = new StringWriter();
  StringWriter err = new StringWriter();
  final java.util.Map<String, String> env = new java.util.HashMap<>();

  int run(String... args) {
    out = new StringWriter();
    err = new StringWriter();
    CliContext ctx =
        TestContexts.of(
            TestContexts.formats(),
            TestContexts.applications(),
            tmp,
            out,
            err,
            env::get,
            Terminal.NONE);
    return new Cli(ctx).run(args);
  }

  private static final String HOST = "h1\u001b]0;PWNED\u0007\u001b[31mRED";
  private static final String TAG = "t\u001b[2Jx\u202e";
  private static final String DISK = "vm\u001b[41mX\u009b";

  /**
   * A repository whose one snapshot has such names, as a forged manifest (or an old writer) has.
   */
  private Path repoWithEscapes() throws Exception {
    Path repo = tmp.resolve("repo");
    Path img = TestImages.write(tmp.resolve("d.raw"), TestImages.mixed(1 << 20, 5));
    try (Repository r =
            Repository.init(
                repo, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10));
        RawDiskImage d = RawDiskImage.open(img)) {
      r.backup(
          new BackupRequest(
              List.of(new BackupRequest.NamedDisk(DISK, d)), HOST, List.of(TAG), null),
          BackupListener.NONE);
    }
    return repo;
  }

  @Test
  void snapshotsShowControlCharactersEscapedAndJsonKeepsThemExact() throws Exception {
    Path repo = repoWithEscapes();
    assertThat(run("snapshots", "--repo", repo.toString())).isZero();
    assertThat(out.toString())
        .contains("h1\\x1b]0;PWNED\\x07\\x1b[31mRED")
        .contains("vm\\x1b[41mX\\x9b")
        .contains("t\\x1b[2Jx\\u202e")
        .doesNotContain("\u001b")
        .doesNotContain("\u0007")
        .doesNotContain("\u009b")
        .doesNotContain("\u202e");

    assertThat(run("snapshots", "--repo", repo.toString(), "--json")).isZero();
    JsonNode m = new ObjectMapper().readTree(out.toString()).get(0);
    assertThat(m.get("host").asText()).isEqualTo(HOST);
    assertThat(m.get("tags").get(0).asText()).isEqualTo(TAG);
    assertThat(m.get("disks").get(0).get("name").asText()).isEqualTo(DISK);
  }

  /**
   * audit14 B L2: a key blob's JSON is not authenticated (only the blob the password opens is), so
   * whoever can write the storage adds one whose "created" holds terminal escapes and a fake line
   * marked current and sealed: shown escaped.
   */
  @Test
  void keyListShowsWhatAnotherKeyBlobSaysEscaped() throws Exception {
    Path repo = tmp.resolve("enc");
    env.put("GRANULE_PASSWORD", "pw");
    assertThat(run("init", "--repo", repo.toString())).as(err.toString()).isZero();
    String created =
        "\u001b]0;owned\u0007\u001b[31m2020-01-01T00:00:00Z\n* ffffffffffffffff sealed";
    String json =
        "{\"version\":2,\"kdf\":\"scrypt\",\"n\":32768,\"r\":8,\"p\":1,\"salt\":\"AA==\","
            + "\"nonce\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"AA==\",\"created\":"
            + new ObjectMapper().writeValueAsString(created)
            + "}";
    java.nio.file.Files.write(
        repo.resolve("keys").resolve("0".repeat(64)),
        io.granule.engine.internal.repo.BlobFrames.frame(
            0x474b4559, 2, json.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    assertThat(run("key", "list", "--repo", repo.toString())).as(err.toString()).isZero();
    assertThat(out.toString())
        .contains("\\x1b]0;owned\\x07")
        .contains("\\x0a* ffffffffffffffff sealed")
        .doesNotContain("\u001b")
        .doesNotContain("\u0007");
    assertThat(out.toString().lines().filter(l -> l.startsWith("* "))).hasSize(1);
  }

  @Test
  void anErrorQuotingANameShowsItEscaped() throws Exception {
    Path repo = repoWithEscapes();
    int rc =
        run(
            "restore",
            "disk",
            "latest:no\u001b[2Jdisk",
            "--repo",
            repo.toString(),
            "--to",
            tmp.resolve("x.img").toString());
    assertThat(rc).isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(err.toString()).contains("no\\x1b[2Jdisk").doesNotContain("\u001b");
  }

  @Test
  void aBackupRefusesControlCharactersInDiskAndStreamNames() throws Exception {
    Path repo = tmp.resolve("r2");
    assertThat(run("init", "--repo", repo.toString(), "--insecure-no-encryption")).isZero();
    Path img = TestImages.write(tmp.resolve("e.raw"), TestImages.mixed(1 << 20, 6));
    assertThat(run("backup", "--repo", repo.toString(), "--disk", "vm\u001b[31mRED=" + img))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString())
        .contains("invalid disk name")
        .contains("control character (U+001B)")
        .doesNotContain("\u001b");
    assertThat(run("backup", "--repo", repo.toString(), "--stream", "s\u0007x=" + img))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("invalid stream name").doesNotContain("\u0007");
    assertThat(run("backup", "--repo", repo.toString(), "--disk", "vm\u202e=" + img))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(run("snapshots", "--repo", repo.toString())).isZero();
    assertThat(out.toString()).contains("no snapshots");
  }

  @Test
  void printableEscapesC0DelC1AndBidiAndKeepsTheRest() {
    assertThat(Printable.text("a\u0000b\u007fc\u0085d\u202ee\u2028f\nñ日本\uD83D\uDE00\\"))
        .isEqualTo("a\\x00b\\x7fc\\x85d\\u202ee\\u2028f\\x0añ日本\uD83D\uDE00\\");
    assertThat(Printable.lines("one\ntwo\tthree\r\u001b")).isEqualTo("one\ntwo\tthree\\x0d\\x1b");
    assertThat(Printable.text("\uDB40\uDC01x")).isEqualTo("\\U000e0001x");
    assertThat(Printable.text("plain")).isSameAs("plain");
  }
}
