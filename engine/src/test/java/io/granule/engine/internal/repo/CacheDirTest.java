package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The chunk index's temporary directory in a shared /tmp: another user made root's first, swapped
 * the index file in it for one of his and kept a copy of root's index. Only this user's own
 * directory is used, made and kept 0700.
 */
class CacheDirTest {
  @TempDir Path tmp;

  @Test
  void onlyThisUsersOwnRealDirectoryIsUsedAndItIsKeptPrivate() throws Exception {
    Path made = Repository.privateDir(tmp.resolve("granule-cache-a"));
    assertThat(made).isDirectory();
    assertThat(Files.getPosixFilePermissions(made))
        .isEqualTo(PosixFilePermissions.fromString("rwx------"));

    Path old = Files.createDirectory(tmp.resolve("granule-cache-b"));
    Files.setPosixFilePermissions(old, PosixFilePermissions.fromString("rwxr-xr-x"));
    assertThat(Repository.privateDir(old)).isEqualTo(old);
    assertThat(Files.getPosixFilePermissions(old))
        .isEqualTo(PosixFilePermissions.fromString("rwx------"));

    Path link = Files.createSymbolicLink(tmp.resolve("granule-cache-c"), made);
    assertThat(Repository.privateDir(link)).isNull();

    if ("root".equals(System.getProperty("user.name"))) {
      Path his = Files.createDirectory(tmp.resolve("granule-cache-d"));
      Files.setAttribute(his, "unix:uid", 1001);
      assertThat(Repository.privateDir(his)).isNull();
    }
  }
}
