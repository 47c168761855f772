package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.lock.Lock;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.lock.LockManager;
import io.granule.engine.internal.repo.lock.LockOwner;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** forget, prune and unlock on the command line: output, safety refusals and exit codes. */
class CliMaintenanceTest {
  @TempDir Path tmp;
  StringWriter out = new StringWriter();
  StringWriter err = new StringWriter();
  final Map<String, String> env = new HashMap<>();
  Path repo;

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

  /**
   * audit15 G F1: a pack that is there but damaged stayed in the index, so every later backup of
   * the same data reused its chunks and saved snapshots that could not be restored either. Verify
   * points to repair; repair salvages what the pack still holds, drops the rest from the index and
   * names the snapshots that use it (exit 5), prune no longer stops on it; the next backups store
   * the lost chunks anew, and every snapshot is whole again.
   */
  @Test
  void verifyPointsToRepairAndRepairThenBackupsMakeEverySnapshotWhole() throws Exception {
    DiskRestoreTest.damageLargestPack(repo);
    assertThat(run("verify", "--repo", repo.toString(), "--read-data"))
        .isEqualTo(ExitCodes.DAMAGED);
    String said = out.toString();
    assertThat(said)
        .contains("to heal what damaged packs held: run 'granule repair'")
        .doesNotContain("move them out");
    List<String> packs =
        said.lines()
            .filter(l -> l.startsWith("damaged: data/"))
            .map(l -> l.substring("damaged: ".length()).trim())
            .toList();
    assertThat(packs).hasSize(1);
    java.util.Map<String, String> before = listing(repo);
    assertThat(run("repair", "--repo", repo.toString(), "--dry-run", "--no-progress"))
        .as(err.toString())
        .isEqualTo(ExitCodes.DAMAGED);
    assertThat(out.toString()).contains("damaged: " + packs.get(0)).contains("would salvage");
    // the pack verify named, alone: only its data is read
    assertThat(
            run(
                "repair",
                "--repo",
                repo.toString(),
                "--dry-run",
                "--no-progress",
                "--pack",
                packs.get(0)))
        .as(err.toString())
        .isEqualTo(ExitCodes.DAMAGED);
    assertThat(out.toString())
        .startsWith("read 1 pack (")
        .contains("damaged: " + packs.get(0))
        .contains("would salvage");
    assertThat(run("repair", "--repo", repo.toString(), "--pack", "nonsense")).isEqualTo(2);
    assertThat(err.toString()).contains("--pack 'nonsense' is not a pack's name");
    assertThat(
            run("repair", "--repo", repo.toString(), "--pack", "0123456789abcdef0123456789abcdef"))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(err.toString())
        .contains("no pack data/0123456789abcdef0123456789abcdef in the repository");
    assertThat(listing(repo)).as("a dry run writes nothing").isEqualTo(before);
    assertThat(run("repair", "--repo", repo.toString(), "--no-progress"))
        .as(err.toString())
        .isEqualTo(ExitCodes.DAMAGED);
    String repaired = out.toString();
    assertThat(repaired)
        .containsPattern("read \\d+ packs \\(.+\\): 1 pack damaged")
        .contains("damaged: " + packs.get(0))
        .containsPattern(
            "salvage \\d+ chunks into 1 new pack, replace \\d+ index blobs, delete 1 damaged pack; \\d+ chunks lost")
        .contains("snapshots that use lost chunks: ")
        .contains("next: back up the disks and streams of those snapshots again");
    String snapshotsLine =
        repaired
            .lines()
            .filter(l -> l.startsWith("snapshots that use lost chunks: "))
            .findFirst()
            .orElseThrow();
    assertThat(run("repair", "--repo", repo.toString(), "--json"))
        .as(err.toString())
        .isEqualTo(ExitCodes.DAMAGED); // no damaged pack now; snapshots still use lost chunks
    assertThat(out.toString())
        .containsPattern("\"damaged\" ?: ?\\[ ?\\]")
        .contains(
            snapshotsLine.substring("snapshots that use lost chunks: ".length()).split(", ")[0]);
    try (Repository r = Repository.open(repo)) {
      for (int i = 0; i < 3; i++) {
        try (RawDiskImage d = RawDiskImage.open(tmp.resolve("d" + i + ".raw"))) {
          r.backup(
              new BackupRequest(
                  List.of(new BackupRequest.NamedDisk("vda", d)), "h", List.of("t"), null),
              BackupListener.NONE);
        }
      }
    }
    assertThat(snapshotsLine).isNotEmpty();
    assertThat(run("verify", "--repo", repo.toString(), "--read-data")).as(out.toString()).isZero();
    assertThat(run("repair", "--repo", repo.toString(), "--no-progress")).isZero();
    assertThat(out.toString()).contains("no damaged packs found");
  }

