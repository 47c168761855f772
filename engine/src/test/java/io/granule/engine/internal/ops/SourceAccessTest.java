package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
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

  /**
   * A format of this test: the image file holds its backing file's name; opening it opens that file
   * by name, and then the image's user exchanges his links (as the audit's racer did with
   * renameat2), so that a check by name after the open sees his own file.
   */
  private static final class Linked implements DiskImageFormat {
    private final Runnable afterOpen;
    private final boolean probes;

    Linked(Runnable afterOpen) {
      this(afterOpen, false);
    }

    /** {@code probes}: claims what starts with '/' (a name) when formats are probed. */
    Linked(Runnable afterOpen, boolean probes) {
      this.afterOpen = afterOpen;
      this.probes = probes;
    }

    @Override
    public String name() {
      return "linked";
    }

    @Override
    public int probe(ByteBuffer head, long fileSize) {
      return probes && head.hasRemaining() && head.get(0) == '/' ? 100 : 0;
    }

    @Override
    public DiskImage open(Path path) throws IOException {
      String text = Files.readString(path, StandardCharsets.UTF_8);
      int nul = text.indexOf('\0'); // on a device: the name, then zeros
      Path backing = Path.of((nul < 0 ? text : text.substring(0, nul)).trim());
      FileChannel ch = FileChannel.open(backing, StandardOpenOption.READ);
      afterOpen.run();
      long size = ch.size();
      return new DiskImage() {
        @Override
        public long size() {
          return size;
        }

        @Override
        public String format() {
          return "linked";
        }

        @Override
        public void read(long offset, ByteBuffer dst) throws IOException {
          while (dst.hasRemaining() && ch.read(dst, offset + dst.position()) > 0) {
            // to the end
          }
        }

        @Override
        public List<Path> files() {
          return List.of(path, backing);
        }

        @Override
        public void close() throws IOException {
          ch.close();
        }
      };
    }
  }

  private Manifest backUp(Path image, Linked format) throws Exception {
    return backUp(image, format, "linked", new java.util.ArrayList<>(), null);
  }

  /**
   * Backs {@code image} up as {@code formatName} (null: probed; raw is there too), adding the
   * backup's notes to {@code notes}, and restores it to {@code restoreTo} unless that is null.
   */
  private Manifest backUp(
      Path image, Linked format, String formatName, List<String> notes, Path restoreTo)
      throws Exception {
    PluginLeases<DiskImageFormat> formats =
        new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(1));
    formats.added("linked", format, new PluginLeases.Origin("test", "0"), 0);
    formats.added(
        "raw",
        new io.granule.engine.internal.image.RawFormat(),
        new PluginLeases.Origin("test", "0"),
        0);
    try (Repository repo =
        Repository.init(tmp.resolve("repo-" + System.nanoTime()), RepositoryConfig.defaults())) {
      BackupOperation op =
          new BackupOperation(
              formats,
              new PluginLeases<>("SnapshotProvider", p -> p.name(), Duration.ofSeconds(1)));
      op.run(
          repo,
          List.of(new BackupOperation.DiskSpec("vda", image, formatName)),
          List.of(),
          null,
          null,
          "h",
          List.of(),
          BackupListener.NONE);
      notes.addAll(op.notes());
      Manifest m = repo.snapshots().get(0);
      if (restoreTo != null) {
        repo.restoreDisk(m, "vda", restoreTo);
      }
      return m;
    }
  }

  /**
   * The audit's race, made deterministic (audit9 F5): the user's link named root's file when the
   * image reader opened it and his own file when the check after the open looked at it by name, and
   * the backup stored root's file. The files are now opened as the image's owner: the kernel
   * refuses the open itself.
   */
  @Test
  void aLinkSwappedBetweenTheOpenAndTheCheckReadsNothingOfRoots() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        FileCredentials.unavailableReason() == null, FileCredentials.unavailableReason());
    Path secret = rootsSecret();
    Path home = Files.createDirectories(tmp.resolve("home"));
    chown(home, 65534);
    Path pub = Files.writeString(home.resolve("pub"), "his own file");
    chown(pub, 65534);
    Path back = Files.createSymbolicLink(home.resolve("back"), secret);
    Path alt = Files.createSymbolicLink(home.resolve("alt"), pub);
    chown(back, 65534);
    chown(alt, 65534);
    Path image = Files.writeString(home.resolve("vm.img"), back.toString());
    chown(image, 65534);
    Linked swapping =
        new Linked(
            () -> {
              try {
                Files.move(
                    alt, back, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
            });
    assertThatThrownBy(() -> backUp(image, swapping))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessage(
            "'"
                + back
                + "', a file '"
                + image
                + "' reads (a backing file or an extent), cannot be read by uid 65534, the"
                + " image's owner: a backup of it would hand him data he cannot read. Back it up as"
                + " that user, or let him read it");
    // his own file, opened as him: backed up
    Files.writeString(image, pub.toString());
    assertThat(backUp(image, new Linked(() -> {})).disks()).isNotEmpty();
  }

  /**
   * An image root owns but others can write was never checked (audit9 F6): a user of its group
   * rebased a root:gshared 0660 qcow2 onto a root-only file. Its readers are now its group (or
   * everyone, if everyone can write it).
   */
  @Test
  void aRootImageOthersCanWriteReadsOnlyWhatTheyCouldRead() throws Exception {
    chmod(tmp, "rwxr-xr-x");
    Path secret = Files.writeString(tmp.resolve("shadow"), "root's secret");
    chmod(secret, "rw-------");
    Path pool = Files.createDirectories(tmp.resolve("pool"));
    Path image = Files.writeString(pool.resolve("vm1.img"), secret.toString());
    chmod(image, "rw-rw----");
    Files.setAttribute(image, "unix:gid", 1002);
    assertThatThrownBy(() -> backUp(image, new Linked(() -> {})))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("'" + secret + "', a file '" + image + "' reads")
        .hasMessageContaining("cannot be read by group 1002 alone, which can write the image");
    assertThatThrownBy(() -> SourceAccess.checkFiles(image, List.of(image, secret)))
        .hasMessageContaining("cannot be read by group 1002 alone");
    chmod(image, "rw-rw-rw-");
    assertThatThrownBy(() -> backUp(image, new Linked(() -> {})))
        .hasMessageContaining("cannot be read by everyone, and everyone can write the image");
    // a directory above it that a user owns: his image as much as root's
    chmod(image, "rw-r--r--");
    chown(pool, 65534);
    assertThatThrownBy(() -> backUp(image, new Linked(() -> {})))
        .hasMessageContaining("cannot be read by uid 65534, who owns a directory above the image");
    // root's alone: root's to read
    chown(pool, 0);
    assertThat(backUp(image, new Linked(() -> {})).disks()).isNotEmpty();
  }

  @Test
  void privilegeComesFromCapabilitiesToo() throws Exception {
    Path status =
        Files.writeString(tmp.resolve("status"), "Name:\tjava\nCapEff:\t0000000000000004\n");
    long caps = Privilege.effective(status);
    assertThat(Privilege.has(caps, Privilege.CAP_DAC_READ_SEARCH)).isTrue();
    assertThat(Privilege.has(caps, Privilege.CAP_DAC_OVERRIDE)).isFalse();
    assertThat(Privilege.effective(tmp.resolve("missing"))).as("unknown: all").isEqualTo(-1L);
  }

  /**
   * The readers were judged by where the disk's path led: a link the user swapped in at that moment
   * led to root's file in root's directory, no reader but root was found, and root opened it as
   * root through his link (audit9 recheck NEW-2). Whoever can change the way as named is a reader
   * too, also on the way to a device.
   */
  @Test
  void whoeverCanChangeTheWayAsNamedIsAReader() throws Exception {
    Path rootOnly = Files.createDirectories(tmp.resolve("rootdir"));
    chmod(rootOnly, "rwx------");
    Path secret = Files.writeString(rootOnly.resolve("shadow"), "root's secret");
    Path his = Files.createDirectories(tmp.resolve("his"));
    chown(his, 1001);
    Path link = Files.createSymbolicLink(his.resolve("vm.img"), secret);
    chown(link, 1001);
    SourceAccess.Readers r = SourceAccess.readers(link);
    assertThat(r).isNotNull();
    assertThat(r.identity().uid()).isEqualTo(1001);
    Files.delete(link);
    Path dev = Files.createSymbolicLink(his.resolve("dev.img"), Path.of("/dev/loop-control"));
    assertThat(SourceAccess.readers(dev)).isNotNull();
    assertThat(SourceAccess.readers(Path.of("/dev/loop-control"))).as("root's own way").isNull();
    // a device everyone can write is everyone's (its mode bits count as a file's do)
    assertThat(SourceAccess.readers(Path.of("/dev/null")).who())
        .isEqualTo("everyone, and everyone can write the image or a directory above it");
  }

  /**
   * Audit10 F-B: {@code --cbt} runs qemu-img bitmap on an image as the identity that opened it.
   * Where identities cannot be switched, a user's image was opened as root, and qemu-img would have
   * modified it as root on a name he can swap: such an image is not tracked (read in full).
   */
  @Test
  void changeTrackingLeavesAnImageOthersCanChangeAloneWhereIdentitiesCannotBeSwitched()
      throws Exception {
    chmod(tmp, "rwxr-xr-x");
    Path his = Files.createDirectories(tmp.resolve("his"));
    chown(his, 1001);
    Path image = Files.writeString(his.resolve("vm.qcow2"), "top");
    chown(image, 1001);
    assertThat(SourceAccess.untrackable(image, "no native library"))
        .isEqualTo(
            "uid 1001, the image's owner can change it, and qemu-img would modify it as this"
                + " process: identities cannot be switched here (no native library)");
    assertThat(SourceAccess.untrackable(image, null)).as("switched: tracked as him").isNull();
    Path rootOnly = Files.createDirectories(tmp.resolve("rootdir"));
    chmod(rootOnly, "rwx------");
    Path own = Files.writeString(rootOnly.resolve("vm.qcow2"), "top");
    assertThat(SourceAccess.untrackable(own, "no native library")).as("root's own").isNull();
  }

  /** Root is needed here: skipped without it, but a failure under CI. */
  private static void need(boolean ok, String what) {
    if (!ok && "true".equals(System.getenv("CI"))) {
      org.junit.jupiter.api.Assertions.fail("CI: " + what);
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(ok, what);
  }

  private static String run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    return p.waitFor() == 0 ? out : null;
  }

  /** A loop device over {@code file}, its node given {@code gid} and {@code mode}. */
  private final class Loop implements AutoCloseable {
    final Path dev;
    private final Object gid;
    private final java.util.Set<java.nio.file.attribute.PosixFilePermission> mode;

    Loop(Path file, int gid, String mode) throws Exception {
      this(run("losetup", "--find", "--show", file.toString()), gid, mode);
    }

    /** Loop device {@code name}, set up already (null: it could not be). */
    Loop(String name, int gid, String mode) throws Exception {
      need(name != null && name.startsWith("/dev/loop"), "losetup --find --show (loop devices)");
      dev = Path.of(name);
      this.gid = Files.getAttribute(dev, "unix:gid");
      this.mode = Files.getPosixFilePermissions(dev);
      Files.setAttribute(dev, "unix:gid", gid);
      chmod(dev, mode);
    }

    @Override
    public void close() throws Exception {
      Files.setAttribute(dev, "unix:gid", gid);
      Files.setPosixFilePermissions(dev, mode);
      run("losetup", "--detach", dev.toString());
    }
  }

  private Path deviceFile(Path dir, String content) throws Exception {
    Path f = dir.resolve("disk-" + System.nanoTime() + ".img");
    try (FileChannel ch =
        FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(content.getBytes(StandardCharsets.UTF_8)));
      ch.truncate(1 << 20);
      ch.write(ByteBuffer.wrap(new byte[] {0}), (1 << 20) - 1);
    }
    return f;
  }

  /**
   * A device's writers were its owner alone (audit10 F-A): a root:gshared 0660 device, or the stock
   * root:disk loop device over a user's file, held a header naming root's file, and root opened it
   * as root and stored root's file. The node's group and other write bits count now, and so does
   * the file behind a loop device (also under a stacked one).
   */
  @Test
  void whoCanWriteADeviceOrTheFileBehindItIsAReader() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, for loop devices");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    Path secret = rootsSecret();
    // root's file behind a device its group can write
    Path pool = Files.createDirectories(tmp.resolve("pool"));
    try (Loop l = new Loop(deviceFile(pool, secret.toString()), 1002, "rw-rw----")) {
      SourceAccess.Readers r = SourceAccess.readers(l.dev);
      assertThat(r).isNotNull();
      assertThat(r.identity().gid()).isEqualTo(1002);
      assertThatThrownBy(() -> backUp(l.dev, new Linked(() -> {})))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageContaining("'" + secret + "', a file '" + l.dev + "' reads")
          .hasMessageContaining("cannot be read by group 1002 alone, which can write the image");
    }
    // a user's file behind a root-only device, and a device stacked on that one
    Path his = Files.createDirectories(tmp.resolve("his"));
    chown(his, 1001);
    Path file = deviceFile(his, secret.toString());
    chown(file, 1001);
    try (Loop l = new Loop(file, 0, "rw-------");
        Loop upper = new Loop(l.dev, 0, "rw-------")) {
      assertThat(SourceAccess.readers(l.dev).who())
          .isEqualTo("uid 1001, who owns '" + file + "', the file behind '" + l.dev + "'");
      assertThat(SourceAccess.readers(upper.dev).identity().uid()).isEqualTo(1001);
      assertThatThrownBy(() -> backUp(upper.dev, new Linked(() -> {})))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageStartingWith("'" + upper.dev + "' cannot be read by uid 1001");
    }
    // the stock root:disk 0660 node: its group and the file's owner, so everyone
    try (Loop l = new Loop(file, 6, "rw-rw----")) {
      assertThat(SourceAccess.readers(l.dev).identity().uid()).isEqualTo(SourceAccess.STAND_IN);
      assertThatThrownBy(() -> backUp(l.dev, new Linked(() -> {})))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageContaining("cannot be read by everyone");
    }
    // root's file behind root's device: root's to read
    try (Loop l = new Loop(deviceFile(pool, secret.toString()), 0, "rw-------")) {
      assertThat(SourceAccess.readers(l.dev)).isNull();
      assertThat(backUp(l.dev, new Linked(() -> {})).disks()).isNotEmpty();
    }
  }

  /**
   * Only the top image's path was judged (audit10 F-C): root's overlay in a root-only directory
   * over a base image in a user's directory was opened wholly as root, and the user made his base
   * image a link to root's file. Every file the image reads is judged on its way as named now; the
   * image is opened again as the readers of all their writers.
   */
  @Test
  void theFilesAnImageReadsAreJudgedOnTheirWayToo() throws Exception {
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    Path secret = rootsSecret();
    Path rootOnly = secret.getParent();
    Path his = Files.createDirectories(tmp.resolve("his"));
    chown(his, 1001);
    Path base = Files.createSymbolicLink(his.resolve("base.raw"), secret);
    chown(base, 1001);
    Path top = Files.writeString(rootOnly.resolve("top.img"), base.toString());
    assertThatThrownBy(() -> backUp(top, new Linked(() -> {})))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageStartingWith(
            "'"
                + top
                + "' cannot be read by uid 1001, who owns a directory above '"
                + base
                + "', a file the image reads");
    assertThatThrownBy(() -> SourceAccess.checkFiles(top, List.of(top, base)))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("by uid 1001");
    // his own base under root's readable overlay: read as him
    Files.delete(base);
    Path own = Files.writeString(his.resolve("base.raw"), "his own");
    chown(own, 1001);
    Path pub = Files.createDirectories(tmp.resolve("pub"));
    Path overlay = Files.writeString(pub.resolve("top.img"), own.toString());
    assertThat(backUp(overlay, new Linked(() -> {})).disks()).isNotEmpty();
    // a swap between the first open (as root) and the check: opened again as him, refused
    Files.delete(own);
    Path alt = Files.createSymbolicLink(his.resolve("alt"), secret);
    Files.writeString(his.resolve("base.raw"), "his own");
    assertThatThrownBy(
            () ->
                backUp(
                    overlay,
                    new Linked(
                        () -> {
                          try {
                            Files.move(
                                alt,
                                his.resolve("base.raw"),
                                StandardCopyOption.ATOMIC_MOVE,
                                StandardCopyOption.REPLACE_EXISTING);
                          } catch (IOException e) {
                            // the second open: already swapped
                          }
                        })))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("cannot be read by uid 1001");
  }

  private Path named(Path dir, String name, String content) throws Exception {
    return Files.move(deviceFile(dir, content), dir.resolve(name));
  }

  /**
   * Audit11 F2: sysfs names a loop device's file as the mount namespace that set it up sees it (a
   * container's, a service's with BindPaths=). There it was the user's file, holding a header that
   * named root's; here the same name is root's own file in root's directory, and the device was
   * judged root's alone. The name is judged only if it leads here to the file the kernel reads.
   */
  @Test
  void aLoopDeviceSetUpInAnotherMountNamespaceIsEveryones() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, for loop devices");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    Path secret = rootsSecret();
    Path srv = Files.createDirectories(tmp.resolve("srv"));
    Path hosts = named(srv, "vm.img", "root's own disk");
    Path his = Files.createDirectories(tmp.resolve("his"));
    chown(his, 1001);
    chown(named(his, "vm.img", secret.toString()), 1001);
    Process ns =
        new ProcessBuilder(
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount --bind \"$1\" \"$2\" && losetup --find --show \"$2/vm.img\" && exec sleep 300",
                "sh",
                his.toString(),
                srv.toString())
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start();
    try {
      String name =
          new java.io.BufferedReader(
                  new java.io.InputStreamReader(ns.getInputStream(), StandardCharsets.UTF_8))
              .readLine();
      need(name != null, "unshare -m, mount --bind and losetup in another mount namespace");
      try (Loop l = new Loop(name, 0, "rw-------")) {
        assertThat(io.granule.engine.internal.image.BlockDeviceClaim.loopBackingFile(l.dev))
            .as("sysfs names root's file here")
            .isEqualTo(hosts);
        SourceAccess.Readers r = SourceAccess.readers(l.dev);
        assertThat(r).isNotNull();
        assertThat(r.identity().uid()).isEqualTo(SourceAccess.STAND_IN);
        assertThat(r.who())
            .startsWith(
                "everyone, and the file behind '"
                    + l.dev
                    + "', '"
                    + hosts
                    + "', cannot be judged (the name leads here to another file");
        // root's 0600 node: the stand-in cannot even open it
        assertThatThrownBy(() -> backUp(l.dev, new Linked(() -> {})))
            .isInstanceOf(SourceUnreadableException.class)
            .hasMessageStartingWith("'" + l.dev + "' cannot be read by everyone, and the file");
      }
    } finally {
      ns.destroy();
      ns.waitFor();
    }
  }

  /**
   * Audit11 F5: sysfs names a loop device's deleted file "NAME (deleted)", and a file of that name
   * (root's) was judged in its place. It is judged only if it is the file the kernel reads.
   */
  @Test
  void aLoopDeviceOverADeletedFileIsEveryonesWhateverHasItsName() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, for loop devices");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    Path secret = rootsSecret();
    Path vms = Files.createDirectories(tmp.resolve("vms"));
    Path his = named(vms, "vm.img", secret.toString());
    chown(his, 1001);
    try (Loop l = new Loop(his, 0, "rw-------")) {
      assertThat(SourceAccess.readers(l.dev).who())
          .as("there: his file")
          .isEqualTo("uid 1001, who owns '" + his + "', the file behind '" + l.dev + "'");
      Files.delete(his);
      Path deleted = named(vms, "vm.img (deleted)", "root's own disk");
      assertThat(io.granule.engine.internal.image.BlockDeviceClaim.loopBackingFile(l.dev))
          .isEqualTo(deleted);
      SourceAccess.Readers r = SourceAccess.readers(l.dev);
      assertThat(r.identity().uid()).isEqualTo(SourceAccess.STAND_IN);
      assertThat(r.who()).contains("cannot be judged (the name leads here to another file");
      assertThatThrownBy(() -> backUp(l.dev, new Linked(() -> {})))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageContaining("cannot be read by everyone");
      Files.delete(deleted);
      assertThat(SourceAccess.readers(l.dev).who())
          .contains("cannot be judged (not there in this mount namespace");
    }
  }

  /**
   * Audit11 F4: only the node named was judged; the user wrote a header onto root's 0600 device
   * through his own node of it (a udev OWNER= rule's, a VM manager's). The block nodes under /dev
   * of the same device count too.
   */
  @Test
  void anotherNodeOfTheDeviceUnderDevCountsItsWriters() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, for loop devices and mknod");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    Path secret = rootsSecret();
    Path rootOnly = secret.getParent();
    try (Loop l = new Loop(deviceFile(rootOnly, secret.toString()), 0, "rw-------")) {
      assertThat(SourceAccess.readers(l.dev)).as("root's alone").isNull();
      String majMin =
          io.granule.engine.internal.image.BlockDeviceClaim.majorMinorOf(
              (Long) Files.getAttribute(l.dev, "unix:rdev"));
      Path dir = Files.createDirectory(Path.of("/dev", "granule-test-" + System.nanoTime()));
      Path node = dir.resolve("vmdisk");
      try {
        chown(dir, 1001);
        String[] mm = majMin.split(":");
        need(run("mknod", node.toString(), "b", mm[0], mm[1]) != null, "mknod under /dev");
        chown(node, 1001);
        chmod(node, "rw-------");
        SourceAccess.Readers r = SourceAccess.readers(l.dev);
        assertThat(r.who())
            .isEqualTo(
                "uid 1001, who owns '"
                    + node
                    + "', a node of device "
                    + majMin
                    + " as '"
                    + l.dev
                    + "' is");
        assertThatThrownBy(() -> backUp(l.dev, new Linked(() -> {})))
            .isInstanceOf(SourceUnreadableException.class)
            .hasMessageContaining("cannot be read by uid 1001");
        // root's node that its group may write: the group's
        chown(node, 0);
        Files.setAttribute(node, "unix:gid", 1002);
        chmod(node, "rw-rw----");
        assertThat(SourceAccess.readers(l.dev).identity().gid()).isEqualTo(1002);
        // root's alone: root's to read
        chmod(node, "rw-------");
        assertThat(SourceAccess.readers(l.dev)).isNull();
      } finally {
        Files.deleteIfExists(node);
        Files.delete(dir);
      }
    }
  }

  /**
   * Audit11 F4: who can write a device cannot be known (a node anywhere, a descriptor held open),
   * so a header on it is not followed unless its format is given: a device is read as raw then, and
   * the backup says what probing found (libvirt's answer to CVE-2010-2237).
   */
  @Test
  void aDeviceIsReadAsRawUnlessItsFormatIsGiven() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, for loop devices");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    chmod(tmp, "rwxr-xr-x");
    Path rootOnly = Files.createDirectories(tmp.resolve("root"));
    chmod(rootOnly, "rwx------");
    Path base = Files.writeString(rootOnly.resolve("base"), "root's base disk");
    Path file = deviceFile(rootOnly, base.toString());
    try (Loop l = new Loop(file, 0, "rw-------")) {
      List<String> notes = new java.util.ArrayList<>();
      Path out = tmp.resolve("out.raw");
      Manifest m = backUp(l.dev, new Linked(() -> {}, true), null, notes, out);
      assertThat(m.disk("vda").format()).isEqualTo("raw");
      assertThat(m.disk("vda").size()).isEqualTo(1 << 20);
      assertThat(Files.mismatch(out, file)).as("the device's bytes").isEqualTo(-1L);
      assertThat(notes)
          .contains(
              "disk vda: "
                  + l.dev
                  + " looks like linked; read as raw: give --format linked to read it as linked");
      notes.clear();
      m = backUp(l.dev, new Linked(() -> {}, true), "linked", notes, null);
      assertThat(m.disk("vda").format()).isEqualTo("linked");
      assertThat(m.disk("vda").size()).isEqualTo(Files.size(base));
      assertThat(notes).noneMatch(n -> n.contains("looks like"));
      // a file is probed as before
      m = backUp(file, new Linked(() -> {}, true), null, notes, null);
      assertThat(m.disk("vda").format()).isEqualTo("linked");
    }
  }

  /**
   * The stand-in for a group was uid 65534, and a file of nobody's, 0600, was read for the group's
   * members (audit10 F-N). The stand-in owns nothing now.
   */
  @Test
  void theStandInForAGroupReadsNoFileOfNobodys() throws Exception {
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    chmod(tmp, "rwxr-xr-x");
    Path nobodys = Files.writeString(tmp.resolve("nobodys"), "nobody's secret");
    chmod(nobodys, "rw-------");
    chown(nobodys, 65534);
    Files.setAttribute(nobodys, "unix:gid", 65534);
    Path pool = Files.createDirectories(tmp.resolve("pool"));
    Path image = Files.writeString(pool.resolve("vm1.img"), nobodys.toString());
    chmod(image, "rw-rw----");
    Files.setAttribute(image, "unix:gid", 1002);
    assertThat(SourceAccess.readers(image).identity())
        .satisfies(
            id -> {
              assertThat(id.uid()).isEqualTo(SourceAccess.STAND_IN).isNotEqualTo(65534);
              assertThat(id.gid()).isEqualTo(1002);
            });
    assertThatThrownBy(() -> backUp(image, new Linked(() -> {})))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("'" + nobodys + "', a file '" + image + "' reads")
        .hasMessageContaining("cannot be read by group 1002 alone");
  }

  /**
   * Root's secret: file "shadow" in directory "root" (0700) of the test's directory (made 0755, so
   * that other users reach what the test puts there).
   */
  private Path rootsSecret() throws Exception {
    chmod(tmp, "rwxr-xr-x");
    Path rootOnly = Files.createDirectories(tmp.resolve("root"));
    chmod(rootOnly, "rwx------");
    return Files.writeString(rootOnly.resolve("shadow"), "root's secret");
  }

  /** An empty ext4 file system of 8 MiB made at {@code fs} (a sparse file); {@code fs}. */
  private static Path ext4Image(Path fs) throws Exception {
    try (FileChannel ch =
        FileChannel.open(fs, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(new byte[] {0}), (8 << 20) - 1);
    }
    need(run("mkfs.ext4", "-q", "-F", fs.toString()) != null, "mkfs.ext4");
    return fs;
  }

  /** Runs debugfs's {@code commands} on file system image {@code fs} (as its -f file). */
  private void debugfs(Path fs, String... commands) throws Exception {
    Path script =
        Files.writeString(
            tmp.resolve("debugfs-" + System.nanoTime()), String.join("\n", commands) + "\n");
    need(
        run("debugfs", "-w", "-f", script.toString(), fs.toString()) != null,
        "debugfs -w on " + fs);
  }

  /**
   * A file system a user built vouched for itself (audit11 F1): gu1 made an ext4 image with mkfs
   * and debugfs holding a qcow2 whose inode claimed root:root 0644 in a root 0755 directory; root
   * mounted it (read-only) and backed the qcow2 up as root's, and its backing file, root's, was
   * stored. The file system's source counts now: the loop device's backing file and its owner.
   */
  @Test
  void aFileSystemAUserBuiltVouchesForNothing() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, to mount");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    need(
        run("sh", "-c", "command -v mkfs.ext4 && command -v debugfs") != null,
        "mkfs.ext4 and debugfs (e2fsprogs)");
    Path secret = rootsSecret();
    chmod(secret, "rw-------");
    Path his = Files.createDirectories(tmp.resolve("his"));
    chown(his, 1001);
    Path fs = ext4Image(his.resolve("fs.img"));
    chown(fs, 1001);
    Path header = Files.writeString(his.resolve("vm.img"), secret.toString());
    debugfs(
        fs,
        "mkdir vms",
        "cd vms",
        "write " + header + " vm.img",
        "sif vm.img uid 0",
        "sif vm.img gid 0",
        "sif vm.img mode 0100644");
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));
    need(run("mount", "-o", "loop,ro", fs.toString(), mnt.toString()) != null, "mount -o loop,ro");
    try {
      Path image = mnt.resolve("vms/vm.img");
      assertThat(Files.getAttribute(image, "unix:uid")).as("it claims to be root's").isEqualTo(0);
      SourceAccess.Readers r = SourceAccess.readers(image);
      assertThat(r).isNotNull();
      assertThat(r.identity().uid()).isEqualTo(1001);
      assertThat(r.who()).startsWith("uid 1001, who owns '" + fs + "', the file behind '/dev/loop");
      assertThatThrownBy(() -> backUp(image, new Linked(() -> {})))
          .isInstanceOf(SourceUnreadableException.class)
          .hasMessageContaining("'" + secret + "', a file '" + image + "' reads")
          .hasMessageContaining("cannot be read by uid 1001");
    } finally {
      run("umount", mnt.toString());
    }
    // root's own file system image, on root's way: root's (the loop device's group disk is not
    // counted: root's equal)
    chown(fs, 0);
    chown(his, 0);
    need(run("mount", "-o", "loop,ro", fs.toString(), mnt.toString()) != null, "mount -o loop,ro");
    try {
      assertThat(SourceAccess.readers(mnt.resolve("vms/vm.img"))).isNull();
    } finally {
      run("umount", mnt.toString());
    }
  }

  /**
   * audit14 F3: root served a user's ext4 image through fuse2fs; a FUSE file system counted as its
   * server's, root's, and his qcow2 in it, claiming to be root's, read root's 0600 file. What a
   * FUSE server reads cannot be told: served by root, it is everyone's.
   */
  @Test
  void aFuseFileSystemRootServesIsEveryones() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, to mount");
    need(
        run("sh", "-c", "command -v fuse2fs && command -v mkfs.ext4 && command -v debugfs") != null,
        "fuse2fs (apt package fuse2fs), mkfs.ext4 and debugfs");
    chmod(tmp, "rwxr-xr-x");
    Path fs = ext4Image(tmp.resolve("fs.img"));
    Path header = Files.writeString(tmp.resolve("vm.src"), "a header");
    debugfs(fs, "write " + header + " vm.img");
    Path mnt = Files.createDirectories(tmp.resolve("fuse"));
    need(run("fuse2fs", "-o", "ro", fs.toString(), mnt.toString()) != null, "fuse2fs");
    try {
      Path image = mnt.resolve("vm.img");
      assertThat(Files.getAttribute(image, "unix:uid")).as("root's, it says").isEqualTo(0);
      SourceAccess.Readers r = SourceAccess.readers(image);
      assertThat(r).as("served by root from a file anyone may have made").isNotNull();
      assertThat(r.who()).startsWith("everyone, and the fuse.ext4 file system at '" + mnt + "'");
      assertThat(r.who()).contains("is served by root");
    } finally {
      run("umount", mnt.toString());
    }
  }

  /**
   * Kernel-local file systems (tmpfs) are judged by their owners and modes alone; one served from
   * elsewhere (overlay here, NFS, 9p, virtiofs) is everyone's.
   */
  @Test
  void aTmpfsIsJudgedByItsModesAndAnOverlayIsEveryones() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, to mount");
    chmod(tmp, "rwxr-xr-x");
    Path mnt = Files.createDirectories(tmp.resolve("tmpfs"));
    need(
        run("mount", "-t", "tmpfs", "-o", "mode=0755", "granule-test", mnt.toString()) != null,
        "mount -t tmpfs");
    try {
      Path pool = Files.createDirectories(mnt.resolve("pool"));
      Path image = Files.writeString(pool.resolve("vm.img"), "root's");
      assertThat(SourceAccess.readers(image)).as("root's").isNull();
      chown(pool, 1001);
      assertThat(SourceAccess.readers(image).who())
          .isEqualTo("uid 1001, who owns a directory above the image");
      chown(pool, 0);
      Path lower = Files.createDirectories(mnt.resolve("lower"));
      Files.writeString(lower.resolve("vm.img"), "root's");
      Path upper = Files.createDirectories(mnt.resolve("upper"));
      Path work = Files.createDirectories(mnt.resolve("work"));
      Path merged = Files.createDirectories(tmp.resolve("merged"));
      need(
          run(
                  "mount",
                  "-t",
                  "overlay",
                  "granule-test",
                  "-o",
                  "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work,
                  merged.toString())
              != null,
          "mount -t overlay");
      try {
        assertThat(SourceAccess.readers(merged.resolve("vm.img")).who())
            .startsWith("everyone, and the overlay file system at '" + merged + "'");
      } finally {
        run("umount", merged.toString());
      }
    } finally {
      run("umount", mnt.toString());
    }
  }

  @Test
  void mountinfoLinesAreRead() throws Exception {
    SourceAccess.Mount m =
        SourceAccess.mount(
            "57 27 0:50 / /mnt/my\\040disk rw,nosuid shared:9 - fuse.sshfs me@host:/x"
                + " rw,user_id=1001,group_id=1001,allow_other");
    assertThat(m.point()).isEqualTo(Path.of("/mnt/my disk"));
    assertThat(m.type()).isEqualTo("fuse.sshfs");
    assertThat(m.source()).isEqualTo("me@host:/x");
    assertThat(m.options()).contains("user_id=1001");
    assertThat(SourceAccess.mount("junk")).isNull();
  }

  @Test
  void aclFormsAreRead() throws Exception {
    PosixAcl acl =
        PosixAcl.parse(
            "user::rw-\nuser:1001:rw-\ngroup::r--\ngroup:1002:rwx\nmask::r-x\nother::---\n");
    assertThat(acl.writingUsers()).as("masked").isEmpty();
    assertThat(acl.writingGroups()).isEmpty();
    acl = PosixAcl.parse("user::rw-\nuser:1001:rw-\ngroup::rw-\nmask::rw-\nother::---\n");
    assertThat(acl.writingUsers()).containsExactly(1001);
    assertThat(acl.owningGroupWrites()).isTrue();
    assertThatThrownBy(() -> PosixAcl.parse("user:1001:rw-\n")).hasMessageContaining("no mask");
  }

  /**
   * Writers were judged by mode bits alone (audit11 R1): a root:root 0600 image with the ACL entry
   * user:gu1:rw- showed g+rw (the ACL's mask) and was opened as (65535, gid 0), and gu1's header
   * named a gid-0-readable file of root's. The ACL's named writers count now.
   */
  @Test
  void whomAnAclLetsWriteIsAReader() throws Exception {
    need("root".equals(System.getProperty("user.name")), "root, to set ACLs");
    need(FileCredentials.unavailableReason() == null, "libgranule-native");
    need(run("sh", "-c", "command -v setfacl") != null, "setfacl (acl)");
    chmod(tmp, "rwxr-xr-x");
    Path rootOnly = Files.createDirectories(tmp.resolve("root"));
    chmod(rootOnly, "rwxr-x---");
    Path secret = Files.writeString(rootOnly.resolve("shadow"), "root's secret");
    chmod(secret, "rw-r-----");
    Path pool = Files.createDirectories(tmp.resolve("pool"));
    Path image = Files.writeString(pool.resolve("vm1.img"), secret.toString());
    chmod(image, "rw-------");
    need(run("setfacl", "-m", "u:1001:rw", image.toString()) != null, "setfacl -m (ACLs here)");
    SourceAccess.Readers r = SourceAccess.readers(image);
    assertThat(r.identity().uid()).isEqualTo(1001);
    assertThat(r.who())
        .isEqualTo("uid 1001, whom an ACL lets write the image or a directory above it");
    assertThatThrownBy(() -> backUp(image, new Linked(() -> {})))
        .isInstanceOf(SourceUnreadableException.class)
        .hasMessageContaining("'" + secret + "', a file '" + image + "' reads")
        .hasMessageContaining("cannot be read by uid 1001");
    // a group's entry on a directory above: its entries can be replaced by the group
    run("setfacl", "-b", image.toString());
    need(run("setfacl", "-m", "g:1002:rwx", pool.toString()) != null, "setfacl -m");
    assertThat(SourceAccess.readers(image).who())
        .isEqualTo("group 1002 alone, which an ACL lets write the image or a directory above it");
    // an entry its mask takes away writes nothing
    run("setfacl", "-b", pool.toString());
    need(run("setfacl", "-n", "-m", "u:1001:rw,m::r", image.toString()) != null, "setfacl -n");
    assertThat(SourceAccess.readers(image)).isNull();
  }

  /**
   * The repository rule's "own group": group 0 for root (whatever system users have it as their
   * primary group: audit L7), a user's private group for him; a group /etc/group lists without
   * members is not one (audit L4: its members may come from PAM, userdb, sssd).
   */
  @Test
  void onlyAUsersOwnGroupHasNoOthers() throws Exception {
    assertThat(SourceAccess.othersIn(0, 0)).isFalse();
    assertThat(SourceAccess.othersIn(1, 0)).as("daemon's group").isTrue();
    for (String g : Files.readAllLines(Path.of("/etc/group"))) {
      String[] f = g.split(":", -1);
      if (f[0].equals("staff")) {
        assertThat(f[3]).as("Debian's staff group, listed without members").isEmpty();
        assertThat(SourceAccess.othersIn(Integer.parseInt(f[2]), 0)).isTrue();
      }
      if (f[0].equals("gu1")) { // where the audits' user 1001 exists: his private group
        int gid = Integer.parseInt(f[2]);
        assertThat(SourceAccess.othersIn(gid, 1001)).isFalse();
        assertThat(SourceAccess.othersIn(gid, 0)).isTrue();
      }
    }
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
    assertThat(SourceAccess.othersIn(0, 0, passwd, group)).as("Debian's root").isFalse();
    assertThat(SourceAccess.othersIn(1000, 1000, passwd, group))
        .as("alice's private group")
        .isFalse();
    assertThat(SourceAccess.othersIn(1000, 0, passwd, group))
        .as("alice's group, for root")
        .isTrue();
    assertThat(SourceAccess.othersIn(50, 0, passwd, group)).as("listed without members").isTrue();
    assertThat(SourceAccess.othersIn(100, 1001, passwd, group))
        .as("bob's primary, carol's too")
        .isTrue();
    assertThat(SourceAccess.othersIn(7, 0, passwd, group)).as("not listed").isTrue();
    // root:x:0:gu1 (audit M: a member of root's group rewrote the config; plaintext)
    Files.writeString(group, "root:x:0:alice\nalice:x:1000:\n");
    assertThat(SourceAccess.othersIn(0, 0, passwd, group)).isTrue();
    // RHEL: system users with primary group 0
    Files.writeString(group, "root:x:0:\n");
    Files.writeString(passwd, "root:x:0:0::/root:/bin/bash\nsync:x:5:0::/sbin:/bin/sync\n");
    assertThat(SourceAccess.othersIn(0, 0, passwd, group)).isTrue();
    // a group named otherwise than its user (not a private group)
    Files.writeString(passwd, "alice:x:1000:1000::/home/alice:/bin/sh\n");
    Files.writeString(group, "devs:x:1000:\n");
    assertThat(SourceAccess.othersIn(1000, 1000, passwd, group)).isTrue();
  }
}
