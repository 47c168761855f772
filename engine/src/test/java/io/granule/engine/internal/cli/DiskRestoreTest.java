package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.ops.BackupOperation;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.TestImages;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.RestoreListener;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.DiskImageFormat;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A raw disk restore's target: FILE.partial until complete, then FILE, never over someone's. */
class DiskRestoreTest {
  private static final int CHUNK = 64 << 10;

  @TempDir Path tmp;

  private final PluginLeases<DiskImageFormat> formats =
      new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));

  private byte[] data;

  private Manifest backup(Repository repo) throws Exception {
    data = TestImages.mixed(6 << 20, 17);
    Path img = TestImages.write(tmp.resolve("vm.raw"), data);
    try (RawDiskImage d = RawDiskImage.open(img)) {
      return repo.backup(
              new BackupRequest(List.of(new NamedDisk("vda", d)), "h", null, null),
              BackupListener.NONE)
          .manifest();
    }
  }

  private Repository repo() {
    return Repository.init(tmp.resolve("repo"), RepositoryConfig.defaults().withChunkSize(CHUNK));
  }

  @Test
  void aNewFileAppearsOnlyWhenCompleteAndAStalePartialIsReplaced() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = tmp.resolve("out.img");
      Path partial = tmp.resolve("out.img.partial");
      byte[] junk = new byte[(8 << 20) + 3];
      Arrays.fill(junk, (byte) 0x77);
      Files.write(partial, junk); // left by an earlier restore that was killed
      AtomicBoolean seenMidway = new AtomicBoolean();
      RestoreListener watch =
          (done, total) -> {
            if (done < total && Files.exists(partial) && !Files.exists(to)) {
              seenMidway.set(true);
            }
          };

      RestoreResult r =
          DiskRestore.prepare(formats, to, false, null).run(repo, m, "vda", watch, s -> {});

      assertThat(seenMidway).as("written as FILE.partial while it runs").isTrue();
      assertThat(partial).doesNotExist();
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat(Files.size(to)).isEqualTo(data.length);
      assertThat(
              java.nio.file.attribute.PosixFilePermissions.toString(
                  Files.getPosixFilePermissions(to)))
          .as("a disk holds everything on it: the owner's alone")
          .isEqualTo("rw-------");
      Process stat = new ProcessBuilder("stat", "-c", "%b", to.toString()).start();
      long allocated =
          Long.parseLong(
                  new String(stat.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim())
              * 512;
      assertThat(stat.waitFor()).isZero();
      assertThat(r.zeroChunks()).isPositive();
      assertThat(allocated)
          .as("a new file, its zero chunks holes (not written into the stale partial file)")
          .isLessThanOrEqualTo(data.length - r.zeroChunks() * CHUNK + 8192);
    }
  }

  @Test
  void aTargetCreatedWhileTheRestoreRunsIsLeftAloneAndTheRestoredDiskKept() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = tmp.resolve("taken.img");
      Path partial = tmp.resolve("taken.img.partial");
      DiskRestore restore = DiskRestore.prepare(formats, to, false, null); // no target yet
      RestoreListener someoneElse =
          (done, total) -> {
            try {
              if (!Files.exists(to)) {
                Files.writeString(to, "someone else's file");
              }
            } catch (java.io.IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          };

      assertThatThrownBy(() -> restore.run(repo, m, "vda", someoneElse, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("'" + to + "' was created by someone else while the restore ran")
          .hasMessageContaining("complete at '" + partial + "'")
          .satisfies(
              e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.TARGET));

      assertThat(Files.readString(to)).isEqualTo("someone else's file");
      assertThat(TestImages.sha256(partial)).isEqualTo(TestImages.sha256(data));
    }
  }

  /**
   * Someone who can write the target's directory renames another file (another VM's disk) over an
   * existing target while a --force restore writes it in place: the restore reopened the target by
   * name and wrote into that file. It now writes the file it checked and locked, held open, leaves
   * the other alone, and fails naming the swap.
   */
  @Test
  void aFileRenamedOverAnInPlaceTargetIsNeverWritten() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = Files.write(tmp.resolve("disk.img"), new byte[1 << 20]);
      byte[] otherDisk = new byte[8 << 20];
      Arrays.fill(otherDisk, (byte) 0x5a);
      Path other = Files.write(tmp.resolve("other.img"), otherDisk);
      AtomicBoolean swapped = new AtomicBoolean();
      RestoreListener swap = renamesOnce(other, to, swapped);
      assertThatThrownBy(
              () ->
                  DiskRestore.prepare(formats, to, true, null, true)
                      .run(repo, m, "vda", swap, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("was replaced while the restore wrote it");
      assertThat(swapped).isTrue();
      assertThat(Files.readAllBytes(to)).as("the other disk untouched").isEqualTo(otherDisk);
    }
  }

  /**
   * A forced restore over an existing file replaces it only once the restored copy is complete,
   * keeping its owner and mode (another name of the old file keeps the old disk). One that fails
   * midway (a damaged pack) leaves the file as it was: it used to write in place, and a failure
   * left a file of the same size, part new disk, part old, with nothing saying so (audit12).
   */
  @Test
  void aForcedRestoreReplacesTheFileWhenCompleteAndAFailedOneLeavesItAsItWas() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      byte[] old = new byte[3 << 20];
      Arrays.fill(old, (byte) 0x33);
      Path to = Files.write(tmp.resolve("vm-disk.img"), old);
      Path other = Files.createLink(tmp.resolve("other-name.img"), to);
      boolean root = asRoot("giving the old file another owner");
      if (root) {
        Files.setAttribute(to, "unix:uid", 1001);
        Files.setAttribute(to, "unix:gid", 1002);
      }
      Files.setAttribute(to, "unix:mode", 0640);

      DiskRestore.prepare(formats, to, true, null)
          .run(repo, m, "vda", RestoreListener.NONE, s -> {});

      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat(Files.readAllBytes(other)).as("the old file, under its other name").isEqualTo(old);
      var a = Files.readAttributes(to, "unix:uid,gid,mode");
      assertThat((Integer) a.get("mode") & 07777).as("mode kept").isEqualTo(0640);
      if (root) {
        assertThat(a.get("uid")).as("owner kept").isEqualTo(1001);
        assertThat(a.get("gid")).as("group kept").isEqualTo(1002);
      }
      assertThat(tmp.resolve("vm-disk.img.partial")).doesNotExist();

      // a damaged pack: the restore fails part way, and the file it was to replace is untouched
      byte[] older = new byte[8 << 20];
      Arrays.fill(older, (byte) 0x44);
      Files.write(to, older);
      damageLargestPack(tmp.resolve("repo"));
      DiskRestore failing = DiskRestore.prepare(formats, to, true, null);
      assertThatThrownBy(() -> failing.run(repo, m, "vda", RestoreListener.NONE, s -> {}))
          .isNotNull();
      assertThat(failing.partRestoredNote()).as("nothing was changed").isNull();
      assertThat(Files.readAllBytes(to)).as("left as it was").isEqualTo(older);
      assertThat(tmp.resolve("vm-disk.img.partial")).doesNotExist();

      // --in-place writes over it; its failure says the file may now be part restored
      DiskRestore inPlace = DiskRestore.prepare(formats, to, true, null, true);
      assertThatThrownBy(() -> inPlace.run(repo, m, "vda", RestoreListener.NONE, s -> {}))
          .isNotNull();
      assertThat(inPlace.partRestoredNote())
          .contains("'" + to + "' was being written in place")
          .contains("part of the restored disk");
      assertThat(Files.readAllBytes(to)).as("written in place").isNotEqualTo(older);
    }
  }

  /**
   * audit13 H1: a replaced file with an access ACL (root:gshared, group::---, user:nobody:rw-, mask
   * rw-, so its mode shows rw-rw----) gave its mask as plain group bits to the restored disk: group
   * gshared could read and write it. Its owner is kept, its mode is 0600, and the output says its
   * ACL was not copied.
   */
  @Test
  void aReplacedFileWithAnAclDoesNotWidenTheRestoredDisk() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = Files.write(tmp.resolve("acl.img"), new byte[4096]);
      Files.setAttribute(to, "unix:mode", 0600);
      Process p =
          new ProcessBuilder("setfacl", "-m", "u:65534:rw,g::---,m::rw", to.toString())
              .redirectErrorStream(true)
              .start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(p.waitFor()).as("setfacl (Debian package acl): " + out).isZero();
      assertThat((Integer) Files.getAttribute(to, "unix:mode") & 0070)
          .as("the mask")
          .isEqualTo(060);
      List<String> said = new java.util.ArrayList<>();
      DiskRestore.prepare(formats, to, true, null)
          .run(repo, m, "vda", RestoreListener.NONE, said::add);
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat((Integer) Files.getAttribute(to, "unix:mode") & 07777).isEqualTo(0600);
      assertThat(said).anySatisfy(l -> assertThat(l).contains("not its access ACL"));
    }
  }

  /**
   * audit13 core H1, second case: the restored copy inherited the directory's default ACL, and the
   * old file's group bits, kept, became its mask: the ACL's named user could read and write it. The
   * inherited ACL is dropped; the mode alone decides. A file with other names says they keep the
   * old disk.
   */
  @Test
  void aDefaultAclOfTheDirectoryDoesNotWidenTheRestoredDisk() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path d = Files.createDirectory(tmp.resolve("acldir"));
      Path to = Files.write(d.resolve("vm.img"), new byte[4096]);
      Files.setAttribute(to, "unix:mode", 0660);
      Files.createLink(d.resolve("other.img"), to);
      Process p =
          new ProcessBuilder("setfacl", "-d", "-m", "u:65534:rw", d.toString())
              .redirectErrorStream(true)
              .start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(p.waitFor()).as("setfacl (Debian package acl): " + out).isZero();
      List<String> said = new java.util.ArrayList<>();
      DiskRestore.prepare(formats, to, true, null)
          .run(repo, m, "vda", RestoreListener.NONE, said::add);
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat((Integer) Files.getAttribute(to, "unix:mode") & 07777).isEqualTo(0660);
      Process g =
          new ProcessBuilder("getfacl", "-c", "-n", to.toString())
              .redirectErrorStream(true)
              .start();
      String acl = new String(g.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      g.waitFor();
      assertThat(acl).as("no named entry inherited").doesNotContain("user:65534");
      assertThat(said).anySatisfy(l -> assertThat(l).contains("has 1 other name(s) (hard links)"));
    }
  }

  /**
   * audit13 M2: in a directory others can write, the file a forced restore replaces may be theirs,
   * put in place of the one meant (gu1 swapped root's 0600 disk for his own 0666 file): the
   * restored disk is not given its owner and mode but stays the restoring user's, 0600, and the
   * output says so.
   */
  @Test
  void aReplacedFileInADirectoryOthersCanWriteDoesNotGiveAwayTheRestoredDisk() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path shared = Files.createDirectory(tmp.resolve("shared"));
      Files.setAttribute(shared, "unix:mode", 0777);
      Path to = Files.write(shared.resolve("vm.img"), new byte[4096]);
      Files.setAttribute(to, "unix:mode", 0666);
      boolean root = asRoot("a file of another user's");
      if (root) {
        Files.setAttribute(to, "unix:uid", 1001);
      }
      List<String> said = new java.util.ArrayList<>();
      DiskRestore.prepare(formats, to, true, null)
          .run(repo, m, "vda", RestoreListener.NONE, said::add);
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      var a = Files.readAttributes(to, "unix:uid,mode");
      assertThat((Integer) a.get("mode") & 07777).isEqualTo(0600);
      assertThat(a.get("uid")).isEqualTo(io.granule.engine.internal.net.PeerUser.self());
      assertThat(said)
          .anySatisfy(
              l ->
                  assertThat(l)
                      .contains("the restored disk is yours alone (0600)")
                      .contains("everyone can write '" + shared + "'"));
    }
  }

  /**
   * audit14 F2: --in-place wrote root's restored disk into whatever file was under the name: gu1
   * swapped his own 0644 file in, in a directory his group can write, and read the disk. Another
   * user's file in a directory others can write is refused for --in-place (nothing written); root's
   * own file there, or his file in a directory only root can write, is written.
   */
  @Test
  void inPlaceRefusesAFileOthersCouldHavePutInADirectoryTheyCanWrite() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path shared = Files.createDirectory(tmp.resolve("shared"));
      Files.setAttribute(shared, "unix:mode", 0777);
      byte[] his = new byte[4096];
      Arrays.fill(his, (byte) 0x33);
      Path to = Files.write(shared.resolve("vm.img"), his);
      Files.setAttribute(to, "unix:mode", 0644);
      if (!asRoot("a file of another user's")) {
        return;
      }
      Files.setAttribute(to, "unix:uid", 1001);
      DiskRestore refused = DiskRestore.prepare(formats, to, true, null, true);
      assertThatThrownBy(() -> refused.run(repo, m, "vda", RestoreListener.NONE, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("everyone can write its directory")
          .hasMessageContaining("it is uid 1001's file")
          .hasMessageContaining("Restore without --in-place")
          .satisfies(
              e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.TARGET));
      assertThat(refused.partRestoredNote()).as("nothing was written").isNull();
      assertThat(Files.readAllBytes(to)).isEqualTo(his);

      // his file where only root can write: the one meant
      Files.setAttribute(shared, "unix:mode", 0755);
      DiskRestore.prepare(formats, to, true, null, true)
          .run(repo, m, "vda", RestoreListener.NONE, s -> {});
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat(Files.getAttribute(to, "unix:uid")).isEqualTo(1001);

      // where others can write: root's own file others may read (audit14 C1: a root 0644 file
      // renamed over the name), or one with another name (a hard link to a root:gshared 0660
      // file elsewhere), is refused too
      Files.setAttribute(shared, "unix:mode", 0777);
      Files.write(to, his);
      Files.setAttribute(to, "unix:uid", 0);
      DiskRestore readable = DiskRestore.prepare(formats, to, true, null, true);
      assertThatThrownBy(() -> readable.run(repo, m, "vda", RestoreListener.NONE, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("others may read or write it (mode 0644)");
      assertThat(Files.readAllBytes(to)).isEqualTo(his);
      Files.setAttribute(to, "unix:mode", 0600);
      Path elsewhere = Files.createDirectory(tmp.resolve("elsewhere"));
      Path other = Files.createLink(elsewhere.resolve("other.img"), to);
      DiskRestore linked = DiskRestore.prepare(formats, to, true, null, true);
      assertThatThrownBy(() -> linked.run(repo, m, "vda", RestoreListener.NONE, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("it has 1 other name(s) (hard links)");
      assertThat(Files.readAllBytes(other)).isEqualTo(his);
      Files.delete(other);

      // root's own 0600 file with no other name: no one else gets anything from it, written
      DiskRestore.prepare(formats, to, true, null, true)
          .run(repo, m, "vda", RestoreListener.NONE, s -> {});
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
    }
  }

  /**
   * Someone who can write the directory renames another file (another VM's disk) over the target
   * while a forced restore builds its replacement: that file is not replaced; the restored disk
   * stays at FILE.partial and the restore fails naming both.
   */
  @Test
  void aFileRenamedOverTheTargetBeingReplacedIsNotReplaced() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = Files.write(tmp.resolve("disk.img"), new byte[1 << 20]);
      byte[] otherDisk = new byte[2 << 20];
      Arrays.fill(otherDisk, (byte) 0x5a);
      Path other = Files.write(tmp.resolve("other.img"), otherDisk);
      AtomicBoolean swapped = new AtomicBoolean();
      RestoreListener swap = renamesOnce(other, to, swapped);
      assertThatThrownBy(
              () -> DiskRestore.prepare(formats, to, true, null).run(repo, m, "vda", swap, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("was replaced or removed while the restore ran")
          .hasMessageContaining("the restored disk is at '" + to + ".partial'")
          .satisfies(
              e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.TARGET));
      assertThat(swapped).isTrue();
      assertThat(Files.readAllBytes(to)).as("the other disk untouched").isEqualTo(otherDisk);
      assertThat(TestImages.sha256(tmp.resolve("disk.img.partial")))
          .isEqualTo(TestImages.sha256(data));
    }
  }

  /**
   * A restore's listener that, at the first progress, renames {@code from} over {@code to} (someone
   * who can write the directory swapping another disk in) and sets {@code done}.
   */
  private static RestoreListener renamesOnce(Path from, Path to, AtomicBoolean done) {
    return (bytes, total) -> {
      if (done.compareAndSet(false, true)) {
        try {
          Files.move(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      }
    };
  }

  /** --in-place is for raw disks: an image format is always written as FILE.partial. */
  @Test
  void inPlaceIsRefusedForAnImageFormat() throws Exception {
    Path to = Files.write(tmp.resolve("vm.qcow2"), new byte[4096]);
    assertThatThrownBy(() -> DiskRestore.prepare(formats, to, true, null, true))
        .isInstanceOf(CommandException.class)
        .hasMessageContaining("drop --in-place")
        .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.USAGE));
  }

  /**
   * Flips the bits of the middle half of the largest pack of the repository in {@code repoDir}
   * (every chunk there is damaged, whichever snapshot uses it).
   */
  static void damageLargestPack(Path repoDir) throws Exception {
    Path largest;
    try (var files = Files.walk(repoDir.resolve("data"))) {
      largest =
          files
              .filter(Files::isRegularFile)
              .max(java.util.Comparator.comparingLong(p -> p.toFile().length()))
              .orElseThrow();
    }
    byte[] pack = Files.readAllBytes(largest);
    for (int i = pack.length / 4; i < pack.length * 3 / 4; i++) {
      pack[i] ^= 0x5a;
    }
    Files.write(largest, pack);
  }

  /**
   * Two restores to one new target (two REST jobs, two commands): the second fails at once while
   * the first writes FILE.partial, and the first publishes its own disk. They used to share the
   * partial file: the "successful" one could publish the other's data, the other's was lost.
   */
  @Test
  void aSecondRestoreToTheSameNewTargetFailsAtOnceAndTheFirstIsIntact() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = tmp.resolve("shared.img");
      Path partial = tmp.resolve("shared.img.partial");
      AtomicBoolean tried = new AtomicBoolean();
      RestoreListener second =
          (done, total) -> {
            if (done > 0 && done < total && tried.compareAndSet(false, true)) {
              // the kernel holds the lock (another process's restore sees it): the lock used to be
              // dropped at once by reading the lock file back through another descriptor
              try {
                Object ino = Files.getAttribute(tmp.resolve("shared.img.partial.lock"), "unix:ino");
                assertThat(Files.readAllLines(Path.of("/proc/locks")))
                    .as("a POSIX lock on the lock file's inode %s", ino)
                    .anySatisfy(l -> assertThat(l).contains("POSIX").contains(":" + ino + " "));
              } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
              assertThatThrownBy(() -> restoreVda(repo, m, to, false))
                  .isInstanceOf(CommandException.class)
                  .hasMessageContaining("another restore is writing '" + partial + "'")
                  .satisfies(
                      e ->
                          assertThat(((CommandException) e).exitCode())
                              .isEqualTo(ExitCodes.TARGET));
              assertThat(partial).as("the first one's file is left alone").exists();
              // the same file under another name (a linked directory): refused too, and the
              // refusal must not drop this process's lock (closing a second descriptor would)
              try {
                Path alias = Files.createSymbolicLink(tmp.resolve("alias"), tmp);
                assertThatThrownBy(() -> restoreVda(repo, m, alias.resolve("shared.img"), false))
                    .isInstanceOf(CommandException.class)
                    .hasMessageContaining("another restore is writing");
                Object ino = Files.getAttribute(tmp.resolve("shared.img.partial.lock"), "unix:ino");
                assertThat(Files.readAllLines(Path.of("/proc/locks")))
                    .as("still locked after the refusal")
                    .anySatisfy(l -> assertThat(l).contains("POSIX").contains(":" + ino + " "));
              } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            }
          };
      DiskRestore.prepare(formats, to, false, null).run(repo, m, "vda", second, s -> {});
      assertThat(tried).as("the second restore ran during the first").isTrue();
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat(partial).doesNotExist();
      assertThat(tmp.resolve("shared.img.partial.lock")).as("lock file removed").doesNotExist();

      // a lock file left by a killed restore (no holder) does not block the next one
      Files.writeString(tmp.resolve("again.img.partial.lock"), "left by a killed restore");
      restoreVda(repo, m, tmp.resolve("again.img"), false);
      assertThat(TestImages.sha256(tmp.resolve("again.img"))).isEqualTo(TestImages.sha256(data));
      assertThat(tmp.resolve("again.img.partial.lock")).doesNotExist();
    }
  }

  /**
   * audit10: a link planted at FILE.partial.lock (to a file that does not exist) made the restore
   * die with a stack trace, exit 1; it is now refused as a target fault (exit 7) naming the link,
   * and nothing is made where it leads.
   */
  @Test
  void aLinkAtTheLockFileIsRefusedAsATargetFault() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path elsewhere = tmp.resolve("elsewhere");
      Files.createSymbolicLink(tmp.resolve("linked.img.partial.lock"), elsewhere);
      assertThatThrownBy(() -> restoreVda(repo, m, tmp.resolve("linked.img"), false))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("linked.img.partial.lock' is a symbolic link")
          .satisfies(
              e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.TARGET));
      assertThat(elsewhere).doesNotExist();
      assertThat(tmp.resolve("linked.img")).doesNotExist();
    }
  }

  /**
   * An existing file restored over (--force) is written in place by one restore at a time: a second
   * forced restore to it fails at once (two used to both exit 0, the file a mix).
   */
  @Test
  void forcedRestoresOverOneExistingFileAreOneAtATime() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = Files.write(tmp.resolve("existing.img"), new byte[1 << 20]);
      // the same file under other names: a hard link, a symbolic link (each used to get its own
      // lock file beside it: two restores both exited 0, the file a mix)
      Path hard = Files.createLink(tmp.resolve("hard.img"), to);
      Path soft = Files.createSymbolicLink(tmp.resolve("soft.img"), to);
      AtomicBoolean tried = new AtomicBoolean();
      RestoreListener second =
          (done, total) -> {
            if (done > 0 && done < total && tried.compareAndSet(false, true)) {
              for (Path name : List.of(to, hard, soft)) {
                assertThatThrownBy(() -> restoreVda(repo, m, name, true))
                    .as(name.toString())
                    .isInstanceOf(CommandException.class)
                    .hasMessageContaining("another restore is writing");
              }
            }
          };
      DiskRestore.prepare(formats, to, true, null, true).run(repo, m, "vda", second, s -> {});
      assertThat(tried).isTrue();
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
      assertThat(tmp.resolve("existing.img.partial.lock")).doesNotExist();
      // released: the next forced restore through a link runs
      restoreVda(repo, m, hard, true);
      assertThat(TestImages.sha256(to)).isEqualTo(TestImages.sha256(data));
    }
  }

  /**
   * Targets that are not files: a FIFO (its open blocked a restore forever, and a server's job
   * queue with it), a character device; and files inside the repository being read (a forced
   * restore over its own config destroyed it). All refused before anything is written.
   */
  @Test
  void targetsThatAreNotFilesOrAreInsideTheRepositoryAreRefused() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path fifo = tmp.resolve("pipe");
      Process mk = new ProcessBuilder("mkfifo", fifo.toString()).start();
      assertThat(mk.waitFor()).isZero();
      assertThatThrownBy(() -> DiskRestore.prepare(formats, fifo, true, null))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("is a FIFO (named pipe), not a file or a block device")
          .satisfies(
              e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.TARGET));
      assertThatThrownBy(() -> DiskRestore.prepare(formats, Path.of("/dev/null"), true, null))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("is a character device");

      Path config = tmp.resolve("repo").resolve("config");
      byte[] before = Files.readAllBytes(config);
      for (Path inside : List.of(config, tmp.resolve("repo").resolve("new.img"))) {
        assertThatThrownBy(() -> restoreVda(repo, m, inside, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("is inside the repository");
      }
      assertThat(Files.readAllBytes(config)).isEqualTo(before);
      assertThat(tmp.resolve("repo").resolve("new.img")).doesNotExist();
    }
  }

  /**
   * A lock file someone deleted while the restore ran (a cleanup of *.lock) let another restore
   * replace FILE.partial; the first then published the other's half-written file. Now nothing is
   * published. And a symbolic link planted at FILE.partial is never written through.
   */
  @Test
  void aRemovedLockFileOrAPlantedLinkIsNeverPublishedOrWrittenThrough() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = tmp.resolve("n.img");
      Path lock = tmp.resolve("n.img.partial.lock");
      AtomicBoolean removed = new AtomicBoolean();
      RestoreListener cleanup =
          (done, total) -> {
            if (done > 0 && done < total && removed.compareAndSet(false, true)) {
              try {
                Files.delete(lock);
                Files.writeString(lock, ""); // another restore's, say
              } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            }
          };
      assertThatThrownBy(
              () ->
                  DiskRestore.prepare(formats, to, false, null)
                      .run(repo, m, "vda", cleanup, s -> {}))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("lock file '" + lock + "' was removed while the restore ran")
          .hasMessageContaining("nothing was published");
      assertThat(to).doesNotExist();
      assertThat(lock).as("the other one's lock file is not deleted").exists();
      Files.delete(lock);

      Path victim = Files.writeString(tmp.resolve("victim.txt"), "precious");
      Files.createSymbolicLink(tmp.resolve("v.img.partial"), victim);
      restoreVda(repo, m, tmp.resolve("v.img"), false);
      assertThat(Files.readString(victim)).isEqualTo("precious");
      assertThat(TestImages.sha256(tmp.resolve("v.img"))).isEqualTo(TestImages.sha256(data));
      assertThat(Files.isSymbolicLink(tmp.resolve("v.img"))).isFalse();
    }
  }

  /**
   * A target that is the repository under another name (audit: a hard link of its config, the
   * repository reached through a bind mount, the mounted device its file system is on) destroyed it
   * with exit 0; a mounted device, or the backing file of a mounted loop device, was written over.
   * All refused now, with the repository intact.
   */
  @Test
  void theRepositoryUnderAnotherNameAndMountedDevicesAreRefused() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path config = tmp.resolve("repo").resolve("config");
      byte[] before = Files.readAllBytes(config);
      Path link = tmp.resolve("cfglink");
      Files.createLink(link, config);
      assertThatThrownBy(() -> restoreVda(repo, m, link, true))
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("is inside the repository")
          .hasMessageContaining("through another name");
      assertThat(Files.readAllBytes(config)).isEqualTo(before);
      Files.delete(link);
      if (!asRoot("bind mounts and loop devices")) {
        return;
      }
      // a loop device over one of the repository's files (a pack)
      Path pack;
      try (var files = Files.walk(tmp.resolve("repo").resolve("data"))) {
        pack = files.filter(Files::isRegularFile).findFirst().orElseThrow();
      }
      byte[] packBefore = Files.readAllBytes(pack);
      // (its output ends with the device, after a warning that the file is not whole sectors)
      String overPack =
          sh("losetup", "-f", "--show", pack.toString()).lines().reduce((x, y) -> y).orElseThrow();
      try {
        assertThatThrownBy(() -> restoreVda(repo, m, Path.of(overPack), true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("is inside the repository");
      } finally {
        sh("losetup", "-d", overPack);
      }
      assertThat(Files.readAllBytes(pack)).isEqualTo(packBefore);
      Path alias = Files.createDirectories(tmp.resolve("alias"));
      sh("mount", "--bind", tmp.resolve("repo").toString(), alias.toString());
      try {
        for (Path p : List.of(alias.resolve("config"), alias.resolve("snapshots").resolve("x"))) {
          assertThatThrownBy(() -> restoreVda(repo, m, p, true))
              .as(p.toString())
              .isInstanceOf(CommandException.class)
              .hasMessageContaining("is inside the repository");
        }
      } finally {
        sh("umount", alias.toString());
      }
      // one of its directories, or one of its files, bound elsewhere (both destroyed data: the
      // only snapshot, the config)
      Path snaps = Files.createDirectories(tmp.resolve("snaps"));
      sh("mount", "--bind", tmp.resolve("repo").resolve("snapshots").toString(), snaps.toString());
      Path cfg = Files.createFile(tmp.resolve("cfg"));
      sh("mount", "--bind", config.toString(), cfg.toString());
      try {
        for (Path p : List.of(snaps.resolve(m.id()), snaps.resolve("new"), cfg)) {
          assertThatThrownBy(() -> restoreVda(repo, m, p, true))
              .as(p.toString())
              .isInstanceOf(CommandException.class)
              .hasMessageContaining("is inside the repository");
        }
      } finally {
        sh("umount", snaps.toString());
        sh("umount", cfg.toString());
      }
      assertThat(Files.readAllBytes(config)).isEqualTo(before);
      assertThat(tmp.resolve("repo").resolve("snapshots").resolve("x")).doesNotExist();
      assertThat(tmp.resolve("repo").resolve("snapshots").resolve("new")).doesNotExist();
      assertThat(repo.snapshots()).hasSize(1);

      Path backing = tmp.resolve("fs.img");
      try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
        f.setLength(64L << 20);
      }
      sh("mkfs.ext4", "-q", "-F", backing.toString());
      String dev = sh("losetup", "-f", "--show", backing.toString());
      Path mnt = Files.createDirectories(tmp.resolve("mnt"));
      sh("mount", dev, mnt.toString());
      try {
        Files.writeString(mnt.resolve("keep.txt"), "on the mounted file system");
        assertThatThrownBy(() -> restoreVda(repo, m, Path.of(dev), true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("is in use (mounted at " + mnt)
            .satisfies(
                e -> assertThat(((CommandException) e).exitCode()).isEqualTo(ExitCodes.TARGET));
        assertThatThrownBy(() -> restoreVda(repo, m, backing, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("it backs " + dev);
        // a second loop device over the same file, and one stacked on the mounted device
        for (String over : List.of(backing.toString(), dev)) {
          String second = sh("losetup", "-f", "--show", over);
          try {
            assertThatThrownBy(() -> restoreVda(repo, m, Path.of(second), true))
                .as(second + " over " + over)
                .isInstanceOf(CommandException.class)
                .hasMessageContaining("it shows the same bytes as " + dev)
                .hasMessageContaining("is in use (mounted at " + mnt);
          } finally {
            sh("losetup", "-d", second);
          }
        }
      } finally {
        sh("umount", mnt.toString());
      }
      // the other way round: a loop device stacked on the file's loop device is mounted; the
      // file and the device under it show its bytes
      String upper = sh("losetup", "-f", "--show", dev);
      sh("mount", upper, mnt.toString());
      try {
        assertThatThrownBy(() -> restoreVda(repo, m, backing, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("it backs " + upper)
            .hasMessageContaining("is in use (mounted at " + mnt);
        assertThatThrownBy(() -> restoreVda(repo, m, Path.of(dev), true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("it shows the same bytes as " + upper);
      } finally {
        sh("umount", mnt.toString());
        sh("losetup", "-d", upper);
      }
      // nothing was written over it; unmounted, the same device is written
      sh("mount", "-o", "ro", dev, mnt.toString());
      assertThat(Files.readString(mnt.resolve("keep.txt"))).isEqualTo("on the mounted file system");
      sh("umount", mnt.toString());
      try {
        restoreVda(repo, m, Path.of(dev), true);
      } finally {
        sh("losetup", "-d", dev);
      }
      byte[] head = Arrays.copyOf(Files.readAllBytes(backing), data.length);
      assertThat(head).isEqualTo(data);
    }
  }

  /**
   * A --force restore writing a file in place and one renaming a new file over it (another format,
   * a stream) took different locks, and both exited 0 with the in-place one's data lost; a --force
   * restore onto another restore's FILE.partial wrote into it, and the other published the mix.
   * Both now fail at once.
   */
  @Test
  void inPlaceAndRenamingRestoresOfOneFileAreOneAtATime() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path x = Files.write(tmp.resolve("x.img"), new byte[] {1, 2, 3});
      try (PartialFile inPlace = PartialFile.takeInPlace(x)) {
        assertThatThrownBy(() -> PartialFile.take(x))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("another restore is writing '" + x + "'");
      }
      Path y = tmp.resolve("y.img");
      try (PartialFile writing = PartialFile.take(y)) {
        Path partial = writing.create();
        assertThatThrownBy(() -> restoreVda(repo, m, partial, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("another restore is writing");
        assertThat(Files.size(partial)).isZero();
      }
    }
  }

  /**
   * An image writer created FILE.partial, someone who can write the directory renamed a link over
   * it, and the restore recorded the link as its file and published it as FILE (its writer's second
   * open followed it and overwrote what it pointed to). Anything but a regular file there is now
   * refused, and is never what the restore writes through.
   */
  @Test
  void aLinkRenamedOverACreatedPartialIsRefused() throws Exception {
    Path victim = Files.writeString(tmp.resolve("victim.txt"), "precious");
    Path y = tmp.resolve("y.qcow2");
    try (PartialFile writing = PartialFile.take(y)) {
      Path partial = writing.path();
      Files.createFile(partial); // as a writer would
      Path link = Files.createSymbolicLink(tmp.resolve("planted"), victim);
      Files.move(link, partial, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      assertThatThrownBy(writing::created)
          .isInstanceOf(CommandException.class)
          .hasMessageContaining("was replaced by something that is not a regular file")
          .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7));
    }
    assertThat(Files.readString(victim)).isEqualTo("precious");
    assertThat(y).doesNotExist();
  }

  /** A FIFO planted at a restore's lock file name blocked the restore forever in open(2). */
  @Test
  void aFifoAtTheLockFileIsRefusedNotWaitedOn() throws Exception {
    Path y = tmp.resolve("y.img");
    sh("mkfifo", tmp.resolve("y.img.partial.lock").toString());
    org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(
        java.time.Duration.ofSeconds(20),
        () ->
            assertThatThrownBy(() -> PartialFile.take(y))
                .isInstanceOf(CommandException.class)
                .hasMessageContaining("not a restore's lock file")
                .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7)));
  }

  /**
   * Root and another user restoring one existing file at once were not kept apart: their lock files
   * live in per-user directories. The file itself is locked now (an open-file-description lock,
   * which every process of every user sees): a lock on it held elsewhere refuses the restore.
   */
  @Test
  void aLockOnTheTargetFileItselfRefusesAnInPlaceRestore() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path x = Files.write(tmp.resolve("shared.img"), new byte[] {1, 2, 3});
      try (OfdLock other = OfdLock.lock(x)) { // as another user's restore holds it
        assertThat(other).as("libgranule-native is loaded in tests").isNotNull();
        assertThatThrownBy(() -> restoreVda(repo, m, x, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("another restore (of any user) is writing");
      }
      assertThat(Files.readAllBytes(x)).containsExactly(1, 2, 3);
      restoreVda(repo, m, x, true);
      assertThat(TestImages.sha256(x)).isEqualTo(TestImages.sha256(data));
    }
  }

  /**
   * A --force restore onto a disk a backup was reading made the backup store a mix of the two
   * disks, and both said they succeeded. A backup now holds a read lock on each disk it reads:
   * restores of it are refused meanwhile, and a backup of a disk a restore is writing does not
   * start.
   */
  @Test
  void backupsAndInPlaceRestoresOfOneDiskAreKeptApart() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path x = Files.write(tmp.resolve("vm.img"), new byte[] {1, 2, 3});
      Path link = Files.createSymbolicLink(tmp.resolve("vm-link.img"), x);
      try (java.io.Closeable reading = DiskRestore.lockForReading(x);
          java.io.Closeable again = DiskRestore.lockForReading(link)) { // two backups of it
        assertThatThrownBy(() -> restoreVda(repo, m, x, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("a backup is reading")
            .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7));
        reading.close(); // the other backup still reads it
        assertThatThrownBy(() -> restoreVda(repo, m, link, true))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("a backup is reading");
      }
      assertThat(Files.readAllBytes(x)).containsExactly(1, 2, 3);

      PluginLeases<DiskImageFormat> raw =
          new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
      raw.added(
          "raw",
          new io.granule.engine.internal.image.RawFormat(),
          new PluginLeases.Origin("io.granule.engine", "0"),
          0);
      BackupOperation op =
          new BackupOperation(
                  raw, new PluginLeases<>("SnapshotProvider", p -> p.name(), Duration.ofSeconds(1)))
              .withReadLocks(DiskRestore::lockForReading);
      List<BackupOperation.DiskSpec> disks = List.of(new BackupOperation.DiskSpec("vda", x, "raw"));
      try (PartialFile writing = PartialFile.takeInPlace(x)) { // a restore of this process
        assertThatThrownBy(
                () ->
                    op.run(repo, disks, List.of(), null, null, "h", List.of(), BackupListener.NONE))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("a restore is writing '" + x + "'")
            .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(6));
      }
      try (OfdLock other = OfdLock.lock(x)) { // another user's restore: its lock on the file
        assertThat(other).as("libgranule-native is loaded in tests").isNotNull();
        assertThatThrownBy(() -> DiskRestore.lockForReading(link))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("a restore (of some user) is writing")
            .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(6));
      }
      int before = repo.snapshots().size();
      op.run(repo, disks, List.of(), null, null, "h", List.of(), BackupListener.NONE);
      assertThat(repo.snapshots()).hasSize(before + 1);
      restoreVda(repo, m, x, true); // nothing held any more
      assertThat(TestImages.sha256(x)).isEqualTo(TestImages.sha256(data));
      if (Files.isWritable(Path.of("/run"))) {
        var a = Files.readAttributes(x, "unix:dev,ino");
        Path lockFile =
            Path.of(
                "/run/granule/targets",
                "file-" + Long.toHexString((Long) a.get("dev")) + "-" + a.get("ino") + ".lock");
        assertThat(lockFile).as("released and removed by the last backup").doesNotExist();
      }
    }
  }

  /**
   * A backup of a loop device and a restore in place of the file behind it (or the other way round)
   * ran together, exit 0, and the snapshot was neither disk: a loop device's bytes are its backing
   * file's, so both sides lock that file too.
   */
  @Test
  void aLoopDeviceAndItsBackingFileAreOneDiskToBackupsAndRestores() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path x = Files.write(tmp.resolve("loop-backing.img"), new byte[data.length]);
      Path dev = Path.of(sh("losetup", "-f", "--show", x.toString()));
      try {
        try (java.io.Closeable reading = DiskRestore.lockForReading(dev)) { // backup of the device
          assertThatThrownBy(() -> restoreVda(repo, m, x, true))
              .isInstanceOf(CommandException.class)
              .hasMessageContaining("a backup is reading")
              .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7));
        }
        try (java.io.Closeable reading = DiskRestore.lockForReading(x)) { // backup of the file
          assertThatThrownBy(() -> restoreVda(repo, m, dev, true))
              .isInstanceOf(CommandException.class)
              .hasMessageContaining("a backup is reading")
              .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7));
        }
        try (PartialFile writing = PartialFile.takeInPlace(x)) { // a restore of the file
          assertThatThrownBy(() -> DiskRestore.lockForReading(dev))
              .isInstanceOf(CommandException.class)
              .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(6));
        }
        assertThat(Files.readAllBytes(x))
            .as("nothing written meanwhile")
            .isEqualTo(new byte[data.length]);
        restoreVda(repo, m, dev, true); // nothing held any more
        assertThat(Files.readAllBytes(x)).isEqualTo(data);
      } finally {
        sh("losetup", "-d", dev.toString());
      }
    }
  }

  /**
   * Anyone who may read an image could take a read lock on its lock byte and so keep root from
   * restoring it, told that "another restore is writing". Root's backups hold root's lock file, so
   * a read lock root meets is another user's: root restores anyway. Another user's restore is
   * refused, named for what it is (the reader could be root's backup, whose lock file it cannot
   * see).
   */
  @Test
  void aReadersLockIsNamedAndDoesNotStopRoot() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path x = Files.write(tmp.resolve("vm.img"), new byte[] {1, 2, 3});
      try (OfdLock reader = OfdLock.lockForReading(x)) { // a reader that is no backup of root's
        assertThat(reader).as("libgranule-native is loaded in tests").isNotNull();
        assertThatThrownBy(() -> OfdLock.lock(x))
            .isInstanceOf(OfdLock.ReadersException.class)
            .hasMessageContaining("holds a read lock on it");
        if (asRoot("restoring over a reader's lock")) {
          restoreVda(repo, m, x, true);
          assertThat(TestImages.sha256(x)).isEqualTo(TestImages.sha256(data));
        } else {
          assertThatThrownBy(() -> restoreVda(repo, m, x, true))
              .isInstanceOf(CommandException.class)
              .hasMessageContaining("wait for the backup to finish");
        }
      }
    }
  }

  /**
   * Identity lock files of restores and backups that were killed stayed in /run/granule/targets
   * forever. A process's first lock removes those older than ten minutes that nobody holds.
   */
  @Test
  void staleIdentityLockFilesAreSweptAndHeldOrRecentOnesKept() throws Exception {
    Path dir = Files.createDirectory(tmp.resolve("targets"));
    java.nio.file.attribute.FileTime old =
        java.nio.file.attribute.FileTime.from(java.time.Instant.now().minusSeconds(3600));
    Path stale = Files.createFile(dir.resolve("file-fe00-1.lock"));
    Path recent = Files.createFile(dir.resolve("file-fe00-2.lock"));
    Path held = Files.createFile(dir.resolve("blk-801.lock"));
    Path other = Files.createFile(dir.resolve("notes.txt"));
    for (Path p : List.of(stale, held, other)) {
      Files.setLastModifiedTime(p, old);
    }
    Process holder =
        new ProcessBuilder(
                "python3",
                "-c",
                "import fcntl,os,sys,time\n"
                    + "fd=os.open(sys.argv[1],os.O_RDWR)\n"
                    + "fcntl.lockf(fd,fcntl.LOCK_SH)\n"
                    + "print('held',flush=True)\n"
                    + "time.sleep(60)",
                held.toString())
            .start();
    try {
      assertThat(new String(holder.getInputStream().readNBytes(4), StandardCharsets.UTF_8))
          .isEqualTo("held");
      PartialFile.sweepStale(dir);
      assertThat(stale).doesNotExist();
      assertThat(recent).exists();
      assertThat(held).as("held by another process (a backup)").exists();
      assertThat(other).as("not a lock file").exists();
    } finally {
      holder.destroyForcibly().waitFor();
    }
    PartialFile.sweepStale(dir);
    assertThat(held).doesNotExist();
  }

  /**
   * The writer opens its target without following links: a link planted at a target's name after
   * the checks (at FILE.partial, say) made a restore overwrite the file it pointed to.
   */
  @Test
  void theWriterNeverFollowsALinkAtItsTarget() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path victim = Files.writeString(tmp.resolve("victim.txt"), "precious");
      Path planted = Files.createSymbolicLink(tmp.resolve("t.img"), victim);
      assertThatThrownBy(() -> repo.restoreDisk(m, "vda", planted, RestoreListener.NONE))
          .isInstanceOf(RuntimeException.class);
      assertThat(Files.readString(victim)).isEqualTo("precious");
      // a link the user names is followed once, by the checks, and the file behind it written
      Path image = Files.write(tmp.resolve("behind.img"), new byte[] {9});
      Path named = Files.createSymbolicLink(tmp.resolve("named.img"), image);
      restoreVda(repo, m, named, true);
      assertThat(Files.isSymbolicLink(named)).isTrue();
      assertThat(TestImages.sha256(image)).isEqualTo(TestImages.sha256(data));
    }
  }

  /**
   * A restore to a new file created FILE.partial through the held directory, closed it, and then
   * took its identity by name: someone who can write the directory renamed another file (root's
   * other disk) over FILE.partial in between, and the restore wrote the disk into it, truncated it
   * and published it as FILE (audit8 F6). The identity is now the creating descriptor's, and the
   * restore writes through it: the other file is never written, truncated or published.
   */
  @Test
  void aFileRenamedOverTheNewPartialAsItIsCreatedIsNeverWrittenOrPublished() throws Exception {
    try (Repository repo = repo()) {
      Manifest m = backup(repo);
      Path to = tmp.resolve("out.img");
      byte[] otherDisk = new byte[8 << 20];
      Arrays.fill(otherDisk, (byte) 0x5a);
      Path other = Files.write(tmp.resolve("other.img"), otherDisk);
      AtomicBoolean swapped = new AtomicBoolean();
      PartialFile.afterCreate =
          partial -> {
            try {
              Files.move(other, partial, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
              swapped.set(true);
            } catch (java.io.IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          };
      try {
        assertThatThrownBy(() -> restoreVda(repo, m, to, false))
            .isInstanceOf(CommandException.class)
            .hasMessageContaining("was replaced while the restore ran")
            .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7));
      } finally {
        PartialFile.afterCreate = null;
      }
      assertThat(swapped).isTrue();
      assertThat(to).as("nothing published").doesNotExist();
      Path partial = tmp.resolve("out.img.partial");
      assertThat(Files.readAllBytes(partial)).as("the other disk untouched").isEqualTo(otherDisk);
    }
  }

  /**
   * An image writer creates FILE.partial itself: a file renamed over that name before the restore
   * recorded it was taken as the restore's (audit8 F6, image writers). It is accepted only if it is
   * a file the writer opened under that name.
   */
  @Test
  void aFileRenamedOverAnImageWritersPartialIsRefused() throws Exception {
    Path real = Files.createDirectory(tmp.resolve("vms"));
    byte[] otherDisk = new byte[1 << 20];
    Arrays.fill(otherDisk, (byte) 0x5a);
    Path other = Files.write(real.resolve("other.img"), otherDisk);
    Path y = real.resolve("y.qcow2");
    try (io.granule.engine.internal.ops.DirectoryHandle dir =
        io.granule.engine.internal.ops.DirectoryHandle.open(real, real, null)) {
      try (PartialFile writing = PartialFile.take(y, dir)) {
        writing.beforeCreate();
        Path at = dir.entry("y.qcow2.partial");
        try (java.nio.channels.FileChannel w =
            java.nio.channels.FileChannel.open(
                at,
                java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
          Files.move(other, at, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
          assertThatThrownBy(writing::created)
              .isInstanceOf(CommandException.class)
              .hasMessageContaining("was replaced by another file")
              .satisfies(e -> assertThat(((CommandException) e).exitCode()).isEqualTo(7));
        }
      }
      assertThat(Files.readAllBytes(real.resolve("y.qcow2.partial"))).isEqualTo(otherDisk);
      Files.delete(real.resolve("y.qcow2.partial"));
      try (PartialFile writing = PartialFile.take(y, dir)) {
        writing.beforeCreate();
        try (java.nio.channels.FileChannel w =
            java.nio.channels.FileChannel.open(
                dir.entry("y.qcow2.partial"),
                java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
          writing.created(); // the writer's own file
          w.write(java.nio.ByteBuffer.wrap(new byte[] {7}));
        }
        writing.publish(false);
      }
      assertThat(Files.readAllBytes(y)).containsExactly(7);
    }
  }

  /**
   * The lock file FILE.partial.lock was created (and deleted) by its full name after the target's
   * directory had been resolved: a directory swapped for a link meanwhile had root create an empty
   * lock file in a directory of the swapper's choice (audit8 F3). It is made, locked and deleted
   * through the held directory now, and is its owner's alone.
   */
  @Test
  void theLockFileIsMadeThroughTheHeldDirectoryNotByName() throws Exception {
    Path real = Files.createDirectory(tmp.resolve("real"));
    Path elsewhere = Files.createDirectory(tmp.resolve("elsewhere"));
    Path named = Files.createSymbolicLink(tmp.resolve("d"), real);
    Path target = named.resolve("job");
    try (io.granule.engine.internal.ops.DirectoryHandle dir =
        io.granule.engine.internal.ops.DirectoryHandle.open(real, named, null)) {
      // the name now leads elsewhere: what the restore makes must still be in the held directory
      Files.delete(named);
      Files.createSymbolicLink(named, elsewhere);
      try (PartialFile held = PartialFile.take(target, dir)) {
        Path made = held.create();
        Files.write(made, new byte[] {1, 2, 3});
        assertThat(real.resolve("job.partial.lock")).exists();
        assertThat(
                java.nio.file.attribute.PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(real.resolve("job.partial.lock"))))
            .isEqualTo("rw-------");
        assertThat(real.resolve("job.partial")).exists();
        held.publish(false);
      }
      assertThat(Files.readAllBytes(real.resolve("job"))).containsExactly(1, 2, 3);
      assertThat(real.resolve("job.partial.lock")).as("deleted on release").doesNotExist();
      try (var left = Files.list(elsewhere)) {
        assertThat(left).as("nothing made or left where the name leads").isEmpty();
      }
    }
  }

  /**
   * Identity lock files were created 0644: any user could open one and hold a read lock on it while
   * root's backup held it, and root's later in-place restores of that disk were refused (audit8
   * F4). They are made 0600, and an existing one's mode is repaired by its owner.
   */
  @Test
  void identityLockFilesAreTheOwnersAlone() throws Exception {
    Path x = Files.write(tmp.resolve("vm.img"), new byte[] {1, 2, 3});
    java.util.Map<String, Object> a =
        Files.readAttributes(x, "unix:dev,ino", java.nio.file.LinkOption.NOFOLLOW_LINKS);
    try (java.io.Closeable reading = PartialFile.lockForReading(x)) {
      Path lockFile = heldIdentityLock(a);
      assertThat(
              java.nio.file.attribute.PosixFilePermissions.toString(
                  Files.getPosixFilePermissions(lockFile)))
          .isEqualTo("rw-------");
    }
    // one an earlier version made readable by all
    try (PartialFile w = PartialFile.takeInPlace(x)) {
      Path lockFile = heldIdentityLock(a);
      Files.setPosixFilePermissions(
          lockFile, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    }
    try (java.io.Closeable reading = PartialFile.lockForReading(x)) {
      Path lockFile = heldIdentityLock(a);
      if (Files.exists(lockFile)) {
        assertThat(
                java.nio.file.attribute.PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(lockFile)))
            .isEqualTo("rw-------");
      }
    }
  }

  /** The identity lock file of the file with these attributes that this process holds. */
  private static Path heldIdentityLock(java.util.Map<String, Object> a) throws Exception {
    String name = "file-" + Long.toHexString((Long) a.get("dev")) + "-" + a.get("ino") + ".lock";
    try (var fds = Files.list(Path.of("/proc/self/fd"))) {
      for (Path fd : (Iterable<Path>) fds::iterator) {
        try {
          Path p = Files.readSymbolicLink(fd);
          if (p.getFileName() != null && p.getFileName().toString().equals(name)) {
            return p;
          }
        } catch (java.io.IOException e) {
          // closed meanwhile
        }
      }
    }
    throw new AssertionError("no identity lock file " + name + " held");
  }

  /** Whether this runs as root; false (a skip, said why) on a laptop, a failure under CI. */
  /** Restores disk vda of {@code m} to {@code to} as `restore disk` does. */
  private void restoreVda(Repository repo, Manifest m, Path to, boolean force) throws Exception {
    DiskRestore.prepare(formats, to, force, null, force)
        .run(repo, m, "vda", RestoreListener.NONE, s -> {});
  }

  private static boolean asRoot(String what) {
    if ("root".equals(System.getProperty("user.name"))) {
      return true;
    }
    if ("true".equals(System.getenv("CI"))) {
      throw new AssertionError(what + " need root, and CI runs as root");
    }
    System.err.println("skipping the part that needs root: " + what);
    return false;
  }

  private static String sh(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new AssertionError(String.join(" ", cmd) + " failed: " + out);
    }
    return out;
  }
}
