package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A restored symbolic link is given its owner through a descriptor of the link itself, and only if
 * it is still a link to the snapshot's target: a file someone renamed over it meanwhile (in a
 * directory they can write) was chowned by name to the snapshot's owner.
 */
class DirectoryHandleTest {
  @TempDir Path tmp;

  private static int uid(Path p) throws Exception {
    return (Integer) Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS);
  }

  @Test
  void aLinkGetsItsOwnerOnlyWhileItIsTheLinkMade() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")) || "true".equals(System.getenv("CI")),
        "needs root to give a link another owner");
    try (DirectoryHandle dir = DirectoryHandle.open(tmp, tmp, null)) {
      assertThat(dir.held()).as("libgranule-native loaded").isTrue();
      Files.createSymbolicLink(dir.entry("ok"), Path.of("../etc/ünïcode"));
      try (DirectoryHandle.NewFile made = dir.pin("ok")) {
        made.chownLink("../etc/ünïcode", 4321, 4322);
      }
      assertThat(uid(tmp.resolve("ok"))).isEqualTo(4321);
      assertThat(Files.getAttribute(tmp.resolve("ok"), "unix:gid", LinkOption.NOFOLLOW_LINKS))
          .isEqualTo(4322);

      // a file renamed over the link: not chowned
      Files.writeString(tmp.resolve("file"), "theirs");
      try (DirectoryHandle.NewFile made = dir.pin("file")) {
        assertThatThrownBy(() -> made.chownLink("../etc", 0, 0))
            .isInstanceOf(FileSystemException.class)
            .hasMessageContaining("was replaced while the restore made it");
      }
      // another link, to another target: not chowned either
      Files.createSymbolicLink(tmp.resolve("other"), Path.of("/etc/shadow"));
      Files.setAttribute(tmp.resolve("other"), "unix:uid", 1001, LinkOption.NOFOLLOW_LINKS);
      try (DirectoryHandle.NewFile made = dir.pin("other")) {
        assertThatThrownBy(() -> made.chownLink("/etc/sha", 0, 0))
            .isInstanceOf(FileSystemException.class)
            .hasMessageContaining("was replaced");
        assertThatThrownBy(() -> made.chownLink("/etc/shadow.", 0, 0))
            .isInstanceOf(FileSystemException.class)
            .hasMessageContaining("was replaced");
      }
      assertThat(uid(tmp.resolve("other"))).isEqualTo(1001);
      assertThat(uid(tmp.resolve("file"))).isZero(); // root's, as made, and untouched
      assertThat(Files.readString(tmp.resolve("file"))).isEqualTo("theirs");
    }
  }
}
