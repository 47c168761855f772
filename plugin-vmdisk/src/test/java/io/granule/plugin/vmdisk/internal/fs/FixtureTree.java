package io.granule.plugin.vmdisk.internal.fs;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * Builds the source tree that mkfs copies into filesystem images: files of awkward sizes, a sparse
 * file, a fragmented file, symbolic links, hard links, a deep path, a large directory, UTF-8 names,
 * specific modes, owners and times.
 */
public final class FixtureTree {
  /** A symbolic link target too long for an XFS inode's data fork. */
  public static final String LONG_TARGET = "x/".repeat(249) + "yz";

  public static final Instant MTIME = Instant.parse("2001-09-09T01:46:40Z");
  private static final long MIB = 1 << 20;

  private FixtureTree() {}

  /**
   * Builds the tree under {@code root} (created).
   *
   * @param bigDirEntries names in {@code many/} (0 for none)
   * @param fragments data islands in {@code fragments.bin}, one every 64 KiB (0 for none)
   * @param bigFile bytes of {@code big.bin}
   */
  public static Path build(Path root, int bigDirEntries, int fragments, int bigFile)
      throws IOException, InterruptedException {
    return build(root, bigDirEntries, fragments, bigFile, true);
  }

  /**
   * Builds the tree; without {@code linksAndSticky}, leaves out what an mkfs.xfs protofile cannot
   * express (hard links, the sticky bit, names with spaces) or writes wrongly (xfsprogs 6.1 writes
   * remote symbolic link blocks without their v5 header).
   */
  public static Path build(
      Path root, int bigDirEntries, int fragments, int bigFile, boolean linksAndSticky)
      throws IOException, InterruptedException {
    Random random = new Random(42);
    Files.createDirectories(root);
    for (int size : new int[] {0, 1, 59, 60, 61, 1023, 1024, 1025, 4095, 4096, 4097, 65537}) {
      write(root.resolve("size-" + size + ".bin"), bytes(random, size));
    }
    write(root.resolve("big.bin"), bytes(random, bigFile));
    sparse(root.resolve("sparse.bin"), random);
    if (fragments > 0) {
      try (FileChannel ch =
          FileChannel.open(
              root.resolve("fragments.bin"), StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
        for (int i = 0; i < fragments; i++) {
          ch.write(ByteBuffer.wrap(bytes(random, 700)), i * 65536L);
        }
      }
    }
    write(
        root.resolve("résumé.txt"),
        "curriculum vitae\n".getBytes(java.nio.charset.StandardCharsets.UTF_8));
    write(root.resolve("日本.txt"), bytes(random, 333));
    Path uni = Files.createDirectories(root.resolve("ünïcödé-dir"));
    write(uni.resolve("naïve-€.txt"), bytes(random, 10));

    Files.createSymbolicLink(root.resolve("link-short"), Path.of("size-1.bin"));
    Files.createSymbolicLink(
        root.resolve("link-long"),
        Path.of("../" + "a-very-long-directory-name/".repeat(4) + "target-file-name.txt"));
    Files.createSymbolicLink(root.resolve("link-abs"), Path.of("/etc/passwd"));
    if (linksAndSticky) {
      Files.createSymbolicLink(root.resolve("link-500"), Path.of(LONG_TARGET));
    }

    Path hard = root.resolve("hard.txt");
    write(hard, bytes(random, 5000));
    Path sub = Files.createDirectories(root.resolve("sub"));
    if (linksAndSticky) {
      Files.createLink(sub.resolve("hard-again.txt"), hard);
      write(uni.resolve("name with spaces.txt"), bytes(random, 4));
    }
    Path medium = Files.createDirectories(root.resolve("medium"));
    for (int i = 0; i < 150; i++) {
      write(medium.resolve("medium-entry-with-a-longer-name-" + i), new byte[0]);
    }

    Path deep = root;
    for (int i = 0; i < 12; i++) {
      deep = Files.createDirectories(deep.resolve("d" + i));
    }
    write(deep.resolve("leaf.txt"), bytes(random, 12345));

    if (bigDirEntries > 0) {
      Path many = Files.createDirectories(root.resolve("many"));
      List<Integer> order = new ArrayList<>();
      for (int i = 0; i < bigDirEntries; i++) {
        order.add(i);
      }
      Collections.shuffle(order, random);
      for (int i : order) {
        write(
            many.resolve("entry-" + i + "-" + "x".repeat(i % 40)),
            i % 7 == 0 ? bytes(random, i % 300) : new byte[0]);
      }
    }

    Path modes = Files.createDirectories(root.resolve("modes"));
    Path secret = modes.resolve("secret");
    write(secret, bytes(random, 3));
    Files.setPosixFilePermissions(secret, PosixFilePermissions.fromString("rw-------"));
    Path tool = modes.resolve("tool");
    write(tool, bytes(random, 3));
    Path sticky = Files.createDirectories(modes.resolve("sticky"));
    Files.setAttribute(sticky, "unix:mode", linksAndSticky ? 01777 : 0777);
    Tools.run(null, "mkfifo", modes.resolve("fifo").toString());
    if (isRoot()) {
      Files.setAttribute(secret, "unix:uid", 1234);
      Files.setAttribute(secret, "unix:gid", 5678);
      Files.setAttribute(tool, "unix:uid", 70000);
      Files.setAttribute(tool, "unix:gid", 70001);
    }
    Files.setAttribute(tool, "unix:mode", 04755); // after chown, which clears set-user-ID
    Files.setLastModifiedTime(secret, FileTime.from(MTIME));
    Files.setLastModifiedTime(tool, FileTime.from(Instant.parse("1999-12-31T23:59:59Z")));
    Files.setLastModifiedTime(hard, FileTime.from(Instant.parse("2038-01-19T03:14:07Z")));
    Files.setLastModifiedTime(root.resolve("size-1.bin"), FileTime.from(Instant.ofEpochSecond(0)));
    return root;
  }

  public static boolean isRoot() throws IOException {
    return ((Integer) Files.getAttribute(Path.of("/"), "unix:uid", LinkOption.NOFOLLOW_LINKS)) == 0
        && "root".equals(System.getProperty("user.name"));
  }

  private static void sparse(Path path, Random random) throws IOException {
    try (FileChannel ch =
        FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(bytes(random, 10)), 0);
      ch.write(ByteBuffer.wrap(bytes(random, 4096)), 2 * MIB + 100);
      ch.write(ByteBuffer.wrap(bytes(random, 7)), 5 * MIB - 7);
    }
  }

  private static byte[] bytes(Random random, int size) {
    byte[] b = new byte[size];
    random.nextBytes(b);
    return b;
  }

  private static void write(Path path, byte[] data) throws IOException {
    Files.write(path, data);
  }
}