  /**
   * Every file under {@code dir}: relative path → size, mtime and SHA-256 (to show nothing
   * changed).
   */
  private static java.util.Map<String, String> listing(Path dir) throws Exception {
    java.util.Map<String, String> out = new java.util.TreeMap<>();
    try (var all = java.nio.file.Files.walk(dir)) {
      for (Path p : all.filter(java.nio.file.Files::isRegularFile).toList()) {
        out.put(
            dir.relativize(p).toString(),
            java.nio.file.Files.size(p)
                + " "
                + java.nio.file.Files.getLastModifiedTime(p).toMillis()
                + " "
                + TestImages.sha256(p));
      }
    }
    return out;
  }

  /** Prune meets a damaged pack it would repack: leaves it alone, says so, exit 5. */
  @Test
  void pruneLeavesADamagedPackAloneAndPointsToRepair() throws Exception {
    assertThat(run("forget", "--repo", repo.toString(), "--keep-last", "1")).isZero();
    try (var files = java.nio.file.Files.walk(repo.resolve("data"))) {
      for (Path p : files.filter(java.nio.file.Files::isRegularFile).toList()) {
        byte[] b = java.nio.file.Files.readAllBytes(p);
        b[b.length / 2] ^= 0x01;
        java.nio.file.Files.write(p, b);
      }
    }
    assertThat(
            run(
                "prune",
                "--repo",
                repo.toString(),
                "--keep-recent",
                "0",
                "--repack-below",
                "1",
                "--no-progress"))
        .as(err.toString())
        .isEqualTo(ExitCodes.DAMAGED);
    assertThat(out.toString())
        .containsPattern("left \\d+ packs? alone, found damaged while repacking")
        .contains("run 'granule repair'")
        .contains("freed");
  }

  @BeforeEach
  void history() throws Exception {
    repo = tmp.resolve("repo");
    byte[] data = TestImages.mixed(2 << 20, 5);
    try (Repository r =
        Repository.init(
            repo, RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(256 << 10))) {
      for (int i = 0; i < 3; i++) {
        TestImages.modify(data, 50, 16, i);
        Path img = TestImages.write(tmp.resolve("d" + i + ".raw"), data);
        try (RawDiskImage d = RawDiskImage.open(img)) {
          r.backup(
              new BackupRequest(
                  List.of(new BackupRequest.NamedDisk("vda", d)), "h", List.of("t"), null),
              BackupListener.NONE);
        }
      }
    }
  }

