package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * audit11 netkeys F3: the pin of a repository's place was kept by its real path only, and a bind
 * mount of the same directory is another real path. Someone who can write the storage rewrites an
 * encrypted repository's config as unencrypted (a new id, keys/ deleted); the owner, typing no
 * password, reached it through the bind mount and it opened as unencrypted (the next backup in
 * plaintext). The directory's device and inode numbers are pinned too: refused, exit code 5.
 */
class BindMountPinTest {
  @TempDir Path tmp;
  Path mnt;

  @AfterEach
  void unmount() throws Exception {
    if (mnt != null) {
      new ProcessBuilder("umount", "-l", mnt.toString()).start().waitFor(30, TimeUnit.SECONDS);
    }
  }

  private static void needRoot() {
    boolean root = "root".equals(System.getProperty("user.name"));
    if (!root && "true".equals(System.getenv("CI"))) {
      throw new AssertionError("BindMountPinTest makes a bind mount and needs root, which CI has");
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(root, "a bind mount needs root");
  }

  /**
   * The storage writer's downgrade: the config of an unencrypted repository (another id) copied
   * over {@code repo}'s, its keys/ emptied; the unencrypted repository's directory is returned.
   */
  private Path downgrade(Path repo) throws Exception {
    Path plain = tmp.resolve("plain");
    Granule.Result r =
        Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", plain.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    Files.copy(
        plain.resolve("config"), repo.resolve("config"), StandardCopyOption.REPLACE_EXISTING);
    try (Stream<Path> keys = Files.list(repo.resolve("keys"))) {
      for (Path k : keys.toList()) {
        Files.delete(k);
      }
    }
    return plain;
  }

  /** The user's environment: his own cache, where his pins are. */
  private Map<String, String> user() {
    Map<String, String> env = new HashMap<>();
    env.put("XDG_CACHE_HOME", tmp.resolve("cache").toString());
    return env;
  }

  /**
   * {@code snapshots --repo named} run as the interactive user (no password given, as {@code env}
   * says otherwise): refused as a downgrade, exit code 5.
   */
  private Granule.Result refusedAsDowngrade(Map<String, String> env, Path named) throws Exception {
    Map<String, String> interactive = new HashMap<>(env);
    interactive.put("GRANULE_PASSWORD", null);
    Granule.Result r =
        Granule.run(
            tmp, interactive, Path.of("/dev/null"), "snapshots", "--repo", named.toString());
    assertThat(r.exitCode()).as(named + ": " + r.out() + r.err()).isEqualTo(5);
    assertThat(r.err()).contains("was changed to unencrypted");
    return r;
  }

  @Test
  void aDowngradedRepositoryIsRefusedThroughABindMountOfItsDirectory() throws Exception {
    needRoot();
    Map<String, String> env = user();
    Path repo = tmp.resolve("repo");
    Granule.Result r = Granule.run(tmp, env, "init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    r = Granule.run(tmp, env, "snapshots", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();

    Path plain = downgrade(repo);
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    FreezeTest.sh("mount", "--bind", repo.toString(), mnt.toString());

    for (Path named : new Path[] {repo, mnt}) {
      r = refusedAsDowngrade(env, named);
      assertThat(r.err()).contains("opened it encrypted");
    }
    assertThat(r.err()).contains("as '" + repo.toRealPath() + "' (the same directory");
    env.put("GRANULE_PASSWORD", null);
    r = Granule.run(tmp, env, Path.of("/dev/null"), "snapshots", "--repo", plain.toString());
    assertThat(r.exitCode()).as("an unencrypted repository of its own opens: " + r.err()).isZero();
  }

  /**
   * audit13 core M1: the repository was opened encrypted only through a bind mount, since removed;
   * then downgraded. Through its real path, neither the pin of the place (the bind mount's path)
   * nor the one by id (a new id) is found: the pin by the directory's device and inode numbers and
   * birth time is, wherever it was written from.
   */
  @Test
  void aRepositoryOpenedOnlyThroughARemovedBindMountIsRefusedThroughItsRealPath() throws Exception {
    needRoot();
    Map<String, String> env = user();
    Path repo = tmp.resolve("repo");
    Path other = tmp.resolve("other-cache"); // init as another machine would: no pins here
    Granule.Result r =
        Granule.run(
            tmp, Map.of("XDG_CACHE_HOME", other.toString()), "init", "--repo", repo.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    FreezeTest.sh("mount", "--bind", repo.toString(), mnt.toString());
    r = Granule.run(tmp, env, "snapshots", "--repo", mnt.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    FreezeTest.sh("umount", mnt.toString());
    mnt = null;
    downgrade(repo);
    assertThat(refusedAsDowngrade(env, repo).err())
        .contains("as '" + tmp.toRealPath().resolve("mnt") + "' (the same directory");
  }

  /**
   * audit14 C3: the repository directory was made anew by someone who can write the directory above
   * it (another inode and birth time, an unencrypted repository of another id), and its file system
   * mounted at another path: no pin by id, real path or directory identity matched, and the next
   * backup stored plaintext. The place inside the file system (its id, from the ext4 UUID, and the
   * path from its root) is pinned too: refused, exit code 5.
   */
  @Test
  void aRepositoryMadeAnewOnItsFileSystemMountedElsewhereIsRefused() throws Exception {
    needRoot();
    Path img = tmp.resolve("fs.img");
    try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
      f.setLength(64L << 20);
    }
    FreezeTest.sh("mkfs.ext4", "-q", "-F", img.toString());
    Path first = Files.createDirectories(tmp.resolve("mnt-a"));
    FreezeTest.sh("mount", "-o", "loop", img.toString(), first.toString());
    mnt = first;
    Map<String, String> env = user();
    Granule.Result r = Granule.run(tmp, env, "init", "--repo", first.resolve("repo").toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    FreezeTest.sh("umount", first.toString());
    Path second = Files.createDirectories(tmp.resolve("mnt-b"));
    FreezeTest.sh("mount", "-o", "loop", img.toString(), second.toString());
    mnt = second;
    // the storage writer: the directory moved away, a new one with an unencrypted repository
    Files.move(second.resolve("repo"), second.resolve("old"));
    r =
        Granule.run(
            tmp,
            Map.of("XDG_CACHE_HOME", tmp.resolve("his-cache").toString()),
            "init",
            "--insecure-no-encryption",
            "--repo",
            second.resolve("repo").toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    refusedAsDowngrade(env, second.resolve("repo"));
  }
}
