package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A data directory someone else can write (or a directory above it, or a link on the way) is
 * refused before anything is read from it: a root command run in a directory another user owned
 * started that user's plugin from ./granule-data/plugins.
 */
class DataDirectoryTest {
  @TempDir Path tmp;

  private static final long ME = LaunchOptions.uid();

  private static void chown(Path p, int uid) throws Exception {
    Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
  }

  private static void chmod(Path p, String mode) throws Exception {
    Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(mode));
  }

  @Test
  void theDefaultIsNeverTheWorkingDirectory() {
    assertThat(DataDirectory.defaultFor(Map.of(), 0, "/root"))
        .isEqualTo(Path.of("/var/lib/granule"));
    assertThat(DataDirectory.defaultFor(Map.of(), 1000, "/home/a"))
        .isEqualTo(Path.of("/home/a/.local/share/granule"));
    assertThat(DataDirectory.defaultFor(Map.of("XDG_DATA_HOME", "/d"), 1000, "/home/a"))
        .isEqualTo(Path.of("/d/granule"));
    assertThat(DataDirectory.defaultFor(Map.of("XDG_DATA_HOME", "rel"), 1000, "/home/a"))
        .as("a relative XDG_DATA_HOME is ignored, as the spec says")
        .isEqualTo(Path.of("/home/a/.local/share/granule"));
    assertThat(LaunchOptions.parse(new String[] {"--version"}, Map.of()).dataDir()).isAbsolute();
  }

  @Test
  void ownDirectoriesAndMissingOnesAreFine() throws Exception {
    chmod(tmp, "rwx------");
    Path data = Files.createDirectories(tmp.resolve("data/plugins"));
    chmod(tmp.resolve("data"), "rwxr-xr-x");
    chmod(data, "rwxr-xr-x");
    Files.writeString(data.resolve("p.jar"), "jar");
    chmod(data.resolve("p.jar"), "rw-r--r--");
    assertThatCode(() -> DataDirectory.check(tmp.resolve("data"), ME)).doesNotThrowAnyException();
    assertThatCode(() -> DataDirectory.check(tmp.resolve("none/data"), ME))
        .doesNotThrowAnyException();
    // a missing one is made then, 0700, and checked (made later, another user could make it first
    // under a sticky directory)
    assertThat(tmp.resolve("none/data")).isDirectory();
    assertThat(Files.getPosixFilePermissions(tmp.resolve("none/data")))
        .isEqualTo(PosixFilePermissions.fromString("rwx------"));
    // through a link of this user's
    Files.createSymbolicLink(tmp.resolve("link"), tmp.resolve("data"));
    assertThatCode(() -> DataDirectory.check(tmp.resolve("link"), ME)).doesNotThrowAnyException();
  }

  @Test
  void writableByOthersIsRefused() throws Exception {
    chmod(tmp, "rwx------");
    Path data = Files.createDirectories(tmp.resolve("data"));
    chmod(data, "rwxrwxrwx");
    assertThatThrownBy(() -> DataDirectory.check(data, ME))
        .isInstanceOf(LaunchException.class)
        .hasMessageContaining("refusing the data directory " + data)
        .hasMessageContaining("can be written by every user");
    chmod(data, "rwxr-xr-x");
    Path plugins = Files.createDirectories(data.resolve("plugins"));
    chmod(plugins, "rwxrwxr-x");
    int gid = (Integer) Files.getAttribute(plugins, "unix:gid");
    if (ME == 0) {
      // a group with other members (daemon: its passwd entry has it as primary group)
      Files.setAttribute(plugins, "unix:gid", 1);
      assertThat(DataDirectory.othersIn(1, ME)).isTrue();
      assertThatThrownBy(() -> DataDirectory.check(data, ME))
          .hasMessageContaining(plugins + " can be written by its group");
      Files.setAttribute(plugins, "unix:gid", gid);
    }
    if (DataDirectory.othersIn(gid, ME)) {
      assertThatThrownBy(() -> DataDirectory.check(data, ME))
          .hasMessageContaining(plugins + " can be written by its group");
    } else {
      // a group of this user's alone (a private group, umask 002) is his own (audit K5)
      assertThatCode(() -> DataDirectory.check(data, ME)).doesNotThrowAnyException();
    }
    chmod(plugins, "rwxr-xr-x");
    Path jar = Files.writeString(plugins.resolve("x.jar"), "x");
    chmod(jar, "rw-rw-rw-");
    assertThatThrownBy(() -> DataDirectory.check(data, ME)).hasMessageContaining(jar.toString());
    chmod(jar, "rw-r--r--");
    assertThatCode(() -> DataDirectory.check(data, ME)).doesNotThrowAnyException();
    // a world-writable directory above is fine only if sticky (/tmp)
    Path open = Files.createDirectories(tmp.resolve("open"));
    Path under = Files.createDirectories(open.resolve("data"));
    chmod(under, "rwx------");
    chmod(open, "rwxrwxrwx");
    assertThatThrownBy(() -> DataDirectory.check(under, ME))
        .hasMessageContaining(open + " can be written by every user");
    Files.setAttribute(open, "unix:mode", 01777);
    assertThatCode(() -> DataDirectory.check(under, ME)).doesNotThrowAnyException();
  }

  @Test
  void anotherUsersDirectoryLinkOrPluginIsRefused() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        ME == 0 || "true".equals(System.getenv("CI")), "needs root to make another user's files");
    chmod(tmp, "rwxr-xr-x");
    Path theirs = Files.createDirectories(tmp.resolve("home-gu1"));
    Path data = Files.createDirectories(theirs.resolve("granule-data/plugins"));
    chown(theirs, 1001);
    assertThatThrownBy(() -> DataDirectory.check(theirs.resolve("granule-data"), 0))
        .isInstanceOf(LaunchException.class)
        .hasMessageContaining(theirs + " is owned by uid 1001, not by you or root");
    chown(theirs, 0);
    Path jar = Files.writeString(data.resolve("evil.jar"), "x");
    chown(jar, 1001);
    assertThatThrownBy(() -> DataDirectory.check(theirs.resolve("granule-data"), 0))
        .hasMessageContaining(jar + " is owned by uid 1001");
    Files.delete(jar);
    Path link = Files.createSymbolicLink(tmp.resolve("data-link"), theirs.resolve("granule-data"));
    chown(link, 1001);
    assertThatThrownBy(() -> DataDirectory.check(link, 0))
        .hasMessageContaining(link + " is a symbolic link owned by uid 1001");
    // a user's own data directory is theirs, not root's: root does not run its plugins
    chown(theirs.resolve("granule-data"), 1001);
    assertThatThrownBy(() -> DataDirectory.check(theirs.resolve("granule-data"), 0))
        .hasMessageContaining("owned by uid 1001");
    assertThatCode(() -> DataDirectory.check(theirs.resolve("granule-data"), 1001))
        .as("the same directory is fine for its owner")
        .doesNotThrowAnyException();
  }

  /**
   * The runtime's own bundles are installed from the user's cache: one another user can write (a
   * root XDG_CACHE_HOME under his directory, kept by sudo -E) ran his jar as root. It is checked as
   * the data directory is.
   */
  @Test
  void theBundleCacheIsCheckedAsTheDataDirectoryIs() throws Exception {
    chmod(tmp, "rwx------");
    Path cache = Files.createDirectories(tmp.resolve("cache/granule/runtime-1"));
    Files.writeString(cache.resolve("engine.jar"), "jar");
    chmod(cache.resolve("engine.jar"), "rw-r--r--");
    assertThatCode(() -> DataDirectory.checkCode(cache, ME)).doesNotThrowAnyException();

    Files.writeString(cache.resolve("aaa-evil.jar"), "jar");
    chmod(cache.resolve("aaa-evil.jar"), "rw-rw-r--");
    int gid = (Integer) Files.getAttribute(cache.resolve("aaa-evil.jar"), "unix:gid");
    if (ME == 0) {
      Files.setAttribute(cache.resolve("aaa-evil.jar"), "unix:gid", 1); // a group with others
    } else {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          DataDirectory.othersIn(gid, ME), "needs root, or a group with other members");
    }
    assertThatThrownBy(() -> DataDirectory.checkCode(cache, ME))
        .isInstanceOf(LaunchException.class)
        .hasMessageContaining("refusing the runtime's bundle cache")
        .hasMessageContaining("aaa-evil.jar can be written by its group")
        .hasMessageContaining("XDG_CACHE_HOME");
    Files.delete(cache.resolve("aaa-evil.jar"));

    chmod(tmp.resolve("cache"), "rwxrwxrwx");
    assertThatThrownBy(() -> DataDirectory.checkCode(cache, ME))
        .hasMessageContaining(tmp.resolve("cache") + " can be written by every user");
    // and before anything is extracted or cleaned up in it
    assertThatThrownBy(() -> DataDirectory.prepareCache(tmp.resolve("cache/granule"), ME))
        .hasMessageContaining(tmp.resolve("cache") + " can be written by every user");
    chmod(tmp.resolve("cache"), "rwx------");
    DataDirectory.prepareCache(tmp.resolve("cache/new/granule"), ME);
    assertThat(Files.getPosixFilePermissions(tmp.resolve("cache/new/granule")))
        .isEqualTo(PosixFilePermissions.fromString("rwx------"));
  }

  /**
   * Only a user's own group is his: group 0 for root, his user private group for another user
   * (primary, named after him, no other member). A group /etc/group lists without members is not:
   * its members may come from elsewhere (PAM, systemd-userdb, sssd; audit L4).
   */
  @Test
  void onlyAUsersOwnGroupHasNoOthers() throws Exception {
    assertThat(DataDirectory.othersIn(0, 0)).as("root's group 0").isFalse();
    assertThat(DataDirectory.othersIn(1, 0)).as("daemon: a primary group of others").isTrue();
    java.util.List<String> group = Files.readAllLines(Path.of("/etc/group"));
    java.util.List<String> passwd = Files.readAllLines(Path.of("/etc/passwd"));
    // a group listed with no member, nobody's primary group (staff on Debian)
    for (String g : group) {
      String[] f = g.split(":", -1);
      int gid = Integer.parseInt(f[2]);
      boolean primary = passwd.stream().anyMatch(l -> l.split(":", -1)[3].equals(f[2]));
      if (gid != 0 && f[3].isEmpty() && !primary) {
        assertThat(DataDirectory.othersIn(gid, 0))
            .as("group %s, listed without members", f[0])
            .isTrue();
        break;
      }
    }
    // a user's private group (named after him, his primary group, no other member)
    for (String u : passwd) {
      String[] f = u.split(":", -1);
      int uid = Integer.parseInt(f[2]);
      int gid = Integer.parseInt(f[3]);
      boolean upg =
          uid != 0
              && group.stream()
                  .map(l -> l.split(":", -1))
                  .anyMatch(g -> g[2].equals(f[3]) && g[0].equals(f[0]) && g[3].isEmpty())
              && passwd.stream()
                  .filter(l -> !l.equals(u))
                  .noneMatch(l -> l.split(":", -1)[3].equals(f[3]));
      if (upg) {
        assertThat(DataDirectory.othersIn(gid, uid)).as("%s's private group", f[0]).isFalse();
        assertThat(DataDirectory.othersIn(gid, 0)).as("%s's group, for root", f[0]).isTrue();
        break;
      }
    }
  }

  /**
   * A directory only its (own) group can write is accepted, but not where an access ACL lets
   * another user write it too: the mode's group bits are then the ACL's mask (audit L5).
   */
  @Test
  void anAclEntryThatLetsAnotherUserWriteIsNoPrivateGroup(@TempDir Path tmp) throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(ME == 0, "root's group 0 is root's own");
    chmod(tmp, "rwx------");
    Path data = Files.createDirectories(tmp.resolve("data"));
    Files.setAttribute(data, "unix:gid", 0);
    chmod(data, "rwxrwxr-x");
    assertThatCode(() -> DataDirectory.check(data, ME)).doesNotThrowAnyException();
    assertThat(DataDirectory.aclLetsOthersWrite(data)).isFalse();
    Process p = new ProcessBuilder("setfacl", "-m", "u:1001:rwx", data.toString()).start();
    assertThat(p.waitFor()).isZero();
    assertThat(DataDirectory.aclLetsOthersWrite(data)).isTrue();
    assertThatThrownBy(() -> DataDirectory.check(data, ME))
        .isInstanceOf(LaunchException.class)
        .hasMessageContaining("can be written by another user or group, through an access ACL");
    p = new ProcessBuilder("setfacl", "-b", data.toString()).start();
    assertThat(p.waitFor()).isZero();
    chmod(data, "rwxrwxr-x");
    assertThatCode(() -> DataDirectory.check(data, ME)).doesNotThrowAnyException();
  }

  /** The own-group rule on given files (a group file of each kind this machine may not have). */
  @Test
  void theOwnGroupRuleOnGivenFiles(@TempDir Path dir) throws Exception {
    Path passwd =
        Files.writeString(
            dir.resolve("passwd"),
            "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                + "bob:x:1001:100::/home/bob:/bin/sh\ncarol:x:1002:100::/home/carol:/bin/sh\n");
    Path group =
        Files.writeString(
            dir.resolve("group"), "root:x:0:\nusers:x:100:\nalice:x:1000:\nstaff:x:50:\n");
    assertThat(DataDirectory.othersIn(0, 0, passwd, group)).as("Debian's root").isFalse();
    assertThat(DataDirectory.othersIn(1000, 1000, passwd, group))
        .as("alice's private group")
        .isFalse();
    assertThat(DataDirectory.othersIn(1000, 0, passwd, group))
        .as("alice's group, for root")
        .isTrue();
    assertThat(DataDirectory.othersIn(50, 0, passwd, group)).as("listed without members").isTrue();
    assertThat(DataDirectory.othersIn(100, 1001, passwd, group))
        .as("bob's primary, carol's too")
        .isTrue();
    assertThat(DataDirectory.othersIn(7, 0, passwd, group)).as("not listed").isTrue();
    // root:x:0:gu1 (audit M: a member of root's group rewrote the config; plaintext)
    Files.writeString(group, "root:x:0:alice\nalice:x:1000:\n");
    assertThat(DataDirectory.othersIn(0, 0, passwd, group)).isTrue();
    // RHEL: system users with primary group 0
    Files.writeString(group, "root:x:0:\n");
    Files.writeString(passwd, "root:x:0:0::/root:/bin/bash\nsync:x:5:0::/sbin:/bin/sync\n");
    assertThat(DataDirectory.othersIn(0, 0, passwd, group)).isTrue();
    // a group named otherwise than its user (not a private group)
    Files.writeString(passwd, "alice:x:1000:1000::/home/alice:/bin/sh\n");
    Files.writeString(group, "devs:x:1000:\n");
    assertThat(DataDirectory.othersIn(1000, 1000, passwd, group)).isTrue();
  }
}
