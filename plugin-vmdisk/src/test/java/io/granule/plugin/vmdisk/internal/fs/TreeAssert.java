package io.granule.plugin.vmdisk.internal.fs;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** Compares what a {@link FileSystem} reader sees with the source tree mkfs copied in. */
public final class TreeAssert {
  private final FileSystem fs;
  private final Path root;
  private final Set<String> ignoredAtRoot;
  private final boolean checkOwners;
  private final boolean checkTimes;
  private final boolean checkPosix;
  private final Map<Long, Long> fsIdByHostInode = new HashMap<>();
  private final Map<Long, Long> hostInodeByFsId = new HashMap<>();
  private int files;

  private TreeAssert(
      FileSystem fs, Path root, Set<String> ignoredAtRoot, boolean checkTimes, boolean checkPosix)
      throws IOException {
    this.checkTimes = checkTimes;
    this.checkPosix = checkPosix;
    this.fs = fs;
    this.root = root;
    this.ignoredAtRoot = ignoredAtRoot;
    this.checkOwners = FixtureTree.isRoot();
  }

  /**
   * Asserts that every file, directory and link under {@code root} is in {@code fs} with the same
   * content and attributes, and nothing else is (except {@code ignoredAtRoot} names).
   *
   * @return the number of objects compared
   */
  public static int assertSameTree(FileSystem fs, Path root, String... ignoredAtRoot)
      throws Exception {
    return assertSameTree(fs, root, true, ignoredAtRoot);
  }

  /**
   * As {@link #assertSameTree(FileSystem, Path, String...)}; without {@code checkTimes}, for images
   * whose tool does not copy times (mkfs.xfs -p).
   */
  public static int assertSameTree(
      FileSystem fs, Path root, boolean checkTimes, String... ignoredAtRoot) throws Exception {
    return assertSameTree(fs, root, checkTimes, true, ignoredAtRoot);
  }

  /**
   * As {@link #assertSameTree(FileSystem, Path, String...)}; without {@code checkPosix}, for
   * filesystems that record no POSIX mode and owner (NTFS).
   */
  public static int assertSameTree(
      FileSystem fs, Path root, boolean checkTimes, boolean checkPosix, String... ignoredAtRoot)
      throws Exception {
    TreeAssert t = new TreeAssert(fs, root, Set.of(ignoredAtRoot), checkTimes, checkPosix);
    FileNode r = fs.root();
    assertThat(r.kind()).isEqualTo(FileKind.DIRECTORY);
    assertThat(fs.lookup("/")).isEqualTo(r);
    t.directory(r, root, "");
    return t.files;
  }

  private void directory(FileNode dir, Path host, String rel) throws Exception {
    List<DirectoryEntry> entries = fs.list(dir);
    Set<String> names = new HashSet<>();
    for (DirectoryEntry e : entries) {
      assertThat(names.add(e.name())).as("duplicate %s/%s", rel, e.name()).isTrue();
    }
    if (rel.isEmpty()) {
      names.removeAll(ignoredAtRoot);
    }
    Set<String> hostNames;
    try (Stream<Path> s = Files.list(host)) {
      hostNames = s.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
    }
    assertThat(names).as("entries of '%s'", rel).isEqualTo(hostNames);
    boolean lookups = entries.size() < 100;
    for (DirectoryEntry e : entries) {
      if (!hostNames.contains(e.name())) {
        continue;
      }
      String path = rel + "/" + e.name();
      Path h = host.resolve(e.name());
      FileNode n = e.node();
      compareAttributes(n, h, path);
      if (lookups) {
        assertThat(fs.lookup(path)).as("lookup %s", path).isEqualTo(n);
      }
      files++;
      switch (n.kind()) {
        case DIRECTORY -> directory(n, h, path);
        case FILE -> {
          assertThat(sha256(fs, n)).as("content of %s", path).isEqualTo(sha256(h));
          assertAllocationCoversData(fs, n, h, path);
        }
        case SYMLINK ->
            assertThat(fs.readLink(n))
                .as("target of %s", path)
                .isEqualTo(Files.readSymbolicLink(h).toString());
        case OTHER ->
            assertThat(
                    Files.readAttributes(
                            h,
                            java.nio.file.attribute.BasicFileAttributes.class,
                            LinkOption.NOFOLLOW_LINKS)
                        .isOther())
                .as("%s is special", path)
                .isTrue();
        default -> throw new AssertionError(n.kind());
      }
    }
  }