  /**
   * A forced restore that fails (a damaged pack) keeps its exit code; over an existing file it
   * leaves the file as it was and says nothing more, and with --in-place it says the file may now
   * hold part of the restored disk.
   */
  @Test
  void aFailedRestoreSaysWhetherItsTargetWasWrittenInPlace() throws Exception {
    // every pack: the largest alone may hold only chunks the latest snapshot does not use (the
    // test then failed now and then, the restore succeeding)
    try (var packs = java.nio.file.Files.walk(repo.resolve("data"))) {
      for (Path p : packs.filter(java.nio.file.Files::isRegularFile).toList()) {
        byte[] b = java.nio.file.Files.readAllBytes(p);
        for (int i = b.length / 4; i < b.length * 3 / 4; i++) {
          b[i] ^= 0x5a;
        }
        java.nio.file.Files.write(p, b);
      }
    }
    byte[] old = new byte[1 << 20];
    java.util.Arrays.fill(old, (byte) 0x11);
    Path target = java.nio.file.Files.write(tmp.resolve("old.raw"), old);

    int code =
        run(
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            target.toString(),
            "--force",
            "--no-progress");
    assertThat(code).as(err.toString()).isEqualTo(ExitCodes.DAMAGED);
    assertThat(err.toString()).doesNotContain("in place");
    assertThat(java.nio.file.Files.readAllBytes(target)).as("left as it was").isEqualTo(old);

    code =
        run(
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            target.toString(),
            "--force",
            "--in-place",
            "--no-progress");
    assertThat(code).as(err.toString()).isEqualTo(ExitCodes.DAMAGED);
    assertThat(err.toString())
        .contains("granule: '" + target + "' was being written in place")
        .contains("part of the restored disk");

    code =
        run(
            "restore",
            "disk",
            "latest",
            "--repo",
            repo.toString(),
            "--to",
            tmp.resolve("x.qcow2").toString(),
            "--in-place");
    assertThat(code).as(err.toString()).isEqualTo(ExitCodes.USAGE);
  }

  /**
   * audit12 L1: index blobs (of an unencrypted repository) rewritten so that every entry claims a
   * stored length near 2^31. Restore crashed with "capacity < 0" and a stack trace (exit 1); now
   * the blobs are skipped as damaged with a warning naming each, and restore fails with the damage
   * exit code and no stack trace.
   */
  @Test
  void anIndexEntryWithAHugeStoredLengthIsDamageNotACrash() throws Exception {
    LocalBlobStore store = new LocalBlobStore(repo);
    List<String> forged = new java.util.ArrayList<>();
    for (var n : store.list(BlobType.INDEX)) {
      List<io.granule.engine.internal.repo.index.IndexEntry> entries = new java.util.ArrayList<>();
      for (var e :
          io.granule.engine.internal.repo.MetadataBlobs.read(
              store,
              BlobCodec.IDENTITY,
              n,
              io.granule.engine.internal.repo.index.IndexReader::read)) {
        var l = e.location();
        entries.add(
            new io.granule.engine.internal.repo.index.IndexEntry(
                e.id(),
                new io.granule.engine.internal.repo.index.ChunkLocation(
                    l.pack(), l.offset(), 0x7ffffff0, l.rawLength(), l.flags())));
      }
      store.delete(n);
      io.granule.engine.internal.repo.index.IndexWriter.save(store, BlobCodec.IDENTITY, entries);
    }
    for (var n : store.list(BlobType.INDEX)) {
      forged.add(n.toString());
    }
    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> log =
        new ch.qos.logback.core.read.ListAppender<>();
    ch.qos.logback.classic.Logger root =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    log.start();
    root.addAppender(log);
    try {
      int code =
          run(
              "restore",
              "disk",
              "latest",
              "--repo",
              repo.toString(),
              "--to",
              tmp.resolve("out.raw").toString(),
              "--no-progress");
      assertThat(code).as(err.toString()).isEqualTo(ExitCodes.DAMAGED);
      assertThat(err.toString())
          .as("no stack trace")
          .doesNotContain("Exception")
          .doesNotContain("\tat ")
          .contains("not in any index");
      List<String> warnings =
          log.list.stream()
              .map(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage)
              .toList();
      for (String n : forged) {
        assertThat(warnings)
            .anySatisfy(
                w ->
                    assertThat(w)
                        .contains("skipping damaged index blob " + n)
                        .contains("impossible stored length 2147483632"));
      }
    } finally {
      root.detachAppender(log);
    }
  }

