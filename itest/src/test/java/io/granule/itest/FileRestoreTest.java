package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code granule ls} and {@code granule restore file} on a GPT disk holding an ext4 filesystem made
 * by {@code mkfs.ext4 -d}: files come back equal in content and metadata, reading only a small part
 * of the disk's chunks.
 */
class FileRestoreTest {
  @TempDir Path tmp;

  static void sh(Path dir, String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(String.join(" ", cmd) + ": " + out).isZero();
  }

  static void requireTools() {
    for (String tool : List.of("mkfs.ext4", "sgdisk")) {
      boolean present =
          java.util.stream.Stream.of(
                  System.getenv("PATH").split(":"), new String[] {"/usr/sbin", "/sbin"})
              .flatMap(java.util.Arrays::stream)
              .anyMatch(d -> Files.isExecutable(Path.of(d, tool)));
      if (!present && "true".equals(System.getenv("CI"))) {
        throw new AssertionError(tool + " is missing: scripts/setup installs it");
      }
      org.junit.jupiter.api.Assumptions.assumeTrue(present, tool + " is not installed");
    }
  }

  @Test
  void listAndRestoreFilesFromInsideABackedUpDisk() throws Exception {
    requireTools();
    Path tree = Files.createDirectories(tmp.resolve("tree"));
    Files.createDirectories(tree.resolve("home/alice/docs"));
    Path home = tree.resolve("home/alice");
    Random rnd = new Random(5);
    byte[] big = new byte[10 << 20];
    rnd.nextBytes(big);
    Files.write(home.resolve("report.bin"), big);
    Files.writeString(home.resolve("docs/résumé.txt"), "curriculum vitae\n");
    Files.writeString(tree.resolve("home/alice/notes.txt"), "notes\n");
    Files.setPosixFilePermissions(
        tree.resolve("home/alice/notes.txt"), PosixFilePermissions.fromString("rw-------"));
    Files.setLastModifiedTime(
        tree.resolve("home/alice/notes.txt"), FileTime.fromMillis(1_600_000_000_000L));
    Files.createSymbolicLink(home.resolve("docs/latest"), Path.of("résumé.txt"));
    Files.createLink(home.resolve("docs/copy.txt"), home.resolve("docs/résumé.txt"));
    // other data that a single-file restore must not read
    Path other = Files.createDirectories(tree.resolve("var/lib/db"));
    for (int i = 0; i < 12; i++) {
      byte[] b = new byte[8 << 20];
      rnd.nextBytes(b);
      Files.write(other.resolve("table" + i + ".dat"), b);
    }

    sh(tmp, "truncate", "-s", "160M", "fs.img");
    sh(tmp, "mkfs.ext4", "-q", "-F", "-d", tree.toString(), "fs.img");
    sh(tmp, "truncate", "-s", "200M", "disk.img");
    sh(tmp, "sgdisk", "-o", "-n", "1:2048:+170M", "disk.img");
    sh(
        tmp,
        "dd",
        "if=fs.img",
        "of=disk.img",
        "bs=1M",
        "seek=1",
        "conv=notrunc,sparse",
        "status=none");

    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result r =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "vm=disk.img");
    assertThat(r.exitCode()).as(r.err()).isZero();

