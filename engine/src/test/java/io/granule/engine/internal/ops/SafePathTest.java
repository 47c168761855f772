package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A restore target resolved once, component by component, links of other users refused. */
class SafePathTest {
  @TempDir Path tmp;

  @Test
  void existingAndMissingTargetsAreTheirDirectoryHeldAndWhatIsLeft() throws Exception {
    Path a = Files.createDirectories(tmp.resolve("a"));
    Files.writeString(a.resolve("f"), "x");
    try (SafePath.Location l = SafePath.locate(a.resolve("f"))) {
      assertThat(l.dir().held()).as("libgranule-native is loaded in tests").isTrue();
      assertThat(l.real()).isEqualTo(a.toRealPath().resolve("f"));
      assertThat(l.rest()).isEqualTo("f");
      assertThat(l.exists()).isTrue();
      assertThat(l.isDirectory()).isFalse();
    }
    try (SafePath.Location l = SafePath.locate(a.resolve("x/y/f"))) {
      assertThat(l.dir().self().toRealPath()).isEqualTo(a.toRealPath());
      assertThat(l.rest()).isEqualTo("x/y/f");
      assertThat(l.exists()).isFalse();
    }
    try (SafePath.Location l = SafePath.locate(a)) {
      assertThat(l.real()).isEqualTo(a.toRealPath());
      assertThat(l.isDirectory()).isTrue();
    }
    try (SafePath.Location l = SafePath.locate(a.resolve("../a/./f"))) {
      assertThat(l.real()).isEqualTo(a.toRealPath().resolve("f"));
    }
  }

  @Test
  void ownLinksAreFollowedAndLoopsRefused() throws Exception {
    Path a = Files.createDirectories(tmp.resolve("a"));
    Files.writeString(a.resolve("f"), "x");
    Files.createSymbolicLink(tmp.resolve("dirlink"), Path.of("a"));
    Files.createSymbolicLink(tmp.resolve("filelink"), a.resolve("f"));
    try (SafePath.Location l = SafePath.locate(tmp.resolve("dirlink/f"))) {
      assertThat(l.real()).isEqualTo(a.toRealPath().resolve("f"));
    }
    try (SafePath.Location l = SafePath.locate(tmp.resolve("filelink"))) {
      assertThat(l.real()).isEqualTo(a.toRealPath().resolve("f"));
      assertThat(l.exists()).isTrue();
    }
    Files.createSymbolicLink(tmp.resolve("loop1"), Path.of("loop2"));
    Files.createSymbolicLink(tmp.resolve("loop2"), Path.of("loop1"));
    assertThatThrownBy(() -> SafePath.locate(tmp.resolve("loop1/f")))
        .isInstanceOf(FileSystemException.class)
        .hasMessageContaining("too many symbolic links");
    assertThatThrownBy(() -> SafePath.locate(a.resolve("f/g")))
        .isInstanceOf(FileSystemException.class)
        .hasMessageContaining("a file where a directory is needed");
  }

  /**
   * A link of another user is refused wherever it is met: behind a link of root's too (the old
   * check followed root's link with toRealPath, and every link behind it unchecked).
   */
  @Test
  void aLinkOfAnotherUserIsRefusedEvenBehindRootsLink() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to make links of another user");
      throw new AssertionError("SafePathTest needs root under CI");
    }
    Path secret = Files.writeString(tmp.resolve("secret"), "root's");
    Path user = Files.createDirectories(tmp.resolve("home-of-user"));
    Path theirs = Files.createSymbolicLink(user.resolve("vm.img"), secret);
    lchown(theirs, "nobody");
    Path mine = Files.createSymbolicLink(tmp.resolve("srv-vm.img"), theirs);
    for (Path to : new Path[] {theirs, mine, user.resolve("vm.img")}) {
      assertThatThrownBy(() -> SafePath.locate(to))
          .isInstanceOf(FileSystemException.class)
          .hasMessageContaining("is a symbolic link owned by uid 65534, another user");
    }
    Path theirDir = Files.createSymbolicLink(tmp.resolve("dirlink"), user);
    lchown(theirDir, "nobody");
    assertThatThrownBy(() -> SafePath.locate(theirDir.resolve("new/file")))
        .isInstanceOf(FileSystemException.class)
        .hasMessageContaining("'dirlink' on the way");
  }

  /**
   * Root's own link in a directory another user owns (a root restore of that user's image made it
   * there with the image's owner, uid 0) is his to rename into place: it is refused, and so is a
   * root link in a directory others can write.
   */
  @Test
  void rootsLinkInADirectoryAnotherUserCanChangeIsRefused() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to make another user's directory");
      throw new AssertionError("SafePathTest needs root under CI");
    }
    Path etc = Files.createDirectories(tmp.resolve("etc"));
    Path home = Files.createDirectories(tmp.resolve("home-gu1"));
    Path link = Files.createSymbolicLink(home.resolve("out"), etc); // root's
    lchown(home, "nobody");
    assertThatThrownBy(() -> SafePath.locate(link.resolve("passwd")))
        .isInstanceOf(FileSystemException.class)
        .hasMessageContaining("'out' on the way")
        .hasMessageContaining("symbolic link in (or below) a directory of uid 65534");
    Path shared = Files.createDirectories(tmp.resolve("shared"));
    Files.setPosixFilePermissions(
        shared, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
    Path link2 = Files.createSymbolicLink(shared.resolve("out"), etc);
    assertThatThrownBy(() -> SafePath.locate(link2.resolve("passwd")))
        .isInstanceOf(FileSystemException.class)
        .hasMessageContaining("a directory others can write");
    // root's own directory of root's links, below the user's directory (he renamed it into
    // place): refused too
    lchown(home, "root");
    Path rootDir = Files.createDirectories(home.resolve("cfg"));
    Files.createSymbolicLink(rootDir.resolve("vm.img"), etc.resolve("passwd"));
    lchown(home, "nobody");
    assertThatThrownBy(() -> SafePath.locate(rootDir.resolve("vm.img")))
        .isInstanceOf(FileSystemException.class)
        .hasMessageContaining("'vm.img' on the way")
        .hasMessageContaining("(or below) a directory of uid 65534");
    try (SafePath.Location l = SafePath.locate(rootDir.resolve("new.img"))) {
      assertThat(l.exists()).as("no link on the way: a real directory is fine").isFalse();
    }
    // the same link in root's own directory is followed
    Path mine = Files.createSymbolicLink(tmp.resolve("out"), etc);
    try (SafePath.Location l = SafePath.locate(mine.resolve("passwd"))) {
      assertThat(l.dir().self().toRealPath()).isEqualTo(etc.toRealPath());
    }
  }

  private static void lchown(Path p, String user) throws Exception {
    Process pr = new ProcessBuilder("chown", "-h", user, p.toString()).inheritIO().start();
    assertThat(pr.waitFor()).isZero();
  }
}