  @Test
  void forgetWithoutAKeepRuleRefusesAndRemovesNothing() throws Exception {
    assertThat(run("forget", "--repo", repo.toString())).isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("refusing to remove every snapshot");
    assertThat(run("forget", "--repo", repo.toString(), "--keep-daily", "-1"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(new LocalBlobStore(repo).list(BlobType.SNAPSHOT)).hasSize(3);
  }

  @Test
  void forgetDryRunThenForgetWithPrune() throws Exception {
    assertThat(run("forget", "--repo", repo.toString(), "--keep-last", "1", "--dry-run")).isZero();
    assertThat(out.toString())
        .contains("host h, items vda: keep 1, remove 2")
        .contains("would remove 2 snapshots");
    assertThat(new LocalBlobStore(repo).list(BlobType.SNAPSHOT)).hasSize(3);

    assertThat(
            run(
                "forget",
                "--repo",
                repo.toString(),
                "--keep-last",
                "1",
                "--prune",
                "--keep-recent",
                "0",
                "--json"))
        .as(err.toString())
        .isZero();
    assertThat(out.toString()).contains("\"remove\"").contains("\"prune\"");
    assertThat(new LocalBlobStore(repo).list(BlobType.SNAPSHOT)).hasSize(1);
    assertThat(new LocalBlobStore(repo).list(BlobType.FIXED_INDEX)).hasSize(1);
    assertThat(run("verify", "--repo", repo.toString(), "--read-data")).isZero();
    assertThat(new LocalBlobStore(repo).list(BlobType.LOCK)).isEmpty();
  }

  /**
   * Ids given with --host/--tag must all be snapshots those pass, checked before anything is
   * removed: {@code forget ID --host db1} never removes web1's snapshot (it did, ignoring --host).
   */
  @Test
  void forgetByIdWithFiltersRefusesAnotherHostsSnapshot() throws Exception {
    backup("web1", "vda", TestImages.mixed(1 << 20, 9), "nightly");
    List<Manifest> all;
    try (Repository r = Repository.open(repo)) {
      all = r.snapshots();
    }
    String web1 = all.stream().filter(m -> m.host().equals("web1")).findFirst().orElseThrow().id();
    String h = all.stream().filter(m -> m.host().equals("h")).findFirst().orElseThrow().id();

    assertThat(run("forget", "--repo", repo.toString(), "--host", "h", h, web1.substring(0, 12)))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(err.toString()).contains(web1.substring(0, 12)).contains("is of host web1");
    assertThat(run("forget", "--repo", repo.toString(), "--tag", "t", "--tag", "nightly", web1))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(new LocalBlobStore(repo).list(BlobType.SNAPSHOT)).hasSize(4);

    assertThat(run("forget", "--repo", repo.toString(), "--host", "web1", "--tag", "nightly", web1))
        .as(err.toString())
        .isZero();
    assertThat(run("forget", "--repo", repo.toString(), "--host", "h", "--tag", "t", h))
        .as(err.toString())
        .isZero();
    try (Repository r = Repository.open(repo)) {
      assertThat(r.snapshots()).extracting(Manifest::id).doesNotContain(web1, h).hasSize(2);
    }
  }

  /** Backs up {@code data} as disk {@code disk} of host {@code host} with {@code tags}. */
  private void backup(String host, String disk, byte[] data, String... tags) throws Exception {
    Path img = TestImages.write(tmp.resolve(host + "-" + disk + ".raw"), data);
    try (Repository r = Repository.open(repo);
        RawDiskImage d = RawDiskImage.open(img)) {
      r.backup(
          new BackupRequest(
              List.of(new BackupRequest.NamedDisk(disk, d)), host, List.of(tags), null),
          BackupListener.NONE);
    }
  }

  /**
   * With two hosts in one repository, --host and --tag choose the snapshots a command considers:
   * 'latest' is that host's latest (and the latest holding the disk named), never the other host's;
   * an id of another host's snapshot is refused; the listing filters the same way.
   */
  @Test
  void hostAndTagFiltersChooseWhichSnapshotLatestIs() throws Exception {
    byte[] h = TestImages.mixed(2 << 20, 5); // as history() left it, then its last change
    byte[] other = TestImages.mixed(2 << 20, 77);
    byte[] extra = TestImages.mixed(1 << 20, 78);
    backup("h", "vdb", extra, "t", "weekly");
    backup("other", "vda", other);
    Path hImage = tmp.resolve("d2.raw"); // history()'s last image of host h's vda

    Path target = tmp.resolve("out.raw");
    assertThat(
            run(
                "restore",
                "disk",
                "latest:vda",
                "--repo",
                repo.toString(),
                "--to",
                target.toString()))
        .as(err.toString())
        .isZero();
    assertThat(java.nio.file.Files.readAllBytes(target))
        .isEqualTo(other); // the latest: host other's
    assertThat(
            run(
                "restore",
                "disk",
                "latest:vda",
                "--host",
                "h",
                "--repo",
                repo.toString(),
                "--to",
                target.toString(),
                "--force"))
        .as(err.toString())
        .isZero();
    assertThat(java.nio.file.Files.readAllBytes(target))
        .isEqualTo(java.nio.file.Files.readAllBytes(hImage));
    // host h's latest snapshot holds vdb only: latest:vda is the latest holding vda
    assertThat(
            run(
                "restore",
                "disk",
                "latest",
                "--host",
                "h",
                "--tag",
                "weekly",
                "--repo",
                repo.toString(),
                "--to",
                target.toString(),
                "--force"))
        .as(err.toString())
        .isZero();
    assertThat(java.nio.file.Files.readAllBytes(target)).isEqualTo(extra);

    assertThat(
            run(
                "restore",
                "disk",
                "latest:vda",
                "--host",
                "nobody",
                "--repo",
                repo.toString(),
                "--to",
                tmp.resolve("none.raw").toString()))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(err.toString()).contains("no snapshot of host nobody in the repository");
    assertThat(tmp.resolve("none.raw")).doesNotExist();

    assertThat(
            run(
                "restore",
                "disk",
                "latest:vdz",
                "--host",
                "h",
                "--repo",
                repo.toString(),
                "--to",
                tmp.resolve("none.raw").toString()))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(err.toString()).contains("has no disk 'vdz'"); // the latest of h: what it has

    assertThat(run("snapshots", "--repo", repo.toString(), "--json")).isZero();
    var all = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString());
    assertThat(all).hasSize(5);
    String otherId = all.get(4).get("id").asText();
    assertThat(
            run(
                "restore",
                "disk",
                otherId.substring(0, 10) + ":vda",
                "--host",
                "h",
                "--repo",
                repo.toString(),
                "--to",
                tmp.resolve("none.raw").toString()))
        .isEqualTo(ExitCodes.NOT_FOUND);
    assertThat(err.toString()).contains("is of host other, not of host h");

    assertThat(run("snapshots", "--repo", repo.toString(), "--host", "h", "--json")).isZero();
    var hs = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString());
    assertThat(hs).hasSize(4);
    hs.forEach(m -> assertThat(m.get("host").asText()).isEqualTo("h"));
    assertThat(run("snapshots", "--repo", repo.toString(), "--tag", "t", "--tag", "weekly"))
        .isZero();
    assertThat(out.toString().lines().count()).isEqualTo(2); // heading and one snapshot
    assertThat(out.toString()).contains("vdb").doesNotContain("other");
    assertThat(run("snapshots", "--repo", repo.toString(), "--last", "2", "--json")).isZero();
    var last = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString());
    assertThat(last).hasSize(2);
    assertThat(last.get(1).get("id").asText()).isEqualTo(otherId);
    long added = last.get(1).get("disks").get(0).get("bytesStored").asLong();
    assertThat(added).isPositive();
    assertThat(run("snapshots", "--repo", repo.toString(), "--host", "other")).isZero();
    assertThat(out.toString().lines().findFirst().orElseThrow()).contains("SIZE").contains("ADDED");
    assertThat(out.toString().lines().skip(1).findFirst().orElseThrow())
        .contains(otherId.substring(0, 12))
        .contains(Sizes.human(2 << 20))
        .contains(Sizes.human(added));
    assertThat(run("snapshots", "--repo", repo.toString(), "--host", "nobody")).isZero();
    assertThat(out.toString()).contains("no snapshots of host nobody");
    assertThat(run("snapshots", "--repo", repo.toString(), "--last", "0"))
        .isEqualTo(ExitCodes.USAGE);
  }

  @Test
  void verifyReadsTheDataOfASubsetOfThePacks() throws Exception {
    int packs = new LocalBlobStore(repo).list(BlobType.PACK).size();
    int read = 0;
    for (int n = 1; n <= 2; n++) {
      assertThat(run("verify", "--repo", repo.toString(), "--read-data-subset", n + "/2"))
          .as(err.toString())
          .isZero();
      java.util.regex.Matcher m =
          java.util.regex.Pattern.compile(
                  "\\(data read of (\\d+) packs?, [^:]+: subset " + n + "/2\\)")
              .matcher(out.toString());
      assertThat(m.find()).as(out.toString()).isTrue();
      read += Integer.parseInt(m.group(1));
    }
    assertThat(read).isEqualTo(packs);
    assertThat(run("verify", "--repo", repo.toString(), "--read-data-subset", "100%", "--json"))
        .isZero();
    var json = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString());
    assertThat(json.get("dataRead").asBoolean()).isTrue();
    assertThat(json.get("dataSubset").asText()).isEqualTo("100%");
    assertThat(json.get("dataPacks").asInt()).isEqualTo(packs);

    assertThat(run("verify", "--repo", repo.toString(), "--read-data-subset", "8/7"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("--read-data-subset '8/7'").contains("e.g. 1/7");
    assertThat(run("verify", "--repo", repo.toString(), "--read-data-subset", "some"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("N/T");
    assertThat(run("verify", "--repo", repo.toString(), "--read-data", "--read-data-subset", "1/7"))
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("not both");
  }

  /**
   * A read without a lock (a read-only repository) that meets damage while a prune elsewhere
   * removed index blobs and snapshots it started with says so and exits 9, not 5 (damage): what it
   * found missing may only be what that prune removed.
   */
  @Test
  void anUnlockedReadTellsDamageFromWhatAPruneElsewhereRemoved() throws Exception {
    picocli.CommandLine cl = new picocli.CommandLine(new VerifyCommand());
    picocli.CommandLine.ParseResult parsed = cl.parseArgs("--repo", repo.toString());
    RepoOption option = (RepoOption) parsed.commandSpec().mixins().get("repo").userObject();
    assertThat(Cli.unlockedReadChanged(parsed)).as("a locked read").isEmpty();
    try (Repository reader = Repository.open(repo)) {
      option.unlocked = reader;
      reader.readingWithoutLock();
      assertThat(Cli.unlockedReadChanged(parsed)).as("nothing changed yet").isEmpty();
      assertThat(
              run(
                  "forget",
                  "--repo",
                  repo.toString(),
                  "--keep-last",
                  "1",
                  "--prune",
                  "--keep-recent",
                  "0",
                  "--no-progress"))
          .isZero();
      assertThat(Cli.unlockedReadChanged(parsed))
          .hasValueSatisfying(
              why ->
                  assertThat(why)
                      .contains("index blobs and snapshots it started with were removed"));
      assertThat(Cli.unlockedDamage("x")).contains("Run it again when no prune runs");
    }
  }

  @Test
  void pruneDryRunReportsAndPruneFrees() throws Exception {
    assertThat(run("forget", "--repo", repo.toString(), "--keep-last", "1")).isZero();
    assertThat(out.toString()).contains("run 'granule prune' to free their data");
    assertThat(run("prune", "--repo", repo.toString(), "--dry-run", "--no-progress")).isZero();
    assertThat(out.toString())
        .contains("would delete")
        .contains("would free about")
        .containsPattern("1 snapshot use \\d+ chunks; \\d+ packs");
    assertThat(run("prune", "--repo", repo.toString(), "--repack-below", "2")).isEqualTo(2);
    assertThat(run("prune", "--repo", repo.toString(), "--keep-recent", "-1")).isEqualTo(2);
    assertThat(err.toString()).contains("'-1' is not a duration");
    // By default what was written in the last hour stays: the forgotten snapshots' data is new.
    int fixed = new LocalBlobStore(repo).list(BlobType.FIXED_INDEX).size();
    assertThat(run("prune", "--repo", repo.toString(), "--no-progress")).isZero();
    assertThat(out.toString())
        .containsPattern("spare \\d+ packs? \\(.+\\) and 2 fixed or dynamic indexes written too")
        .contains("delete 0 packs")
        .contains("freed 0 B");
    assertThat(new LocalBlobStore(repo).list(BlobType.FIXED_INDEX)).hasSize(fixed);
    assertThat(run("prune", "--repo", repo.toString(), "--keep-recent", "0", "--no-progress"))
        .isZero();
    assertThat(out.toString()).contains("freed").doesNotContain("would");
    assertThat(new LocalBlobStore(repo).list(BlobType.FIXED_INDEX)).hasSize(1);
    assertThat(run("verify", "--repo", repo.toString(), "--read-data")).isZero();
    assertThat(out.toString()).containsPattern("checked 1 snapshot, \\d+ packs, \\d+ chunks");
  }

  @Test
  void conflictingLocksAreExitCodeNineNamingTheHolderAndUnlockClearsStaleOnes() throws Exception {
    LocalBlobStore store = new LocalBlobStore(repo);
    Clock past = Clock.fixed(Instant.parse("2026-01-01T10:00:00Z"), ZoneOffset.UTC);
    LockManager elsewhere =
        new LockManager(
            store,
            BlobCodec.IDENTITY,
            Clock.systemUTC(),
            new LockOwner("otherhost", 4242, "carol"),
            Duration.ofMinutes(5),
            Duration.ofMinutes(30));
    try (Lock backupLock = elsewhere.acquire(LockKind.SHARED, "backup", Duration.ZERO)) {
      assertThat(run("prune", "--repo", repo.toString())).isEqualTo(ExitCodes.LOCKED);
      assertThat(err.toString())
          .contains("shared lock of backup by carol@otherhost (pid 4242) since ");
      assertThat(run("verify", "--repo", repo.toString())).as("shared with shared").isZero();
      assertThat(run("unlock", "--repo", repo.toString())).isZero();
      assertThat(out.toString()).contains("no stale locks").contains("still held: shared lock");
      assertThat(store.list(BlobType.LOCK)).containsExactly(backupLock.name());
    }
    // A lock last refreshed long ago (its holder crashed on another host).
    LockManager crashed =
        new LockManager(
            store,
            BlobCodec.IDENTITY,
            past,
            new LockOwner("otherhost", 4242, "carol"),
            Duration.ofMinutes(5),
            Duration.ofMinutes(30));
    crashed.acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO); // never released
    assertThat(run("verify", "--repo", repo.toString())).isEqualTo(ExitCodes.LOCKED);
    assertThat(err.toString())
        .contains("stale lock: exclusive lock of prune by carol@otherhost")
        .contains("'granule unlock'");
    assertThat(run("unlock", "--repo", repo.toString())).isZero();
    assertThat(out.toString()).contains("removed exclusive lock of prune");
    assertThat(store.list(BlobType.LOCK)).isEmpty();
    assertThat(run("verify", "--repo", repo.toString())).isZero();

    elsewhere.acquire(LockKind.SHARED, "backup", Duration.ZERO);
    assertThat(run("unlock", "--repo", repo.toString(), "--remove-all")).isZero();
    assertThat(out.toString()).contains("removed shared lock of backup");
    assertThat(store.list(BlobType.LOCK)).isEmpty();
  }

  @Test
  void retryLockWaitsForTheHolder() throws Exception {
    LockManager elsewhere =
        new LockManager(
            new LocalBlobStore(repo),
            BlobCodec.IDENTITY,
            Clock.systemUTC(),
            new LockOwner("otherhost", 1, "carol"),
            Duration.ofMinutes(5),
            Duration.ofMinutes(30));
    Lock held = elsewhere.acquire(LockKind.EXCLUSIVE, "prune", Duration.ZERO);
    Thread t =
        new Thread(
            () -> {
              try {
                Thread.sleep(800);
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              held.close();
            });
    t.start();
    assertThat(run("verify", "--repo", repo.toString(), "--retry-lock", "30s"))
        .as(err.toString())
        .isZero();
    t.join();
    assertThat(run("verify", "--repo", repo.toString(), "--retry-lock", "soon"))
        .isEqualTo(ExitCodes.USAGE);
  }

  /** Names of the files in {@code dir}, sorted. */
  private static List<String> names(Path dir) throws Exception {
    try (var files = java.nio.file.Files.list(dir)) {
      return files.map(f -> f.getFileName().toString()).sorted().toList();
    }
  }

  /**
   * audit14 B H1: someone who can write repository A replaced A/locks by a link to another
   * repository's keys/; 'granule unlock --repo A' deleted every file there it could not read as a
   * lock (B's only key). It is refused (exit 5) naming the link, and B keeps its key.
   */
  @Test
  void unlockThroughALinkedLocksDirectoryIsRefusedAndTheOtherRepositoryKept() throws Exception {
    Path b = tmp.resolve("B");
    Repository.init(b, RepositoryConfig.defaults()).close();
    // an unencrypted repository has no keys/: one as an encrypted one has it
    java.nio.file.Files.writeString(
        java.nio.file.Files.createDirectories(b.resolve("keys"))
            .resolve("0123456789abcdef".repeat(4)),
        "not a lock",
        java.nio.charset.StandardCharsets.UTF_8);
    List<String> keys = names(b.resolve("keys"));
    assertThat(keys).isNotEmpty();
    Path locks = repo.resolve("locks");
    if (java.nio.file.Files.exists(locks)) {
      for (String n : names(locks)) {
        java.nio.file.Files.delete(locks.resolve(n));
      }
      java.nio.file.Files.delete(locks);
    }
    java.nio.file.Files.createSymbolicLink(locks, b.resolve("keys"));

    for (String[] args :
        List.of(
            new String[] {"unlock", "--repo", repo.toString()},
            new String[] {"unlock", "--repo", repo.toString(), "--remove-all"},
            new String[] {"verify", "--repo", repo.toString()})) {
      assertThat(run(args)).as(err.toString()).isEqualTo(ExitCodes.DAMAGED);
      assertThat(err.toString())
          .contains("'" + locks + "' is a symbolic link")
          .contains("someone who can write the repository");
      assertThat(names(b.resolve("keys"))).as("B's keys").isEqualTo(keys);
    }
  }

  /**
   * The same through prune: A/index linked to B's index/; 'granule prune --repo A' replaced
   * (deleted) B's index blob. Refused, B's index kept.
   */
  @Test
  void pruneThroughALinkedIndexDirectoryIsRefusedAndTheOtherRepositoryKept() throws Exception {
    Path b = tmp.resolve("B");
    byte[] data = TestImages.mixed(1 << 20, 9);
    try (Repository r = Repository.init(b, RepositoryConfig.defaults());
        RawDiskImage d = RawDiskImage.open(TestImages.write(tmp.resolve("b.raw"), data))) {
      r.backup(
          new BackupRequest(List.of(new BackupRequest.NamedDisk("vda", d)), "h", List.of(), null),
          BackupListener.NONE);
    }
    List<String> index = names(b.resolve("index"));
    assertThat(index).isNotEmpty();
    Path mine = repo.resolve("index");
    for (String n : names(mine)) {
      java.nio.file.Files.move(mine.resolve(n), repo.resolve(n));
    }
    java.nio.file.Files.delete(mine);
    java.nio.file.Files.createSymbolicLink(mine, b.resolve("index"));

    int code = run("prune", "--repo", repo.toString(), "--keep-recent", "0", "--no-progress");
    assertThat(code).as(err.toString()).isEqualTo(ExitCodes.DAMAGED);
    assertThat(err.toString()).contains("'" + mine + "' is a symbolic link");
    assertThat(names(b.resolve("index"))).as("B's index").isEqualTo(index);
    assertThat(run("verify", "--repo", b.toString())).as(err.toString()).isZero();
  }
}
