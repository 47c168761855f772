package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The repository commands through the real executable jar: what an operator types. */
class RepositoryCliTest {
  @TempDir Path tmp;

  /** A VM-like raw image: zeros, random data, repeated blocks, text. */
  static Path image(Path p, int mib, long seed) throws IOException {
    Random rnd = new Random(seed);
    byte[] block = new byte[1 << 20];
    byte[] repeated = new byte[1 << 20];
    rnd.nextBytes(repeated);
    try (FileChannel ch =
        FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      for (int i = 0; i < mib; i++) {
        switch (i % 4) {
          case 0 -> java.util.Arrays.fill(block, (byte) 0);
          case 1 -> rnd.nextBytes(block);
          case 2 -> System.arraycopy(repeated, 0, block, 0, block.length);
          default -> {
            for (int j = 0; j < block.length; j++) {
              block[j] = (byte) ('a' + (j * 31 + i) % 26);
            }
          }
        }
        ch.write(java.nio.ByteBuffer.wrap(block), (long) i << 20);
      }
    }
    return p;
  }

  static String sha256(Path p) throws Exception {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    try (InputStream in = Files.newInputStream(p)) {
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }

  Granule.Result granule(String... args) throws Exception {
    return Granule.run(tmp, args);
  }

  @Test
  void initBackupListRestoreVerifyStatsRoundTrip() throws Exception {
    Path repo = tmp.resolve("repo");
    Path img = image(tmp.resolve("vm.img"), 24, 1);

    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("created encrypted repository").contains("chunk size 512 KiB");
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isEqualTo(3);

    r = granule("backup", "--repo", repo.toString(), "--disk", img.toString(), "--tag", "nightly");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).containsPattern("snapshot [0-9a-f]{64} saved").contains("disk vm.img");

    r = granule("snapshots", "--repo", repo.toString(), "--json");
    JsonNode snaps = Api.JSON.readTree(r.out());
    assertThat(snaps).hasSize(1);
    assertThat(snaps.get(0).get("tags").get(0).asText()).isEqualTo("nightly");
    assertThat(snaps.get(0).get("disks").get(0).get("name").asText()).isEqualTo("vm.img");
    String id = snaps.get(0).get("id").asText();

    Path out = tmp.resolve("restored.img");
    r =
        granule(
            "restore",
            "disk",
            id.substring(0, 8),
            "--repo",
            repo.toString(),
            "--to",
            out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out)).isEqualTo(sha256(img));
    assertThat(Files.exists(tmp.resolve("restored.img.partial"))).isFalse();

