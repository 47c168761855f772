package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a hostile or odd filesystem image can and cannot make a file restore do. */
class FileRestorerTest {
  @TempDir Path tmp;

  /** A filesystem made by hand: nodes by id, directory entries by node id, file data by id. */
  static class HandMadeFs implements FileSystem {
    final Map<Long, FileNode> nodes = new HashMap<>();
    final Map<Long, List<DirectoryEntry>> dirs = new HashMap<>();
    final Map<Long, byte[]> data = new HashMap<>();
    final Map<Long, List<Extent>> allocated = new HashMap<>();
    final Map<Long, String> links = new HashMap<>();
    long next = 2;

    HandMadeFs() {
      nodes.put(1L, node(1, FileKind.DIRECTORY, 0, 1));
      dirs.put(1L, new ArrayList<>());
    }

    static FileNode node(long id, FileKind kind, long size, long linkCount) {
      return new FileNode(
          id,
          kind,
          size,
          0644,
          -1,
          -1,
          linkCount,
          Instant.ofEpochSecond(1_600_000_000L),
          null,
          null,
          null);
    }

    long dir(long parent, String name) {
      long id = next++;
      nodes.put(id, node(id, FileKind.DIRECTORY, 0, 1));
      dirs.put(id, new ArrayList<>());
      dirs.get(parent).add(new DirectoryEntry(name, nodes.get(id)));
      return id;
    }

    long file(long parent, String name, byte[] content, List<Extent> extents, long links) {
      long id = next++;
      nodes.put(id, node(id, FileKind.FILE, content.length, links));
      data.put(id, content);
      allocated.put(id, extents);
      dirs.get(parent).add(new DirectoryEntry(name, nodes.get(id)));
      return id;
    }

    void link(long parent, String name, long id) {
      dirs.get(parent).add(new DirectoryEntry(name, nodes.get(id)));
    }

    void symlink(long parent, String name, String target) {
      long id = next++;
      nodes.put(id, node(id, FileKind.SYMLINK, target.length(), 1));
      links.put(id, target);
      dirs.get(parent).add(new DirectoryEntry(name, nodes.get(id)));
    }

    @Override
    public FileNode root() {
      return nodes.get(1L);
    }

    @Override
    public FileNode lookup(String path) throws IOException {
      FileNode n = root();
      for (String part : path.split("/")) {
        if (part.isEmpty()) {
          continue;
        }
        FileNode found = null;
        for (DirectoryEntry e : dirs.getOrDefault(n.id(), List.of())) {
          if (e.name().equals(part)) {
            found = e.node();
          }
        }
        if (found == null) {
          throw new NoSuchFileException(path);
        }
        n = found;
      }
      return n;
    }

    @Override
    public List<DirectoryEntry> list(FileNode dir) {
      return dirs.get(dir.id());
    }

    @Override
    public int read(FileNode file, long position, ByteBuffer dst) {
      byte[] d = data.get(file.id());
      if (position >= d.length) {
        return -1;
      }
      int n = (int) Math.min(dst.remaining(), d.length - position);
      dst.put(d, (int) position, n);
      return n;
    }

    @Override
    public String readLink(FileNode link) {
      return links.get(link.id());
    }

    @Override
    public List<Extent> allocation(FileNode file) {
      return allocated.get(file.id());
    }

    @Override
    public void close() {}
  }

