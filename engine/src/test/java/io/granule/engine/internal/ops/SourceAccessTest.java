package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.SourceUnreadableException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A root backup of a user's image stored what the image's header or the user's link named (root's
 * files), and handed it to whoever restores the snapshot: it now reads only what the image's owner
 * could read.
 */
class SourceAccessTest {
  @TempDir Path tmp;

  @BeforeEach
  void root() {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")) || "true".equals(System.getenv("CI")),
        "needs root to make files of another user");
  }

  private static void chown(Path p, int uid) throws Exception {
    Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
  }

  private static void chmod(Path p, String mode) throws Exception {
    Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(mode));
  }

  @Test
  void filesAnImageReadsMustBeReadableByItsOwner() throws Exception {
    chmod(tmp, "rwxr-xr-x");
    Path home = Files.createDirectories(tmp.resolve("home"));
    Path image = Files.writeString(home.resolve("vm.qcow2"), "top");
    chown(image, 65534);
    Path rootOnly = Files.createDirectories(tmp.resolve("root"));
    chmod(rootOnly, "rwx------");
    Path secret = Files.writeString(rootOnly.resolve("secret"), "root's");
    chmod(secret, "rw-r--r--");
    assertThatThrownBy(() -> SourceAccess.checkFiles(image, List.of(image, secret)))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("'" + secret + "', a file '" + image + "' reads")
        .hasMessageContaining("which cannot be searched by uid 65534");
    Path shadow = Files.writeString(tmp.resolve("shadow"), "x");
    chmod(shadow, "rw-------");
    assertThatThrownBy(() -> SourceAccess.checkFiles(image, List.of(image, shadow)))
        .hasMessageContaining("cannot be read by uid 65534");
    // a template anyone may read, and the owner's own file: fine
    Path template = Files.writeString(tmp.resolve("base.raw"), "base");
    chmod(template, "rw-r--r--");
    Path own = Files.writeString(home.resolve("mid.qcow2"), "mid");
    chmod(own, "rw-------");
    chown(own, 65534);
    assertThatCode(() -> SourceAccess.checkFiles(image, List.of(image, own, template)))
        .doesNotThrowAnyException();
    // root's own image: root's to read
    chown(image, 0);
    assertThatCode(() -> SourceAccess.checkFiles(image, List.of(image, secret, shadow)))
        .doesNotThrowAnyException();
  }

  @Test
  void aDiskThroughAnotherUsersLinkIsRefused() throws Exception {
    chmod(tmp, "rwxr-xr-x");
    Path secret = Files.writeString(tmp.resolve("secret.img"), "root's");
    Path home = Files.createDirectories(tmp.resolve("home"));
    Path link = Files.createSymbolicLink(home.resolve("vm.img"), secret);
    chown(link, 65534);
    assertThatThrownBy(() -> SourceAccess.checkPath(link))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("backup source '" + link + "' refused")
        .hasMessageContaining("owned by uid 65534");
    chown(link, 0);
    chown(home, 65534);
    assertThatThrownBy(() -> SourceAccess.checkPath(link))
        .hasMessageContaining("below) a directory of uid 65534");
    chown(home, 0);
    assertThatCode(() -> SourceAccess.checkPath(link)).doesNotThrowAnyException();
    assertThatCode(() -> SourceAccess.checkPath(tmp.resolve("missing.img")))
        .doesNotThrowAnyException();
  }
}
