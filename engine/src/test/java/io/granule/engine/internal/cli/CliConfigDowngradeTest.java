package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.image.RawFormat;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import io.granule.engine.internal.repo.TamperedConfigs;
import io.granule.engine.spi.DiskImageFormat;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * audit9 C1 on the command line: the config of an encrypted repository is rewritten as unencrypted
 * (no {@code encryption}, chunk hash {@code blake3}) by someone who can write the storage. The
 * owner's next {@code granule backup}, password set as usual, used to store the disk in plaintext
 * and exit 0; it now stores nothing and exits 5 (damaged), naming the config.
 */
class CliConfigDowngradeTest {
  private static final String MARKER = "TOP-SECRET-MARKER-4f1c";

  @TempDir Path tmp;
  StringWriter out = new StringWriter();
  StringWriter err = new StringWriter();
  final Map<String, String> env = new HashMap<>();
  PluginLeases<DiskImageFormat> formats;
  Path image;

  @BeforeEach
  void setUp() throws Exception {
    formats = new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
    formats.added("raw", new RawFormat(), new Origin("io.granule.engine", "0"), 0);
    env.put("GRANULE_PASSWORD", "pw");
    env.put("XDG_CACHE_HOME", tmp.resolve("cache").toString());
    image = tmp.resolve("vm.img");
    Files.write(image, MARKER.repeat(40_000).getBytes(StandardCharsets.UTF_8));
    assertThat(run("init", "--repo", repo())).as(err.toString()).isZero();
    assertThat(backup()).as(err.toString()).isZero();
    TamperedConfigs.downgrade(repoDir());
  }

  int run(String... args) {
    out = new StringWriter();
    err = new StringWriter();
    CliContext ctx =
        TestContexts.of(
            formats, TestContexts.applications(), tmp, out, err, env::get, Terminal.NONE);
    return new Cli(ctx).run(args);
  }

  int backup() {
    return run("backup", "--repo", repo(), "--disk", "vm=" + image, "--no-progress");
  }

  Path repoDir() {
    return tmp.resolve("repo");
  }

  String repo() {
    return repoDir().toString();
  }

  /** The repository's files, and whether any holds the marker in the clear. */
  List<Path> files() throws Exception {
    try (Stream<Path> all = Files.walk(repoDir())) {
      return all.filter(Files::isRegularFile).sorted().toList();
    }
  }

  boolean anyPlaintext() throws Exception {
    byte[] needle = MARKER.getBytes(StandardCharsets.UTF_8);
    for (Path f : files()) {
      byte[] b = Files.readAllBytes(f);
      outer:
      for (int i = 0; i + needle.length <= b.length; i++) {
        for (int j = 0; j < needle.length; j++) {
          if (b[i + j] != needle[j]) {
            continue outer;
          }
        }
        return true;
      }
    }
    return false;
  }

  @Test
  void theNextBackupRefusesAndStoresNothing() throws Exception {
    List<Path> before = files();
    assertThat(backup()).as(out + "" + err).isEqualTo(ExitCodes.DAMAGED);
    assertThat(err.toString())
        .startsWith(
            "granule: the config of the repository at '"
                + repo()
                + "' was changed to unencrypted ("
                + repoDir().resolve("config")
                + "), but this user opened it encrypted before");
    assertThat(files()).isEqualTo(before);
    assertThat(anyPlaintext()).isFalse();
  }

  @Test
  void anotherUserWithoutThePinIsRefusedByTheKeyBlobs() throws Exception {
    env.put("XDG_CACHE_HOME", tmp.resolve("other-cache").toString());
    List<Path> before = files();
    assertThat(backup()).as(out + "" + err).isEqualTo(ExitCodes.DAMAGED);
    assertThat(err.toString())
        .contains("says it is not encrypted")
        .contains("key blob(s) in keys/: the config was changed to unencrypted");
    assertThat(files()).isEqualTo(before);
    assertThat(anyPlaintext()).isFalse();
  }