  /**
   * Moves directory {@code dir} aside (to DIR.moved) and puts a link to {@code to} in its place.
   */
  static void swapForLink(Path dir, Path to) {
    try {
      Files.move(dir, dir.resolveSibling(dir.getFileName() + ".moved"));
      Files.createSymbolicLink(dir, to);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** etc/a.conf, hard-linked as other/b.conf; returns directory other's id. */
  static long hardLinkedConf(HandMadeFs fs, long etc) {
    long shared =
        fs.file(
            etc,
            "a.conf",
            "x=1\n".getBytes(java.nio.charset.StandardCharsets.UTF_8),
            List.of(new Extent(0, 4)),
            2);
    long other = fs.dir(1, "other");
    fs.link(other, "b.conf", shared);
    return other;
  }

  /**
   * Someone who can write the target directory swaps a directory the restore just made for a
   * symbolic link to elsewhere (or moves it) mid-restore: the restore created every file after that
   * through the link, outside the target (as root, with the backup's owners). It now writes into
   * the directory it made, through its descriptor, wherever that directory went, and a trailing
   * hole is sized through the file's descriptor, never through a name.
   */
  @Test
  void aDirectorySwappedForALinkMidRestoreIsNotFollowed() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    long sub = fs.dir(1, "sub");
    for (int i = 0; i < 20; i++) {
      byte[] content = new byte[8192];
      content[0] = (byte) i; // the rest a trailing hole
      fs.file(sub, "f" + i, content, List.of(new Extent(0, 4096)), 1);
    }
    Path out = tmp.resolve("out");
    Path outside = Files.createDirectories(tmp.resolve("outside"));
    java.util.concurrent.atomic.AtomicBoolean swapped =
        new java.util.concurrent.atomic.AtomicBoolean();
    FileRestorer restorer =
        new FileRestorer(fs, out)
            .keepSetId(true)
            .include(
                rel -> {
                  if (rel.equals("sub/f5") && swapped.compareAndSet(false, true)) {
                    swapForLink(out.resolve("sub"), outside);
                  }
                  return true;
                });
    restorer.restore("/");
    assertThat(swapped).isTrue();
    try (var written = Files.list(outside)) {
      assertThat(written).as("nothing written outside the target").isEmpty();
    }
    try (var kept = Files.list(out.resolve("sub.moved"))) {
      assertThat(kept).hasSize(20);
    }
    byte[] f7 = Files.readAllBytes(out.resolve("sub.moved/f7"));
    assertThat(f7).hasSize(8192);
    assertThat(f7[0]).isEqualTo((byte) 7);
  }

  /**
   * A hard link was made by the first file's path: someone who can write the target and swapped a
   * directory on that path for a link to elsewhere made the restore (as root) link a file from
   * outside the target into it. The first file is now reached one directory at a time without
   * following links, and the link must be the file restored.
   */
  @Test
  void aHardLinkIsNeverMadeToAFileOutsideTheTarget() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    long etc = fs.dir(1, "etc");
    hardLinkedConf(fs, etc);
    Path out = tmp.resolve("out");
    Path outside = Files.createDirectories(tmp.resolve("outside"));
    Path secret = Files.writeString(outside.resolve("a.conf"), "secret");
    FileRestorer restorer =
        new FileRestorer(fs, out)
            .keepSetId(true)
            .include(
                rel -> {
                  if (rel.equals("other/b.conf")) {
                    swapForLink(out.resolve("etc"), outside);
                  }
                  return true;
                });
    assertThatThrownBy(() -> restorer.restore("/"))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("replaced while the restore ran");
    assertThat(Files.getAttribute(secret, "unix:nlink"))
        .as("outside file never linked")
        .isEqualTo(1);
    assertThat(out.resolve("other/b.conf")).doesNotExist();
  }

  /** Set-user-ID, set-group-ID and sticky bits were dropped: a restored /tmp came back 0777. */
  @Test
  void specialModeBitsAreRestored() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    long t = fs.dir(1, "tmp");
    FileNode sticky =
        new FileNode(
            t, FileKind.DIRECTORY, 0, 01777, -1, -1, 1, Instant.ofEpochSecond(1), null, null, null);
    fs.nodes.put(t, sticky);
    fs.dirs.get(1L).set(0, new DirectoryEntry("tmp", sticky));
    long f = fs.file(1, "su", new byte[] {1}, List.of(new Extent(0, 1)), 1);
    FileNode setuid =
        new FileNode(
            f, FileKind.FILE, 1, 06755, -1, -1, 1, Instant.ofEpochSecond(1), null, null, null);
    fs.nodes.put(f, setuid);
    fs.dirs.get(1L).set(1, new DirectoryEntry("su", setuid));
    Path out = tmp.resolve("out");
    new FileRestorer(fs, out).keepSetId(true).restore("/");
    assertThat(Integer.toOctalString((Integer) Files.getAttribute(out.resolve("tmp"), "unix:mode")))
        .endsWith("1777");
    assertThat(Integer.toOctalString((Integer) Files.getAttribute(out.resolve("su"), "unix:mode")))
        .endsWith("6755");

