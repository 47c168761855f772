package io.granule.engine.internal.repo.lock;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A reader that cannot write its lock skips waiting for a prune only on a file system that is
 * read-only itself: through a read-only bind mount of a live repository it went on beside a prune
 * (run through another mount) and reported the packs it deleted as damage.
 */
class ReadOnlyMediumTest {
  @TempDir Path tmp;

  private boolean readOnly(Path dir, String... lines) throws Exception {
    Path mountinfo = Files.write(tmp.resolve("mountinfo"), java.util.List.of(lines));
    return LockManager.fileSystemReadOnly(dir, mountinfo);
  }

  @Test
  void onlyTheSuperblocksOptionsCount() throws Exception {
    Path repo = Files.createDirectories(tmp.resolve("with space").resolve("repo"));
    String point = repo.getParent().toRealPath().toString().replace(" ", "\\040");
    String root = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw";
    // a read-only bind mount of a file system mounted read-write elsewhere
    assertThat(
            readOnly(repo, root, "40 22 254:0 /srv " + point + " ro,relatime - ext4 /dev/vda1 rw"))
        .isFalse();
    // a file system that is read-only itself (a snapshot, a read-only device)
    assertThat(readOnly(repo, root, "41 22 7:0 / " + point + " ro,relatime - ext4 /dev/loop0 ro"))
        .isTrue();
    // the last mount on the deepest point is the one in effect
    assertThat(
            readOnly(
                repo,
                root,
                "41 22 7:0 / " + point + " ro - ext4 /dev/loop0 ro",
                "42 22 254:0 /srv " + point + " ro - ext4 /dev/vda1 rw"))
        .isFalse();
    assertThat(readOnly(repo, root)).isFalse();
    // a read-only overlay, NFS or FUSE mount may show a repository written elsewhere
    for (String type : java.util.List.of("overlay overlay", "nfs4 srv:/repo", "fuse.sshfs h:/r")) {
      assertThat(readOnly(repo, root, "43 22 0:77 / " + point + " ro - " + type + " ro"))
          .as(type)
          .isFalse();
    }
    // nothing to tell by: as before
    assertThat(LockManager.fileSystemReadOnly(repo, tmp.resolve("missing"))).isTrue();
  }
}