  /**
   * The keys deleted too, on a machine that never opened the repository: only the password given
   * tells that the owner expects encryption. The backup is refused (exit 8) before anything is
   * written; without a password it would have stored the disk in plaintext.
   */
  @Test
  void aNewMachineGivingAPasswordIsRefusedWhenTheKeysAreGoneToo() throws Exception {
    env.put("XDG_CACHE_HOME", tmp.resolve("new-machine-cache").toString());
    try (Stream<Path> keys = Files.list(repoDir().resolve("keys"))) {
      for (Path k : keys.toList()) {
        Files.delete(k);
      }
    }
    List<Path> before = files();
    assertThat(backup()).as(out + "" + err).isEqualTo(ExitCodes.AUTH);
    assertThat(err.toString())
        .contains("is not encrypted, but a password was given (GRANULE_PASSWORD)");
    Path pwFile = tmp.resolve("pw.txt");
    Files.writeString(pwFile, "pw\n");
    env.remove("GRANULE_PASSWORD");
    assertThat(run("snapshots", "--repo", repo(), "--password-file", pwFile.toString()))
        .as(out + "" + err)
        .isEqualTo(ExitCodes.AUTH);
    assertThat(err.toString()).contains("a password was given (--password-file)");
    assertThat(files()).isEqualTo(before);
    assertThat(anyPlaintext()).isFalse();
  }

  /**
   * audit11 netkeys F5: {@code GRANULE_PASSWORD} set but empty counts as a password given, as an
   * empty {@code --password-file} does: the downgraded repository (keys gone, no pins) is refused,
   * not opened as unencrypted; an encrypted one asks for a real password (usage, exit 2).
   */
  @Test
  void anEmptyGranulePasswordIsAPasswordGiven() throws Exception {
    env.put("XDG_CACHE_HOME", tmp.resolve("new-machine-cache").toString());
    try (Stream<Path> keys = Files.list(repoDir().resolve("keys"))) {
      for (Path k : keys.toList()) {
        Files.delete(k);
      }
    }
    List<Path> before = files();
    env.put("GRANULE_PASSWORD", "");
    assertThat(run("snapshots", "--repo", repo())).as(out + "" + err).isEqualTo(ExitCodes.AUTH);
    assertThat(err.toString())
        .contains("is not encrypted, but a password was given (GRANULE_PASSWORD)")
        .contains("give no password for it");
    assertThat(backup()).as(out + "" + err).isEqualTo(ExitCodes.AUTH);
    assertThat(files()).isEqualTo(before);
    assertThat(anyPlaintext()).isFalse();
    // an encrypted repository: the empty variable is no password
    env.put("GRANULE_PASSWORD", "pw");
    Path enc = tmp.resolve("enc");
    assertThat(run("init", "--repo", enc.toString())).as(err.toString()).isZero();
    env.put("GRANULE_PASSWORD", "");
    assertThat(run("snapshots", "--repo", enc.toString()))
        .as(out + "" + err)
        .isEqualTo(ExitCodes.USAGE);
    assertThat(err.toString()).contains("GRANULE_PASSWORD is set but empty");
  }

