package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.ops.FileCredentials;
import io.granule.engine.spi.ChangeTracking;
import io.granule.engine.spi.DiskImage;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Audit finding F-B: a root backup with {@code --cbt} opened a user's qcow2 as the user, then read
 * its bitmaps by name as root and ran {@code qemu-img bitmap} as root on the name. The user swapped
 * the name for a link to root's image: root's bitmap names showed up in the notes, and root's
 * qemu-img added a bitmap to root's 0600 image. Bitmaps are now read through the file that was
 * opened, qemu-img runs as the identity that opened it, and a name that no longer leads to that
 * file is refused.
 */
class Qcow2BitmapsOpenerTest {
  static final int GU1 = 1001;

  @TempDir Path tmp;
  Path home;
  Path userImage;
  Path rootImage;

  @BeforeEach
  void setUp() throws Exception {
    Qemu.assumeAvailable();
    Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")), "needs root to make files of another user");
    Assumptions.assumeTrue(
        FileCredentials.unavailableReason() == null, FileCredentials.unavailableReason());
    Assumptions.assumeTrue(
        Files.readAllLines(Path.of("/etc/passwd")).stream().anyMatch(l -> l.contains(":1001:")),
        "needs a user of uid 1001");
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path rootOnly = Files.createDirectories(tmp.resolve("root"));
    Files.setPosixFilePermissions(rootOnly, PosixFilePermissions.fromString("rwx------"));
    rootImage = rootOnly.resolve("rootvm.qcow2");
    Qemu.img("create", "-q", "-f", "qcow2", rootImage.toString(), "16M");
    Qemu.img("bitmap", "--add", rootImage.toString(), "ROOTS-PRIVATE-BITMAP-NAME");
    Files.setPosixFilePermissions(rootImage, PosixFilePermissions.fromString("rw-------"));
    home = Files.createDirectories(tmp.resolve("home"));
    chown(home, GU1);
    userImage = home.resolve("vm.qcow2");
    Qemu.img("create", "-q", "-f", "qcow2", userImage.toString(), "16M");
    Qemu.img("bitmap", "--add", userImage.toString(), "his");
    chown(userImage, GU1);
  }

  private static void chown(Path p, int uid) throws Exception {
    Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
    Files.setAttribute(p, "unix:gid", uid, LinkOption.NOFOLLOW_LINKS);
  }

  /** Opens the user's image as he would be (as the engine's SourceAccess does). */
  DiskImage openAsHim() throws Exception {
    return FileCredentials.call(
        new FileCredentials.Identity(GU1, GU1, new int[] {GU1}),
        () -> new Qcow2Format().open(userImage));
  }

  /** He swaps his image's name for a link to root's image (his directory: his to change). */
  void swapToRootsImage() throws Exception {
    Path link = Files.createSymbolicLink(home.resolve("lnk"), rootImage);
    chown(link, GU1);
    Files.move(
        link, userImage, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  List<String> rootsBitmaps() throws Exception {
    try (DiskImage d = new Qcow2Format().open(rootImage)) {
      return d.changeTracking().bitmaps().stream().map(ChangeTracking.Bitmap::name).toList();
    }
  }

  @Test
  void bitmapsAreReadFromTheOpenedFileNotFromWhereTheNameLeadsLater() throws Exception {
    try (DiskImage d = openAsHim()) {
      swapToRootsImage();
      ChangeTracking ct = d.changeTracking();
      assertThat(ct.bitmaps()).extracting(ChangeTracking.Bitmap::name).containsExactly("his");
      assertThat(ct.changed("his")).isEmpty();
      assertThatThrownBy(() -> ct.changed("ROOTS-PRIVATE-BITMAP-NAME"))
          .hasMessageContaining("has no bitmap");
    }
  }

  @Test
  void qemuImgRefusesANameThatNoLongerLeadsToTheOpenedFile() throws Exception {
    try (DiskImage d = openAsHim()) {
      swapToRootsImage();
      assertThatThrownBy(() -> d.changeTracking().create("granule-0123456789abcdef"))
          .hasMessageContaining("disk image '" + userImage + "' is no longer the file that was")
          .hasMessageContaining("refusing to run it");
      assertThatThrownBy(() -> d.changeTracking().remove("his"))
          .hasMessageContaining("is no longer the file that was");
    }
    assertThat(rootsBitmaps()).containsExactly("ROOTS-PRIVATE-BITMAP-NAME");
    assertThat(Files.getPosixFilePermissions(rootImage))
        .isEqualTo(PosixFilePermissions.fromString("rw-------"));
  }

  @Test
  void qemuImgRunsAsTheIdentityThatOpenedTheImage() throws Exception {
    try (DiskImage d = openAsHim()) {
      ChangeTracking ct = d.changeTracking();
      ct.create("granule-1");
      assertThat(ct.bitmaps())
          .extracting(ChangeTracking.Bitmap::name)
          .containsExactly("his", "granule-1");
      ct.remove("granule-1");
      assertThat(ct.bitmaps()).extracting(ChangeTracking.Bitmap::name).containsExactly("his");
      // he may read his image but not write it: neither may qemu-img (root's would)
      Files.setPosixFilePermissions(userImage, PosixFilePermissions.fromString("r--r--r--"));
      // told apart from other failures: the engine then leaves this disk untracked
      assertThatThrownBy(() -> ct.create("granule-2"))
          .isInstanceOf(java.nio.file.AccessDeniedException.class)
          .hasMessageContaining("uid 1001, the identity it was opened with, cannot write it");
      assertThat(ct.bitmaps()).extracting(ChangeTracking.Bitmap::name).containsExactly("his");
    }
  }

  @Test
  void theOpenersIdentityIsTheThreadsFileSystemIdentity() throws Exception {
    Qcow2Bitmaps.Opener him =
        FileCredentials.call(
            new FileCredentials.Identity(GU1, 1002, new int[] {GU1, 1002}),
            Qcow2Bitmaps.Opener::ofThisThread);
    assertThat(him.switched()).isTrue();
    assertThat(him.uid()).isEqualTo(GU1);
    assertThat(him.gid()).isEqualTo(1002);
    assertThat(him.groups()).containsExactlyInAnyOrder(GU1, 1002);
    assertThat(him.prefix())
        .containsExactly(
            "setpriv",
            "--reuid=1001",
            "--regid=1002",
            "--groups=1001,1002",
            "--no-new-privs",
            "--");
    Qcow2Bitmaps.Opener nobody =
        FileCredentials.call(
            new FileCredentials.Identity(65534, 65534, new int[0]),
            Qcow2Bitmaps.Opener::ofThisThread);
    assertThat(nobody.prefix()).contains("--reuid=65534", "--clear-groups");
    Qcow2Bitmaps.Opener self = Qcow2Bitmaps.Opener.ofThisThread();
    assertThat(self.known()).isTrue();
    assertThat(self.switched()).isFalse();
    assertThat(self.prefix()).isEmpty();
    assertThat(Qcow2Bitmaps.Opener.parse(null).known()).isFalse();
    assertThat(Qcow2Bitmaps.Opener.parse("Name:\tjava\n").known()).isFalse();
  }
}
