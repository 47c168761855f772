package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link FsFreeze} on real ext4 filesystems on loop devices, with the real {@code fsfreeze}: the
 * path named is resolved once and held, so a user who can rename or replace a directory on it can
 * neither make root freeze another filesystem nor make the thaw miss the one frozen (audit9 F2);
 * and only a real freeze of root's counts as one under way (audit9 F1). Needs root.
 */
class FsFreezeMountTest {
  static final int OTHER_UID = 4242; // a user who owns a directory on the way

  @TempDir Path tmp;
  Path records;
  final List<Path> mounts = new ArrayList<>();
  final List<String> loops = new ArrayList<>();
  final List<Process> started = new ArrayList<>();

  static String sh(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError(String.join(" ", cmd) + " hung");
    }
    if (p.exitValue() != 0) {
      throw new AssertionError(String.join(" ", cmd) + " failed: " + out);
    }
    return out;
  }

  @BeforeEach
  void setUp() throws IOException {
    Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")), "needs root, losetup, mkfs.ext4, fsfreeze");
    records = tmp.resolve("records");
    FsFreeze.records = records;
  }

  @AfterEach
  void tearDown() throws Exception {
    for (Process p : started) {
      p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
    for (int i = mounts.size() - 1; i >= 0; i--) {
      Path m = mounts.get(i);
      new ProcessBuilder("fsfreeze", "-u", m.toString()).start().waitFor(30, TimeUnit.SECONDS);
      new ProcessBuilder("umount", "-l", m.toString()).start().waitFor(30, TimeUnit.SECONDS);
    }
    for (String l : loops) {
      new ProcessBuilder("losetup", "-d", l).start().waitFor(30, TimeUnit.SECONDS);
    }
    FsFreeze.records = FsFreeze.RECORDS;
    FsFreeze.host = FreezeRecord.LINUX;
  }

  /** A new ext4 filesystem mounted at {@code at} (made), its root owned by {@code uid}. */
  Path mount(Path at, int uid) throws Exception {
    Path img = tmp.resolve(at.getFileName() + ".img");
    try (var ch =
        java.nio.channels.FileChannel.open(
            img,
            java.nio.file.StandardOpenOption.CREATE_NEW,
            java.nio.file.StandardOpenOption.WRITE)) {
      ch.truncate(0);
      ch.write(java.nio.ByteBuffer.wrap(new byte[1]), (16L << 20) - 1);
    }
    sh("mkfs.ext4", "-q", "-F", img.toString());
    String dev = sh("losetup", "-f", "--show", img.toString());
    loops.add(dev);
    Files.createDirectories(at);
    sh("mount", dev, at.toString());
    mounts.add(at);
    sh("chown", Integer.toString(uid), at.toString());
    return at;
  }

  /** Whether a write to {@code m} finishes within two seconds (a frozen one blocks). */
  static boolean writable(Path m) throws Exception {
    Process p =
        new ProcessBuilder(
                "sh", "-c", "echo probe > '" + m + "/probe.txt' && sync -f '" + m + "/probe.txt'")
            .start();
    if (!p.waitFor(2, TimeUnit.SECONDS)) {
      return false; // blocked: the thaw in tearDown releases it
    }
    return p.exitValue() == 0;
  }

  /** A directory of the filesystem, not its mount point, is refused, naming the mount point. */
  @Test
  void aDirectoryBelowAMountPointIsRefusedNamingTheMountPoint() throws Exception {
    Path a = mount(tmp.resolve("a"), 0);
    Path data = Files.createDirectories(a.resolve("data"));
    assertThatThrownBy(() -> new FsFreeze().begin(List.of(data), Duration.ofSeconds(60)))
        .isInstanceOf(IOException.class)
        .hasMessage(
            "unable to freeze '"
                + data
                + "': it is not a mount point but a directory of the filesystem mounted at '"
                + a.toRealPath()
                + "', and fsfreeze freezes that whole filesystem: name '"
                + a.toRealPath()
                + "' instead");
    assertThat(writable(a)).as("nothing frozen").isTrue();
  }

  /**
   * The owner of the application's filesystem (A) replaces the directory root named with a link to
   * another filesystem (B): refused, and B is not frozen. Before, root froze B.
   */
  @Test
  void aLinkAnotherUserPutOnTheWayIsRefused() throws Exception {
    Path a = mount(tmp.resolve("fa"), OTHER_UID);
    Path b = mount(tmp.resolve("fb"), 0);
    Path data = a.resolve("data");
    Files.createSymbolicLink(data, b);
    sh("chown", "-h", Integer.toString(OTHER_UID), data.toString());
    assertThatThrownBy(() -> new FsFreeze().begin(List.of(data), Duration.ofSeconds(60)))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("'data' on the way to freeze target '" + data + "'")
        .hasMessageContaining("symbolic link");
    assertThat(writable(b)).as("B not frozen").isTrue();
    assertThat(writable(a)).as("A not frozen").isTrue();
  }

  /**
   * A user who owns a directory above the mount point moves it (a directory holding a mount point
   * can be renamed) and puts a link to another filesystem in its place while A is frozen: the thaw
   * still reaches A, through the directory held. Before, it went to B (EINVAL, "not frozen"), and A
   * stayed frozen.
   */
  @Test
  void theThawReachesTheFilesystemFrozenWhateverIsRenamedOnTheWay() throws Exception {
    Path owned = Files.createDirectories(tmp.resolve("tenant"));
    sh("chown", Integer.toString(OTHER_UID), owned.toString());
    Path a = mount(owned.resolve("vol"), 0);
    Path b = mount(tmp.resolve("other"), 0);
    SnapshotProvider.Hold hold = new FsFreeze().begin(List.of(a), Duration.ofSeconds(60));
    assertThat(writable(b)).isTrue();
    Path moved = tmp.resolve("tenant-moved");
    Files.move(owned, moved);
    mounts.set(0, moved.resolve("vol"));
    Files.createDirectories(owned);
    Files.createSymbolicLink(owned.resolve("vol"), b);
    hold.close();
    assertThat(writable(moved.resolve("vol"))).as("A thawed").isTrue();
    assertThat(writable(b)).as("B never frozen").isTrue();
    try (var l = Files.list(records)) {
      assertThat(l.toList()).isEmpty();
    }
  }

  /** A thaw answered "not frozen" after a freeze that succeeded fails the hold's close. */
  @Test
  void aFreezeThawedByAnotherMeanwhileFailsTheClose() throws Exception {
    Path a = mount(tmp.resolve("byhand"), 0);
    SnapshotProvider.Hold hold = new FsFreeze().begin(List.of(a), Duration.ofSeconds(60));
    sh("fsfreeze", "-u", a.toString());
    assertThatThrownBy(hold::close)
        .isInstanceOf(IOException.class)
        .hasMessageContaining("not frozen, though the freeze succeeded");
    try (var l = Files.list(records)) {
      assertThat(l.toList()).as("nothing left to thaw").isEmpty();
    }
  }

  @Test
  void theRootFilesystemIsRefused() {
    assertThatThrownBy(() -> new FsFreeze().begin(List.of(Path.of("/")), Duration.ofSeconds(60)))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith("refusing to freeze '/': it is on the filesystem of the root");
  }

  /** Starts {@code argv} under {@code argv0}, as uid {@code uid}. */
  Process forged(int uid, String argv0, String... argv) throws IOException {
    List<String> cmd = new ArrayList<>(List.of("setpriv", "--reuid=" + uid, "--regid=" + uid));
    cmd.add("--clear-groups");
    cmd.add("bash");
    cmd.add("-c");
    cmd.add("exec -a \"$0\" \"$@\"");
    cmd.add(argv0);
    cmd.addAll(List.of(argv));
    Process p = new ProcessBuilder(cmd).start();
    started.add(p);
    return p;
  }

  /**
   * F1: a process anyone can start, named fsfreeze with {@code -f MOUNT} as arguments, kept a
   * killed freezer's filesystem frozen: it is not taken for a freeze under way, and thawStale
   * thaws.
   */
  @Test
  void aForgedFsfreezeProcessDoesNotKeepAKilledFreezeFrozen() throws Exception {
    Path m = mount(tmp.resolve("left"), 0);
    long dev = FreezeRecord.LINUX.dev(m).orElseThrow();
    forged(OTHER_UID, "/usr/sbin/fsfreeze", "sleep", "60", "-f", m.toString());
    forged(0, "/usr/sbin/fsfreeze", "sleep", "60", "-f", m.toString()); // root's, not fsfreeze
    Thread.sleep(300); // both exec'd
    assertThat(FreezeRecord.LINUX.freezeUnderWay(m, dev)).isFalse();

    sh("fsfreeze", "-f", m.toString()); // a granule process froze it, then was killed
    FreezeRecord mine =
        FreezeRecord.ofThisProcess(
            m,
            dev,
            FreezeRecord.LINUX.mountId(m).orElse(-1),
            Duration.ofSeconds(60),
            FreezeRecord.LINUX);
    FreezeRecord gone =
        new FreezeRecord(
            mine.pid,
            mine.startTime + 1, // this pid, reused by this process
            mine.bootId,
            mine.pidNs,
            mine.mntNs,
            m,
            mine.dev,
            mine.mountId,
            mine.frozenAt,
            mine.deadline,
            "0123456789abcdef",
            false);
    Files.createDirectories(records);
    Files.writeString(records.resolve(gone.fileName()), gone.format(), StandardCharsets.UTF_8);
    FsFreeze.thawStale();
    assertThat(writable(m)).as("thawed").isTrue();
    try (var l = Files.list(records)) {
      assertThat(l.toList()).isEmpty();
    }
  }

  @Test
  void onlyRootOrCapSysAdminMayFreeze() {
    assertThat(FreezeRecord.mayFreeze("Name:\tx\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n"))
        .isTrue();
    assertThat(FreezeRecord.mayFreeze("Uid:\t1001\t1001\t1001\t1001\nCapEff:\t0000000000000000\n"))
        .isFalse();
    assertThat(FreezeRecord.mayFreeze("Uid:\t0\t1001\t0\t0\nCapEff:\t0000000000000000\n"))
        .as("real uid 0 only")
        .isFalse();
    assertThat(FreezeRecord.mayFreeze("Uid:\t1001\t1001\t1001\t1001\nCapEff:\t0000000000200000\n"))
        .as("CAP_SYS_ADMIN")
        .isTrue();
  }
}