  /**
   * audit15 H: every way someone who can write the directory above a repository puts his own
   * unencrypted one in its place that the pins missed (a relative --repo from a directory entered
   * through his link with $PWD gone, a directory made anew on XFS or tmpfs mounted elsewhere)
   * leaves a repository that is his: an unencrypted repository of another user's is refused (exit
   * code 5, nothing written) unless GRANULE_UNENCRYPTED_OWNERS names him.
   */
  @Test
  void anUnencryptedRepositoryOfAnotherUsersIsRefusedUnlessNamed() throws Exception {
    io.granule.engine.internal.TestRoot.require("giving a repository to another user (chown)");
    Path his = tmp.resolve("his");
    env.remove("GRANULE_PASSWORD");
    assertThat(run("init", "--insecure-no-encryption", "--repo", his.toString()))
        .as(err.toString())
        .isZero();
    try (Stream<Path> all = Files.walk(his)) {
      for (Path p : all.toList()) {
        Files.setAttribute(p, "unix:uid", 1001, java.nio.file.LinkOption.NOFOLLOW_LINKS);
      }
    }
    int code = run("backup", "--repo", his.toString(), "--disk", "vm=" + image, "--no-progress");
    assertThat(code).as(err.toString()).isEqualTo(5);
    assertThat(err.toString())
        .contains("is not encrypted and it belongs to uid 1001, another user")
        .contains("GRANULE_UNENCRYPTED_OWNERS=1001");
    try (Stream<Path> all = Files.walk(his)) {
      assertThat(all.filter(p -> p.toString().contains("/data/")).toList())
          .as("nothing written")
          .isEmpty();
    }
    // a server trusts the users it serves (--api-users) besides
    try (io.granule.engine.internal.repo.Repository r =
        io.granule.engine.internal.repo.Repository.open(his)) {
      RepoOption.refuseOthersUnencrypted(k -> null, java.util.Set.of(1001), r);
    }
    io.granule.engine.internal.repo.Repository other =
        io.granule.engine.internal.repo.Repository.open(his);
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> RepoOption.refuseOthersUnencrypted(k -> null, java.util.Set.of(1002), other))
        .isInstanceOf(io.granule.engine.internal.repo.RepositoryCorruptedException.class)
        .hasMessageContaining("belongs to uid 1001");
    env.put("GRANULE_UNENCRYPTED_OWNERS", "1002, 1001");
    code = run("backup", "--repo", his.toString(), "--disk", "vm=" + image, "--no-progress");
    assertThat(code).as(err.toString()).isZero();
    // trusting him covers what he holds, not a third user's config or write access (audit L6)
    Files.setAttribute(his.resolve("config"), "unix:uid", 1005);
    assertThat(run("snapshots", "--repo", his.toString())).as(err.toString()).isEqualTo(5);
    assertThat(err.toString()).contains("its config to uid 1005, a third user");
    Files.setAttribute(his.resolve("config"), "unix:uid", 1001);
    Files.setAttribute(his, "unix:gid", 1); // daemon's group: others are in it
    Files.setPosixFilePermissions(
        his, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxr-x"));
    assertThat(run("snapshots", "--repo", his.toString())).as(err.toString()).isEqualTo(5);
    assertThat(err.toString()).contains("belongs to uid 1001, another user, and group 1");
    Files.setPosixFilePermissions(
        his, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    assertThat(run("snapshots", "--repo", his.toString())).as(err.toString()).isZero();
    // root's own unencrypted repository opens as before
    env.remove("GRANULE_UNENCRYPTED_OWNERS");
    Path own = tmp.resolve("own");
    assertThat(run("init", "--insecure-no-encryption", "--repo", own.toString())).isZero();
    assertThat(run("snapshots", "--repo", own.toString())).as(err.toString()).isZero();
    // audit15 I1: his directory holding a config of root's (a hard link to a root file he can
    // write): the directory's owner counts, and a config with another name is not granule's
    Files.setAttribute(own, "unix:uid", 1001);
    assertThat(run("snapshots", "--repo", own.toString())).isEqualTo(5);
    assertThat(err.toString()).contains("it belongs to uid 1001");
    Files.setAttribute(own, "unix:uid", 0);
    Files.createLink(tmp.resolve("other-name"), own.resolve("config"));
    assertThat(run("snapshots", "--repo", own.toString())).isEqualTo(5);
    assertThat(err.toString()).contains("its config has another name");
  }

  /**
   * audit J1: a member of a group that shares a repository moved one of its directories (root's,
   * group-writable) into place of root's encrypted repository and wrote his unencrypted config into
   * one of its files (root's, group-writable): nothing was another user's, and root's backup was
   * stored in the clear. A directory or config that a group with other members (or everyone) can
   * write now counts as another's hold: refused (exit 5, nothing written) unless {@code
   * GRANULE_UNENCRYPTED_REPOS} names the repository; a group of this user's alone does not count.
   * audit J4: init refuses to make an unencrypted repository every later command would refuse.
   */
  @Test
  void anUnencryptedRepositoryOthersCanWriteIsRefusedUnlessNamed() throws Exception {
    io.granule.engine.internal.TestRoot.require("giving a repository to another group (chown)");
    int shared = 1; // daemon: the passwd entry of daemon has it as primary group
    org.junit.jupiter.api.Assumptions.assumeTrue(
        io.granule.engine.internal.ops.SourceAccess.othersIn(shared, 0), "group 1 has others");
    env.remove("GRANULE_PASSWORD");
    Path g = tmp.resolve("grouped");
    assertThat(run("init", "--insecure-no-encryption", "--repo", g.toString())).isZero();
    Files.setAttribute(g, "unix:gid", shared);
    Files.setPosixFilePermissions(
        g, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxr-x"));
    int code = run("backup", "--repo", g.toString(), "--disk", "vm=" + image, "--no-progress");
    assertThat(code).as(err.toString()).isEqualTo(5);
    assertThat(err.toString())
        .contains("is not encrypted and group 1, which has other members, can write its directory")
        .contains("GRANULE_UNENCRYPTED_REPOS=" + g);
    try (Stream<Path> all = Files.walk(g)) {
      assertThat(all.filter(p -> p.toString().contains("/data/")).toList())
          .as("nothing written")
          .isEmpty();
    }
    // the directory only root can write, its config writable by the group: the same
    Files.setPosixFilePermissions(
        g, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.setAttribute(g.resolve("config"), "unix:gid", shared);
    Files.setPosixFilePermissions(
        g.resolve("config"), java.nio.file.attribute.PosixFilePermissions.fromString("rw-rw-r--"));
    assertThat(run("snapshots", "--repo", g.toString())).isEqualTo(5);
    assertThat(err.toString()).contains("can write its config");
    // named: used as it is (another repository is not)
    env.put("GRANULE_UNENCRYPTED_REPOS", tmp.resolve("elsewhere") + ":" + g + "/");
    code = run("backup", "--repo", g.toString(), "--disk", "vm=" + image, "--no-progress");
    assertThat(code).as(err.toString()).isZero();
    env.remove("GRANULE_UNENCRYPTED_REPOS");
    // a group with no member but root (root's own group) is root's
    Files.setAttribute(g.resolve("config"), "unix:gid", 0);
    assertThat(run("snapshots", "--repo", g.toString())).as(err.toString()).isZero();
    // audit K3: an ACL entry letting another user (or a group with others) write, mode bits aside
    setfacl("u:1001:rwx", g);
    assertThat(run("snapshots", "--repo", g.toString())).isEqualTo(5);
    assertThat(err.toString()).contains("uid 1001 (an ACL entry) can write its directory");
    setfacl("-b", g);
    setfacl("g:" + shared + ":rw", g.resolve("config"));
    assertThat(run("snapshots", "--repo", g.toString())).isEqualTo(5);
    assertThat(err.toString())
        .contains("(an ACL entry), which has other members, can write its config");
    setfacl("-b", g.resolve("config"));
    assertThat(run("snapshots", "--repo", g.toString())).as(err.toString()).isZero();

    // audit J4: init into a directory others can write, or another user's, makes nothing
    Path pre = Files.createDirectory(tmp.resolve("premade"));
    Files.setAttribute(pre, "unix:uid", 1001);
    assertThat(run("init", "--insecure-no-encryption", "--repo", pre.toString())).isEqualTo(5);
    assertThat(err.toString())
        .contains("will not make an unencrypted repository in '" + pre + "'")
        .contains("it belongs to uid 1001")
        .contains("GRANULE_UNENCRYPTED_OWNERS=1001");
    try (Stream<Path> all = Files.list(pre)) {
      assertThat(all.toList()).as("nothing made").isEmpty();
    }
    // encrypted, it is made (a downgrade cannot pass unseen)
    env.put("GRANULE_PASSWORD", "pw");
    assertThat(run("init", "--repo", pre.toString())).as(err.toString()).isZero();

    // audit J3: an init stopped between its link and its unlink leaves a second name; the advice
    // works
    Path own = tmp.resolve("own2");
    env.remove("GRANULE_PASSWORD");
    assertThat(run("init", "--insecure-no-encryption", "--repo", own.toString())).isZero();
    Files.createLink(own.resolve(".tmp-config-123"), own.resolve("config"));
    assertThat(run("snapshots", "--repo", own.toString())).isEqualTo(5);
    assertThat(err.toString()).contains("delete a .tmp-config-* file beside it");
    Files.delete(own.resolve(".tmp-config-123"));
    assertThat(run("snapshots", "--repo", own.toString())).as(err.toString()).isZero();
  }

  /**
   * audit J2: the config's owner was looked up by name after it was read, so a config swapped in
   * between (renameat2 RENAME_EXCHANGE in a loop) passed: the owner judged is now the read file's.
   */
  @Test
  void theConfigJudgedIsTheConfigRead() throws Exception {
    io.granule.engine.internal.TestRoot.require("giving a config to another user (chown)");
    org.junit.jupiter.api.Assumptions.assumeTrue(
        io.granule.engine.internal.ops.DirectoryHandle.heldAvailable(), "libgranule-native");
    env.remove("GRANULE_PASSWORD");
    Path his = tmp.resolve("swapped");
    assertThat(run("init", "--insecure-no-encryption", "--repo", his.toString())).isZero();
    Path roots = tmp.resolve("roots-config");
    Files.copy(his.resolve("config"), roots);
    Files.setAttribute(his.resolve("config"), "unix:uid", 1001);
    try (io.granule.engine.internal.repo.blob.LocalBlobStore store =
        new io.granule.engine.internal.repo.blob.LocalBlobStore(his)) {
      store.load(io.granule.engine.internal.repo.blob.BlobName.CONFIG); // his, read
      Files.move(roots, his.resolve("config"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      assertThat(store.foreign()).as("the config read was his").isNotNull();
      assertThat(store.foreign().uid()).isEqualTo(1001);
      store.load(io.granule.engine.internal.repo.blob.BlobName.CONFIG); // root's, read
      assertThat(store.foreign()).isNull();
    }
  }

  /**
   * audit J6: a repository named with ".." after a link ({@code x/../plain}, x a link to /) was
   * looked for where the kernel's lookup led (/plain: "no repository"), while the store opens the
   * name as the shell's cd takes it: both now look at the same directory.
   */
  @Test
  void dotDotAfterALinkNamesTheDirectoryTheStoreOpens() throws Exception {
    env.remove("GRANULE_PASSWORD");
    Path plain = tmp.resolve("plain");
    assertThat(run("init", "--insecure-no-encryption", "--repo", plain.toString())).isZero();
    Files.createSymbolicLink(tmp.resolve("x"), Path.of("/"));
    assertThat(run("snapshots", "--repo", tmp.resolve("x/../plain").toString()))
        .as(err.toString())
        .isZero();
  }

  /**
   * audit L8: init made an unencrypted repository in a directory whose default ACL passed write
   * access for another user on to it, and every later command refused the repository. Init now
   * checks as they do, and removes what it made.
   */
  @Test
  void initUnderADefaultAclThatLetsAnotherUserWriteMakesNothing() throws Exception {
    env.remove("GRANULE_PASSWORD");
    Path parent = Files.createDirectory(tmp.resolve("acl-parent"));
    setfacl("d:u:1001:rwx", parent);
    Path repo = parent.resolve("repo");
    assertThat(run("init", "--insecure-no-encryption", "--repo", repo.toString())).isEqualTo(5);
    assertThat(err.toString())
        .contains("every command would refuse, so it was removed again")
        .contains("uid 1001")
        .contains("setfacl -k");
    assertThat(repo).doesNotExist();
    // an existing directory there is kept, emptied of what init made
    Path pre = Files.createDirectory(parent.resolve("pre"));
    setfacl("-b", pre); // its own ACL aside: only what it passes on matters
    setfacl("d:u:1001:rwx", pre);
    assertThat(run("init", "--insecure-no-encryption", "--repo", pre.toString())).isEqualTo(5);
    assertThat(pre).isDirectory();
    try (Stream<Path> all = Files.list(pre)) {
      assertThat(all.toList()).as("nothing left").isEmpty();
    }
    // encrypted, it is made (a downgrade cannot pass unseen)
    env.put("GRANULE_PASSWORD", "pw");
    assertThat(run("init", "--repo", repo.toString())).as(err.toString()).isZero();
  }

  /** Runs setfacl: {@code -b} removes every entry, else {@code -m ENTRY}. */
  private static void setfacl(String entry, Path p) throws Exception {
    Process proc =
        new ProcessBuilder(
                entry.equals("-b")
                    ? List.of("setfacl", "-b", p.toString())
                    : List.of("setfacl", "-m", entry, p.toString()))
            .inheritIO()
            .start();
    assertThat(proc.waitFor()).as("setfacl " + entry + " " + p).isZero();
  }
}