    r =
        Granule.run(
            tmp, "ls", "--repo", repo.toString(), "latest:vm/p1", "/home/alice/docs", "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode ls = Api.JSON.readTree(r.out());
    assertThat(ls.get("filesystem").asText()).isEqualTo("ext4");
    assertThat(ls.get("partition").asText()).isEqualTo("p1");
    List<String> names = new java.util.ArrayList<>();
    ls.get("entries").forEach(e -> names.add(e.get("name").asText()));
    assertThat(names).containsExactlyInAnyOrder("résumé.txt", "latest", "copy.txt");

    Path out = tmp.resolve("out");
    r =
        Granule.run(
            tmp,
            "restore",
            "file",
            "--repo",
            repo.toString(),
            "latest",
            "/home/alice",
            "--to",
            out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    Path alice = out.resolve("alice");
    assertThat(Files.readAllBytes(alice.resolve("report.bin"))).isEqualTo(big);
    assertThat(Files.readString(alice.resolve("docs/résumé.txt"))).isEqualTo("curriculum vitae\n");
    assertThat(Files.readSymbolicLink(alice.resolve("docs/latest")))
        .isEqualTo(Path.of("résumé.txt"));
    assertThat(Files.getAttribute(alice.resolve("docs/copy.txt"), "unix:ino"))
        .isEqualTo(Files.getAttribute(alice.resolve("docs/résumé.txt"), "unix:ino"));
    assertThat(
            PosixFilePermissions.toString(
                Files.getPosixFilePermissions(alice.resolve("notes.txt"))))
        .isEqualTo("rw-------");
    assertThat(Files.getLastModifiedTime(alice.resolve("notes.txt"), LinkOption.NOFOLLOW_LINKS))
        .isEqualTo(FileTime.fromMillis(1_600_000_000_000L));
    // ~11 MiB of a ~110 MiB filesystem: only the chunks that hold it (and metadata) are read
    assertThat(r.out()).containsPattern("\\d+ of \\d+ chunks fetched");
    java.util.regex.Matcher m =
        java.util.regex.Pattern.compile("(\\d+) of (\\d+) chunks fetched").matcher(r.out());
    assertThat(m.find()).isTrue();
    long fetched = Long.parseLong(m.group(1));
    long withData = Long.parseLong(m.group(2));
    assertThat(fetched).as(r.out()).isLessThan(withData / 3);

    // restoring again into the same place overwrites nothing
    r =
        Granule.run(
            tmp,
            "restore",
            "file",
            "--repo",
            repo.toString(),
            "latest",
            "/home/alice",
            "--to",
            out.toString());
    assertThat(r.exitCode()).isEqualTo(7);
    assertThat(r.err()).contains("already exists");
    r = Granule.run(tmp, "ls", "--repo", repo.toString(), "latest", "/no/such/dir");
    assertThat(r.exitCode()).isEqualTo(4);
    assertThat(r.err()).contains("no '/no/such/dir' in ext4 on vm/p1");
  }

  /**
   * A file name made by a VM's user is shown escaped by {@code ls}, never sent raw to the
   * operator's terminal, and kept exact in {@code --json} (audit12 storage L2).
   */
  @Test
  void aFileNameWithAnEscapeSequenceIsListedEscaped() throws Exception {
    requireTools();
    String evil = "evil\u001b[2J\u001b[31mname\u202e";
    Path tree = Files.createDirectories(tmp.resolve("tree/d"));
    Files.writeString(tree.resolve(evil), "hi\n", StandardCharsets.UTF_8);
    sh(tmp, "truncate", "-s", "16M", "esc.img");
    sh(tmp, "mkfs.ext4", "-q", "-F", "-d", tmp.resolve("tree").toString(), "esc.img");
    Path repo = tmp.resolve("repo");
    assertThat(Granule.run(tmp, "init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result r =
        Granule.run(tmp, "backup", "--repo", repo.toString(), "--disk", "esc=esc.img");
    assertThat(r.exitCode()).as(r.err()).isZero();

    r = Granule.run(tmp, "ls", "--repo", repo.toString(), "latest:esc", "/d");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out())
        .contains("evil\\x1b[2J\\x1b[31mname\\u202e")
        .doesNotContain("\u001b")
        .doesNotContain("\u202e");

    r = Granule.run(tmp, "ls", "--repo", repo.toString(), "latest:esc", "/d", "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    com.fasterxml.jackson.databind.JsonNode entries =
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(r.out()).get("entries");
    assertThat(entries.findValuesAsText("name")).contains(evil);
  }
}