    // by default a root restore leaves set-ID bits out (the disk's owners may be a tenant's to
    // choose: a set-user-ID program of uid 0 made him root), and says how many; sticky stays
    boolean root = "root".equals(System.getProperty("user.name"));
    Path plain = tmp.resolve("plain");
    FileRestorer.Result r = new FileRestorer(fs, plain).restore("/");
    assertThat(
            Integer.toOctalString((Integer) Files.getAttribute(plain.resolve("su"), "unix:mode")))
        .endsWith(root ? "100755" : "6755");
    assertThat(r.setIdCleared()).isEqualTo(root ? 1 : 0);
    assertThat(
            Integer.toOctalString((Integer) Files.getAttribute(plain.resolve("tmp"), "unix:mode")))
        .endsWith("1777");
  }

  /**
   * A default ACL a user put on the target directory (setfacl -d -m u:them:rwx) was inherited by
   * everything restored into it: he read a restored 0640 root:shadow file. Restored files and
   * directories keep their snapshot's mode and no inherited ACL; directories stay the owner's alone
   * until their own mode is set.
   */
  @Test
  void aDefaultAclOnTheTargetIsNotInherited() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    long d = fs.dir(1, "etc");
    long f = fs.file(d, "shadow", new byte[] {7}, List.of(new Extent(0, 1)), 1);
    FileNode secret =
        new FileNode(
            f, FileKind.FILE, 1, 0640, -1, -1, 1, Instant.ofEpochSecond(1), null, null, null);
    fs.nodes.put(f, secret);
    fs.dirs.get(d).set(0, new DirectoryEntry("shadow", secret));
    Path out = Files.createDirectories(tmp.resolve("out"));
    Process acl =
        new ProcessBuilder(
                "python3",
                "-c",
                "import os,struct,sys\n"
                    + "e=[(1,7,0xffffffff),(2,7,65534),(4,5,0xffffffff),(0x10,7,0xffffffff),"
                    + "(0x20,5,0xffffffff)]\n"
                    + "b=struct.pack('<I',2)+b''.join(struct.pack('<HHI',t,p,i) for t,p,i in e)\n"
                    + "os.setxattr(sys.argv[1],'system.posix_acl_default',b)\n",
                out.toString())
            .inheritIO()
            .start();
    assertThat(acl.waitFor()).isZero();
    new FileRestorer(fs, out).restore("/");
    for (Path p : List.of(out.resolve("etc"), out.resolve("etc/shadow"))) {
      Process get =
          new ProcessBuilder(
                  "python3",
                  "-c",
                  "import os,sys\n"
                      + "print(sorted(n for n in os.listxattr(sys.argv[1]) if 'acl' in n))",
                  p.toString())
              .start();
      String attrs = new String(get.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(get.waitFor()).isZero();
      assertThat(attrs.trim()).as(p + " inherits no ACL").isEqualTo("[]");
    }
    assertThat(
            Integer.toOctalString(
                (Integer) Files.getAttribute(out.resolve("etc/shadow"), "unix:mode")))
        .endsWith("640");
  }

  /**
   * Someone who can write the target directory renames a program of theirs over a set-user-ID file
   * while the restore copies it: the owner and mode were set by name, so root made that program
   * set-user-ID root. They are now set through the descriptor of the file made, and the swap is
   * reported.
   */
  @Test
  void aFileRenamedOverARestoredOneNeverGetsItsOwnerOrMode() throws Exception {
    Path out = tmp.resolve("out");
    Path mine = Files.writeString(tmp.resolve("mine"), "#!/bin/sh\nid\n");
    Files.setPosixFilePermissions(mine, FileRestorer.permissions(0755));
    HandMadeFs fs =
        new HandMadeFs() {
          @Override
          public int read(FileNode file, long position, ByteBuffer dst) {
            if (position == 0) {
              try {
                Files.move(
                    mine, out.resolve("su"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            }
            return super.read(file, position, dst);
          }
        };
    long f = fs.file(1, "su", new byte[] {1, 2, 3}, List.of(new Extent(0, 3)), 1);
    FileNode setuid =
        new FileNode(
            f, FileKind.FILE, 3, 04755, 0, 0, 1, Instant.ofEpochSecond(1), null, null, null);
    fs.nodes.put(f, setuid);
    fs.dirs.get(1L).set(0, new DirectoryEntry("su", setuid));
    assertThatThrownBy(() -> new FileRestorer(fs, out).restore("/"))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("was replaced or removed while the restore wrote it");
    Path swapped = out.resolve("su");
    assertThat(Files.readString(swapped)).startsWith("#!/bin/sh");
    assertThat(Integer.toOctalString((Integer) Files.getAttribute(swapped, "unix:mode")))
        .as("never made set-user-ID")
        .endsWith("100755");
    assertThat(Files.getLastModifiedTime(swapped))
        .as("its times untouched")
        .isNotEqualTo(java.nio.file.attribute.FileTime.from(Instant.ofEpochSecond(1)));
  }

  /**
   * The target directory's own owner and mode (from the backup's root directory) were set by its
   * name at the end: someone who can write its parent put a program of theirs there meanwhile, and
   * it got them. They are set through the directory held open.
   */
  @Test
  void theTargetDirectorysModeGoesToTheDirectoryRestoredInto() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    FileNode setuidRoot =
        new FileNode(
            1, FileKind.DIRECTORY, 0, 04755, -1, -1, 1, Instant.ofEpochSecond(1), null, null, null);
    fs.nodes.put(1L, setuidRoot);
    fs.file(1, "a", new byte[] {1}, List.of(new Extent(0, 1)), 1);
    Path out = tmp.resolve("out");
    Path moved = tmp.resolve("out.moved");
    FileRestorer restorer =
        new FileRestorer(fs, out)
            .keepSetId(true)
            .include(
                rel -> {
                  try {
                    Files.move(out, moved);
                    Files.writeString(out, "#!/bin/sh\n");
                  } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                  }
                  return true;
                });
    restorer.restore("/");
    assertThat(Integer.toOctalString((Integer) Files.getAttribute(out, "unix:mode")))
        .as("the file put in its place")
        .endsWith("100644");
    assertThat(Integer.toOctalString((Integer) Files.getAttribute(moved, "unix:mode")))
        .endsWith("4755");
    assertThat(moved.resolve("a")).exists();
  }

  /**
   * Restoring {@code /} into a directory that exists leaves that directory's owner and mode alone:
   * root's {@code --to /srv/restores} was given the image root's owner and mode (a tenant's uid,
   * 0777), with root's files in it. A directory the restore makes gets them.
   */
  @Test
  void anExistingTargetDirectoryKeepsItsOwnerAndMode() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    fs.nodes.put(
        1L,
        new FileNode(
            1,
            FileKind.DIRECTORY,
            0,
            0777,
            1001,
            1001,
            1,
            Instant.ofEpochSecond(1),
            null,
            null,
            null));
    fs.file(1, "a", new byte[] {1}, List.of(new Extent(0, 1)), 1);
    Path existing = Files.createDirectory(tmp.resolve("existing"));
    Files.setPosixFilePermissions(
        existing, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-x---"));
    Object owner = Files.getAttribute(existing, "unix:uid");
    new FileRestorer(fs, existing).restore("/");
    assertThat(existing.resolve("a")).exists();
    assertThat((Integer) Files.getAttribute(existing, "unix:mode") & 07777).isEqualTo(0750);
    assertThat(Files.getAttribute(existing, "unix:uid")).isEqualTo(owner);

    Path made = tmp.resolve("made");
    new FileRestorer(fs, made).restore("/");
    assertThat((Integer) Files.getAttribute(made, "unix:mode") & 07777).isEqualTo(0777);
    if ("root".equals(System.getProperty("user.name"))) {
      assertThat(Files.getAttribute(made, "unix:uid")).isEqualTo(1001);
    }
  }

  /**
   * A user who owns the --to path made it a link to a directory of root's: root's restore wrote
   * root-owned files there. A link another user owns is refused anywhere on the way; root's own
   * links are followed.
   */
  @Test
  void aTargetThroughAnotherUsersLinkIsRefused() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")) || "true".equals(System.getenv("CI")),
        "needs root to make a link of another user's");
    HandMadeFs fs = new HandMadeFs();
    fs.file(1, "a", new byte[] {1}, List.of(new Extent(0, 1)), 1);
    Path rootOnly = Files.createDirectories(tmp.resolve("cron.d"));
    Path home = Files.createDirectories(tmp.resolve("home"));
    Path theirs = Files.createSymbolicLink(home.resolve("restored"), rootOnly);
    Files.setAttribute(theirs, "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
    assertThatThrownBy(() -> new FileRestorer(fs, theirs))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("is a symbolic link owned by uid 65534");
    assertThatThrownBy(() -> new FileRestorer(fs, theirs.resolve("deeper")))
        .hasMessageContaining("symbolic link owned by uid 65534");
    assertThat(rootOnly.resolve("a")).doesNotExist();
    Path mine = Files.createSymbolicLink(home.resolve("mine"), rootOnly);
    new FileRestorer(fs, mine).restore("/");
    assertThat(rootOnly.resolve("a")).exists();
  }

  @Test
  void treeWithSparseFileHardLinksAndSymlinksRestores() throws Exception {
    HandMadeFs fs = new HandMadeFs();
    long etc = fs.dir(1, "etc");
    byte[] sparse = new byte[3 << 20];
    sparse[0] = 1;
    sparse[(3 << 20) - 1] = 2;
    fs.file(
        etc,
        "sparse.bin",
        sparse,
        List.of(new Extent(0, 4096), new Extent((3 << 20) - 4096, 4096)),
        1);
    long other = hardLinkedConf(fs, etc);
    fs.symlink(other, "abs", "/etc/passwd");

    FileRestorer.Result r = new FileRestorer(fs, tmp.resolve("out")).restore("/");
    assertThat(r.files()).isEqualTo(2);
    assertThat(r.hardLinks()).isEqualTo(1);
    assertThat(r.symlinks()).isEqualTo(1);
    assertThat(Files.readAllBytes(tmp.resolve("out/etc/sparse.bin"))).isEqualTo(sparse);
    assertThat(r.bytes()).isEqualTo(8192 + 4);
    assertThat(Files.getAttribute(tmp.resolve("out/other/b.conf"), "unix:ino"))
        .isEqualTo(Files.getAttribute(tmp.resolve("out/etc/a.conf"), "unix:ino"));
    // a symlink is recreated, never followed
    assertThat(Files.readSymbolicLink(tmp.resolve("out/other/abs")))
        .isEqualTo(Path.of("/etc/passwd"));
  }

  @Test
  void aDirectoryThatContainsItselfIsACycleNotAnEndlessRestore() {
    HandMadeFs fs = new HandMadeFs();
    long a = fs.dir(1, "a");
    fs.dirs.get(a).add(new DirectoryEntry("again", fs.nodes.get(a)));
    assertThatThrownBy(() -> new FileRestorer(fs, tmp.resolve("out")).restore("/a"))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("directory cycle");
  }

  @Test
  void aSymlinkFollowedByADirectoryOfTheSameNameCannotWriteThroughIt() throws Exception {
    Path outside = Files.createDirectories(tmp.resolve("outside"));
    HandMadeFs fs = new HandMadeFs();
    fs.symlink(1, "evil", outside.toString());
    long evil = fs.dir(1, "evil");
    fs.file(evil, "planted", new byte[] {1}, List.of(new Extent(0, 1)), 1);
    assertThatThrownBy(() -> new FileRestorer(fs, tmp.resolve("out")).restore("/"))
        .isInstanceOf(FileAlreadyExistsException.class);
    try (var s = Files.list(outside)) {
      assertThat(s).isEmpty();
    }
  }

  @Test
  void anExistingSymlinkInTheTargetIsNeverWrittenThrough() throws Exception {
    Path outside = Files.createDirectories(tmp.resolve("outside"));
    Path out = Files.createDirectories(tmp.resolve("out"));
    Files.createSymbolicLink(out.resolve("etc"), outside);
    HandMadeFs fs = new HandMadeFs();
    long etc = fs.dir(1, "etc");
    fs.file(etc, "x", new byte[] {1}, List.of(new Extent(0, 1)), 1);
    assertThatThrownBy(() -> new FileRestorer(fs, out).restore("/"))
        .isInstanceOf(FileAlreadyExistsException.class);
    try (var s = Files.list(outside)) {
      assertThat(s).isEmpty();
    }
    assertThat(Files.isSymbolicLink(out.resolve("etc"))).isTrue();
    assertThat(Files.exists(out.resolve("etc"), LinkOption.NOFOLLOW_LINKS)).isTrue();
  }

  @Test
  void absurdDepthIsBounded() {
    HandMadeFs fs = new HandMadeFs();
    long d = 1;
    for (int i = 0; i < FileRestorer.MAX_DEPTH + 5; i++) {
      d = fs.dir(d, "d");
    }
    assertThatThrownBy(() -> new FileRestorer(fs, tmp.resolve("out")).restore("/"))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("deeper than " + FileRestorer.MAX_DEPTH);
  }
}