    // An existing target is never overwritten silently.
    r = granule("restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).isEqualTo(7);
    assertThat(r.err()).contains("exists: add --force");
    r =
        granule(
            "restore",
            "disk",
            "latest:vm.img",
            "--repo",
            repo.toString(),
            "--to",
            out.toString(),
            "--force");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out)).isEqualTo(sha256(img));

    r = Granule.run(tmp, Map.of("GRANULE_REPO", repo.toString()), "verify", "--read-data");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("checked 1 snapshot,").contains("no damage found");

    r = Granule.run(tmp, Map.of("GRANULE_REPO", repo.toString()), "stats", "--json");
    JsonNode stats = Api.JSON.readTree(r.out());
    assertThat(stats.get("snapshots").asInt()).isEqualTo(1);
    assertThat(stats.get("logicalBytes").asLong()).isEqualTo(24L << 20);
    // zeros are not stored and the repeated block is stored once
    assertThat(stats.get("storedBytes").asLong()).isLessThan(16L << 20);
  }

  @Test
  void chunkHashIsChosenAtInitAndTheJavaFallbackNamesChunksAlike() throws Exception {
    Path img = image(tmp.resolve("vm.img"), 8, 3);
    Path repo = tmp.resolve("b3");
    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("chunk hash blake3-keyed");
    r = granule("backup", "--repo", repo.toString(), "--disk", img.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode info = Api.JSON.readTree(granule("stats", "--repo", repo.toString(), "--json").out());
    assertThat(info.get("formatVersion").asInt()).isEqualTo(3);
    assertThat(info.get("chunkHash").asText()).isEqualTo("blake3-keyed");
    assertThat(info.get("encryption").asText()).isEqualTo("aes-256-gcm");
    long stored = info.get("storedBytes").asLong();
    assertThat(stored).isPositive();

    // without libgranule-native, the engine's embedded commons-codec BLAKE3 names every chunk as
    // the native one did: a second backup stores nothing new, and restores read the first one's
    Map<String, String> javaOnly = Map.of("GRANULE_JAVA_OPTS", "-Dgranule.crypto.native=false");
    r = Granule.run(tmp, javaOnly, "backup", "--repo", repo.toString(), "--disk", img.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(
            Api.JSON
                .readTree(granule("stats", "--repo", repo.toString(), "--json").out())
                .get("storedBytes")
                .asLong())
        .isEqualTo(stored);
    Path out = tmp.resolve("out.img");
    r =
        Granule.run(
            tmp,
            javaOnly,
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out)).isEqualTo(sha256(img));

    Path sha = tmp.resolve("sha");
    r = granule("init", "--repo", sha.toString(), "--chunk-hash", "SHA256");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).contains("chunk hash hmac-sha256");
    assertThat(granule("stats", "--repo", sha.toString()).out())
        .contains("(format 2, chunk size 512 KiB, chunk hash hmac-sha256, encrypted aes-256-gcm)");
    assertThat(granule("backup", "--repo", sha.toString(), "--disk", img.toString()).exitCode())
        .isZero();
    Files.delete(out);
    r = granule("restore", "disk", "latest", "--repo", sha.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out)).isEqualTo(sha256(img));

    Path bad = tmp.resolve("bad");
    r = granule("init", "--repo", bad.toString(), "--chunk-hash", "md5");
    assertThat(r.exitCode()).isEqualTo(2);
    assertThat(r.err())
        .contains("--chunk-hash: unknown chunk hash 'md5': choose blake3 (the default) or sha256");
    assertThat(bad).doesNotExist();
  }

  @Test
  void incrementalBackupStoresOnlyWhatChanged() throws Exception {
    Path repo = tmp.resolve("repo");
    Path img = image(tmp.resolve("disk.img"), 16, 2);
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    assertThat(granule("backup", "--repo", repo.toString(), "--disk", img.toString()).exitCode())
        .isZero();
    try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
      byte[] change = new byte[4096];
      new Random(3).nextBytes(change);
      ch.write(java.nio.ByteBuffer.wrap(change), 5L << 20);
    }
    Granule.Result r =
        granule("backup", "--repo", repo.toString(), "--disk", img.toString(), "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode res = Api.JSON.readTree(r.out());
    assertThat(res.get("bytesRead").asLong()).isEqualTo(16L << 20);
    // one 1 MiB chunk changed; compression may shrink it, it can never grow past it (plus the
    // AES-GCM record nonce and one 16-byte tag per 64 KiB segment)
    assertThat(res.get("bytesNew").asLong())
        .isPositive()
        .isLessThanOrEqualTo((1L << 20) + 12 + 16 * 16);

    Path out = tmp.resolve("out.img");
    r = granule("restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out)).isEqualTo(sha256(img));
  }

  @Test
  void streamsFromFilesAndStandardInputRoundTrip() throws Exception {
    Path repo = tmp.resolve("repo");
    Path dump = tmp.resolve("db.sql");
    StringBuilder sb = new StringBuilder();
    Random rnd = new Random(9);
    for (int i = 0; i < 200_000; i++) {
      sb.append("INSERT INTO orders VALUES (")
          .append(i)
          .append(", ")
          .append(rnd.nextInt())
          .append(");\n");
    }
    Files.writeString(dump, sb);
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    Granule.Result r =
        Granule.run(
            tmp,
            Map.of(),
            dump,
            "backup",
            "--repo",
            repo.toString(),
            "--stream",
            "db=" + dump,
            "--stream",
            "stdin=-",
            "--json");
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode streams = Api.JSON.readTree(r.out()).get("snapshot").get("streams");
    assertThat(streams).hasSize(2);

    Path out = tmp.resolve("db.restored");
    r =
        granule(
            "restore", "stream", "latest:db", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out)).isEqualTo(sha256(dump));
    r = granule("restore", "stream", "latest:stdin", "--repo", repo.toString(), "--to", "-");
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).isEqualTo(sb.toString());
    r = granule("restore", "stream", "latest:nope", "--repo", repo.toString(), "--to", "x");
    assertThat(r.exitCode()).isEqualTo(4);

    // Another process writing db2.restored.partial (it holds the lock file): refused at once,
    // nothing touched; once it is done, the restore runs and leaves no lock file behind.
    Path out2 = tmp.resolve("db2.restored");
    Path lockFile = tmp.resolve("db2.restored.partial.lock");
    Files.writeString(tmp.resolve("db2.restored.partial"), "the other restore's bytes");
    try (java.nio.channels.FileChannel ch =
            java.nio.channels.FileChannel.open(
                lockFile,
                java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.WRITE);
        java.nio.channels.FileLock held = ch.lock()) {
      r =
          granule(
              "restore", "stream", "latest:db", "--repo", repo.toString(), "--to", out2.toString());
      assertThat(r.exitCode()).as(r.err()).isEqualTo(7);
      assertThat(r.err()).contains("another restore is writing");
      assertThat(Files.readString(tmp.resolve("db2.restored.partial")))
          .isEqualTo("the other restore's bytes");
      assertThat(out2).doesNotExist();
    }
    Files.delete(lockFile);
    r =
        granule(
            "restore", "stream", "latest:db", "--repo", repo.toString(), "--to", out2.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(sha256(out2)).isEqualTo(sha256(dump));
    assertThat(lockFile).doesNotExist();
  }

  /** qemu-img, or a skip (a failure under CI) saying it is missing. */
  static void requireQemuImg() {
    boolean present =
        Stream.of(System.getenv("PATH").split(":"))
            .anyMatch(d -> Files.isExecutable(Path.of(d, "qemu-img")));
    if (!present && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("qemu-img is missing: scripts/setup installs qemu-utils");
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(present, "qemu-img is not installed");
  }

  static void qemuImg(Path dir, String... args) throws Exception {
    java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of("qemu-img"));
    cmd.addAll(java.util.List.of(args));
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    String out =
        new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertThat(p.waitFor()).as("qemu-img " + String.join(" ", args) + ": " + out).isZero();
  }

  @Test
  void vmImageFormatsAreDetectedAndBackedUpAsTheirVirtualDisks() throws Exception {
    requireQemuImg();
    Path repo = tmp.resolve("repo");
    Path raw = image(tmp.resolve("base.img"), 12, 5);
    qemuImg(tmp, "convert", "-f", "raw", "-O", "qcow2", "-c", "base.img", "vm.qcow2");
    qemuImg(
        tmp,
        "convert",
        "-f",
        "raw",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        "base.img",
        "vm.vmdk");
    qemuImg(
        tmp,
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        "base.img",
        "vm.vhd");
    qemuImg(tmp, "convert", "-f", "raw", "-O", "vhdx", "base.img", "vm.vhdx");

    Granule.Result r = granule("image", "info", "--json", tmp.resolve("vm.vhd").toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(Api.JSON.readTree(r.out()).get("format").asText()).isEqualTo("vhd");

    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    r =
        granule(
            "backup",
            "--repo",
            repo.toString(),
            "--json",
            "--disk",
            tmp.resolve("vm.qcow2").toString(),
            "--disk",
            tmp.resolve("vm.vmdk").toString(),
            "--disk",
            tmp.resolve("vm.vhd").toString(),
            "--disk",
            tmp.resolve("vm.vhdx").toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode disks = Api.JSON.readTree(r.out()).get("snapshot").get("disks");
    assertThat(disks).hasSize(4);
    String expected = sha256(raw);
    for (JsonNode d : disks) {
      assertThat(d.get("format").asText()).isEqualTo(d.get("name").asText().substring(3));
      Path out = tmp.resolve(d.get("name").asText() + ".restored");
      r =
          granule(
              "restore",
              "disk",
              "latest:" + d.get("name").asText(),
              "--repo",
              repo.toString(),
              "--to",
              out.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(sha256(out)).as(d.get("name").asText()).isEqualTo(expected);
    }
  }

  @Test
  void badInputGetsClearMessagesAndDocumentedExitCodes() throws Exception {
    Path repo = tmp.resolve("repo");
    Granule.Result r = granule("snapshots", "--repo", repo.toString());
    assertThat(r.exitCode()).isEqualTo(3);
    assertThat(r.err()).contains("no repository at").contains("granule init --repo");

    assertThat(granule("snapshots").exitCode()).isEqualTo(2);

    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    r = granule("backup", "--repo", repo.toString(), "--disk", tmp.resolve("nope.img").toString());
    assertThat(r.exitCode()).isEqualTo(6);
    assertThat(r.err()).contains("nope.img").contains("no such file");

    r = granule("restore", "disk", "ffff", "--repo", repo.toString(), "--to", "x.img");
    assertThat(r.exitCode()).isEqualTo(4);

    r = granule("init", "--repo", tmp.resolve("r2").toString(), "--chunk-size", "3000");
    assertThat(r.exitCode()).isEqualTo(2);
    assertThat(r.err()).contains("not a power of two");
  }

  @Test
  void verifyNamesADamagedPackAndRestoreRefusesWrongBytes() throws Exception {
    Path repo = tmp.resolve("repo");
    Path img = image(tmp.resolve("vm.img"), 8, 4);
    assertThat(granule("init", "--repo", repo.toString()).exitCode()).isZero();
    assertThat(granule("backup", "--repo", repo.toString(), "--disk", img.toString()).exitCode())
        .isZero();
    Path pack;
    try (Stream<Path> s = Files.walk(repo.resolve("data"))) {
      pack = s.filter(Files::isRegularFile).findFirst().orElseThrow();
    }
    try (FileChannel ch =
        FileChannel.open(pack, StandardOpenOption.WRITE, StandardOpenOption.READ)) {
      java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(1);
      ch.read(b, 100);
      b.flip();
      byte flipped = (byte) (b.get(0) ^ 0x10);
      ch.write(java.nio.ByteBuffer.wrap(new byte[] {flipped}), 100);
    }
    Granule.Result r = granule("verify", "--repo", repo.toString(), "--read-data");
    assertThat(r.exitCode()).isEqualTo(5);
    assertThat(r.out()).contains("damaged: ").contains(pack.getFileName().toString());

    Path out = tmp.resolve("out.img");
    r = granule("restore", "disk", "latest", "--repo", repo.toString(), "--to", out.toString());
    assertThat(r.exitCode()).isEqualTo(5);
    assertThat(Files.exists(out)).isFalse();
    assertThat(Files.exists(tmp.resolve("out.img.partial"))).isFalse();
  }

  @Test
  void encryptedByDefaultWrongPasswordIsExitCode8AndTamperingIsNamed() throws Exception {
    Path repo = tmp.resolve("repo");
    Path img = image(tmp.resolve("vm.img"), 8, 6);
    Granule.Result r = granule("init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out()).startsWith("created encrypted repository");
    assertThat(granule("backup", "--repo", repo.toString(), "--disk", img.toString()).exitCode())
        .isZero();

    r =
        Granule.run(
            tmp, Map.of("GRANULE_PASSWORD", "not it"), "snapshots", "--repo", repo.toString());
    assertThat(r.exitCode()).isEqualTo(8);
    assertThat(r.err())
        .contains(
            "wrong password for repository at '"
                + repo
                + "' (no key matches); try again or use the right --password-file");

    java.util.Map<String, String> none = new java.util.HashMap<>();
    none.put("GRANULE_PASSWORD", null);
    r = Granule.run(tmp, none, "snapshots", "--repo", repo.toString());
    assertThat(r.exitCode()).isEqualTo(2);
    assertThat(r.err()).contains("GRANULE_PASSWORD").contains("--password-file");

    // the new password works, the old one no longer
    r =
        Granule.run(
            tmp,
            Map.of("GRANULE_NEW_PASSWORD", "second"),
            "key",
            "passwd",
            "--repo",
            repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(granule("snapshots", "--repo", repo.toString()).exitCode()).isEqualTo(8);
    Path pwFile = Files.writeString(tmp.resolve("pw.txt"), "second\n");
    r = granule("snapshots", "--repo", repo.toString(), "--password-file", pwFile.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();

    Path snap;
    try (Stream<Path> s = Files.list(repo.resolve("snapshots"))) {
      snap = s.findFirst().orElseThrow();
    }
    byte[] bytes = Files.readAllBytes(snap);
    bytes[bytes.length / 2] ^= 0x04;
    Files.write(snap, bytes);
    r = granule("verify", "--repo", repo.toString(), "--password-file", pwFile.toString());
    assertThat(r.exitCode()).isEqualTo(5);
    assertThat(r.out())
        .contains(snap.getFileName().toString())
        .contains("authentication failed: the data was changed or damaged");
  }
}