  private void compareAttributes(FileNode n, Path h, String path) throws IOException {
    Map<String, Object> a = Files.readAttributes(h, "unix:*", LinkOption.NOFOLLOW_LINKS);
    FileKind kind =
        Files.isSymbolicLink(h)
            ? FileKind.SYMLINK
            : Files.isDirectory(h, LinkOption.NOFOLLOW_LINKS)
                ? FileKind.DIRECTORY
                : Files.isRegularFile(h, LinkOption.NOFOLLOW_LINKS)
                    ? FileKind.FILE
                    : FileKind.OTHER;
    assertThat(n.kind()).as("kind of %s", path).isEqualTo(kind);
    if (checkPosix) {
      assertThat(n.mode()).as("mode of %s", path).isEqualTo((Integer) a.get("mode") & 07777);
    }
    if (checkTimes) {
      assertThat(n.modified().getEpochSecond())
          .as("mtime of %s", path)
          .isEqualTo(((FileTime) a.get("lastModifiedTime")).toInstant().getEpochSecond());
    }
    if (checkOwners && checkPosix) {
      assertThat(n.uid()).as("uid of %s", path).isEqualTo(((Integer) a.get("uid")).longValue());
      assertThat(n.gid()).as("gid of %s", path).isEqualTo(((Integer) a.get("gid")).longValue());
    }
    if (kind != FileKind.DIRECTORY) {
      assertThat(n.linkCount())
          .as("links of %s", path)
          .isEqualTo(((Integer) a.get("nlink")).longValue());
    }
    if (kind == FileKind.FILE || kind == FileKind.SYMLINK) {
      assertThat(n.size()).as("size of %s", path).isEqualTo((Long) a.get("size"));
    }
    long hostInode = (Long) a.get("ino");
    Long known = fsIdByHostInode.putIfAbsent(hostInode, n.id());
    assertThat(known == null ? n.id() : known)
        .as("hard links of %s share an id", path)
        .isEqualTo(n.id());
    Long knownHost = hostInodeByFsId.putIfAbsent(n.id(), hostInode);
    assertThat(knownHost == null ? hostInode : knownHost)
        .as("%s has an id of its own", path)
        .isEqualTo(hostInode);
  }

  /** Every non-zero byte of the file lies in an allocated extent, and extents fit the file. */
  private static void assertAllocationCoversData(FileSystem fs, FileNode n, Path h, String path)
      throws IOException {
    List<Extent> allocation = fs.allocation(n);
    byte[] data = Files.readAllBytes(h);
    long previousEnd = 0;
    for (Extent e : allocation) {
      assertThat(e.offset())
          .as("allocation of %s sorted", path)
          .isGreaterThanOrEqualTo(previousEnd);
      assertThat(e.end())
          .as("allocation of %s within the file", path)
          .isLessThanOrEqualTo(n.size());
      previousEnd = e.end();
    }
    int index = 0;
    for (int i = 0; i < data.length; i++) {
      if (data[i] == 0) {
        continue;
      }
      while (index < allocation.size() && allocation.get(index).end() <= i) {
        index++;
      }
      assertThat(index < allocation.size() && allocation.get(index).offset() <= i)
          .as("byte %d of %s is allocated", i, path)
          .isTrue();
    }
  }

  /** Reads the whole file through the reader in odd-sized pieces. */
  public static String sha256(FileSystem fs, FileNode n) throws IOException {
    MessageDigest md = digest();
    ByteBuffer b = ByteBuffer.allocate(100_003);
    long position = 0;
    while (true) {
      b.clear();
      int got = fs.read(n, position, b);
      if (got < 0) {
        break;
      }
      position += got;
      md.update(b.flip());
    }
    assertThat(position).isEqualTo(n.size());
    return HexFormat.of().formatHex(md.digest());
  }

  public static String sha256(Path file) throws IOException {
    return HexFormat.of().formatHex(digest().digest(Files.readAllBytes(file)));
  }

  private static MessageDigest digest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
