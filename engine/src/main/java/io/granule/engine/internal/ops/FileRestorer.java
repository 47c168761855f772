package io.granule.engine.internal.ops;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Copies a file or a directory tree out of a filesystem inside a backup into a local directory.
 *
 * <p>Safe against hostile images: every name is checked ({@link DirectoryEntry#isValidName}), every
 * target path must stay inside the target directory, nothing existing is followed or overwritten
 * (existing files and symlinks in the way are errors), symlinks are recreated as symlinks and never
 * followed, a directory reached twice (a cycle) is an error, and depth is bounded. Sparse files
 * stay sparse: only allocated ranges are read and written. Hard links are restored as hard links.
 * Mode, modification time and (as root) owner are restored; directories get their times after their
 * contents. Not thread-safe.
 */
public final class FileRestorer {
  static final int MAX_DEPTH = 1024;
  private static final int BUFFER = 1 << 20;

  /** What a restore did. */
  public record Result(long files, long directories, long symlinks, long hardLinks, long bytes) {}

  private final FileSystem fs;
  private final Path root;
  private final boolean asRoot;
  private final Map<Long, Path> restoredInodes = new HashMap<>();
  private final Set<Long> dirsOnPath = new HashSet<>();
  private final ByteBuffer buffer = ByteBuffer.allocate(BUFFER);
  private long files;
  private long dirs;
  private long links;
  private long hardLinks;
  private long bytes;
  private Predicate<String> include = rel -> true;
  private boolean durable = true;

  /**
   * @param fs the filesystem to read
   * @param target the directory to restore into; created if missing
   */
  public FileRestorer(FileSystem fs, Path target) throws IOException {
    this.fs = fs;
    Files.createDirectories(target);
    this.root = target.toRealPath();
    this.asRoot = "root".equals(System.getProperty("user.name"));
  }

  /**
   * Restores only the entries {@code include} accepts, by their path relative to the target ('/'
   * separators); a directory left out is left out with everything under it.
   */
  public FileRestorer include(Predicate<String> include) {
    this.include = include;
    return this;
  }

  /**
   * Whether each file is flushed to stable storage (the default). Off for scratch copies such as a
   * staging database, where a crash loses nothing of value.
   */
  public FileRestorer durable(boolean durable) {
    this.durable = durable;
    return this;
  }

  /**
   * Restores the contents of directory {@code path} into the target (which must hold none of its
   * names), and gives the target the directory's mode, times and owner.
   *
   * @throws java.nio.file.NotDirectoryException if {@code path} is not a directory
   */
  public Result restoreContents(String path) throws IOException {
    FileNode node = fs.lookup(path);
    if (!node.isDirectory()) {
      throw new java.nio.file.NotDirectoryException(path);
    }
    dirsOnPath.add(node.id());
    restoreChildren(node, root, 0);
    dirsOnPath.remove(node.id());
    applyMetadata(root, node);
    return new Result(files, dirs, links, hardLinks, bytes);
  }

  /**
   * Restores the object at {@code path} (a file, symlink or directory tree) into the target as
   * {@code TARGET/NAME}, NAME being the last component of {@code path} (or the whole filesystem's
   * contents for {@code /}).
   */
  public Result restore(String path) throws IOException {
    FileNode node = fs.lookup(path);
    String name = lastName(path);
    if (name == null) {
      restoreChildren(node, root, 0);
      applyMetadata(root, node);
    } else {
      restore(node, name, root, 0);
    }
    return new Result(files, dirs, links, hardLinks, bytes);
  }

  private static String lastName(String path) {
    String p = path;
    while (p.endsWith("/")) {
      p = p.substring(0, p.length() - 1);
    }
    if (p.isEmpty()) {
      return null;
    }
    return p.substring(p.lastIndexOf('/') + 1);
  }

  private void restore(FileNode node, String name, Path parent, int depth) throws IOException {
    if (!DirectoryEntry.isValidName(name)) {
      throw new IOException("refusing to restore an entry named '" + name + "' under " + parent);
    }
    Path target = parent.resolve(name).normalize();
    if (!target.startsWith(root) || !target.getParent().equals(parent)) {
      throw new IOException("refusing to write '" + target + "': outside " + root);
    }
    if (!include.test(root.relativize(target).toString())) {
      return;
    }
    if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
      throw new FileAlreadyExistsException(
          target.toString(), null, "already exists: restore into an empty directory");
    }
    switch (node.kind()) {
      case DIRECTORY -> {
        if (depth >= MAX_DEPTH) {
          throw new IOException("directory tree deeper than " + MAX_DEPTH + " at " + target);
        }
        if (!dirsOnPath.add(node.id())) {
          throw new IOException("directory cycle: inode " + node.id() + " contains itself");
        }
        Files.createDirectory(target);
        dirs++;
        restoreChildren(node, target, depth + 1);
        dirsOnPath.remove(node.id());
        applyMetadata(target, node);
      }
      case SYMLINK -> {
        Files.createSymbolicLink(target, Path.of(fs.readLink(node)));
        links++;
        setOwner(target, node);
        // a symlink's own times (lutimes); its permissions are not settable on Linux
        PosixFileAttributeView view =
            Files.getFileAttributeView(
                target, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS);
        FileTime mtime = FileTime.from(node.modified());
        view.setTimes(
            mtime, node.accessed() == null ? mtime : FileTime.from(node.accessed()), null);
      }
      case FILE -> {
        Path first = node.linkCount() > 1 ? restoredInodes.get(node.id()) : null;
        if (first != null) {
          Files.createLink(target, first);
          hardLinks++;
          return;
        }
        copy(node, target);
        files++;
        applyMetadata(target, node);
        if (node.linkCount() > 1) {
          restoredInodes.put(node.id(), target);
        }
      }
      case OTHER -> {
        // devices, FIFOs, sockets: nothing to copy
      }
    }
  }

  private void restoreChildren(FileNode dir, Path target, int depth) throws IOException {
    for (DirectoryEntry e : fs.list(dir)) {
      restore(e.node(), e.name(), target, depth);
    }
  }

  private void copy(FileNode node, Path target) throws IOException {
    try (FileChannel out =
        FileChannel.open(
            target,
            StandardOpenOption.CREATE_NEW,
            StandardOpenOption.WRITE,
            LinkOption.NOFOLLOW_LINKS)) {
      for (Extent e : fs.allocation(node)) {
        long pos = e.offset();
        long end = Math.min(e.end(), node.size());
        while (pos < end) {
          buffer.clear();
          buffer.limit((int) Math.min(buffer.capacity(), end - pos));
          int n = fs.read(node, pos, buffer);
          if (n <= 0) {
            throw new IOException(
                "unexpected end of file at " + pos + " of " + node.size() + " bytes: " + target);
          }
          buffer.flip();
          while (buffer.hasRemaining()) {
            pos += out.write(buffer, pos);
          }
          bytes += n;
        }
      }
      if (durable) {
        out.force(true);
      }
    }
    if (Files.size(target) < node.size()) {
      // a trailing hole: extend the file without writing (it stays sparse)
      try (RandomAccessFile raf = new RandomAccessFile(target.toFile(), "rw")) {
        raf.setLength(node.size());
      }
    }
  }

  private void applyMetadata(Path target, FileNode node) throws IOException {
    PosixFileAttributeView view =
        Files.getFileAttributeView(target, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS);
    if (view != null) {
      view.setPermissions(permissions(node.mode()));
      setOwner(target, node);
      FileTime mtime = FileTime.from(node.modified());
      FileTime atime = node.accessed() == null ? mtime : FileTime.from(node.accessed());
      view.setTimes(mtime, atime, null);
    }
  }

  private void setOwner(Path target, FileNode node) throws IOException {
    if (asRoot && node.uid() >= 0 && node.gid() >= 0) {
      Files.setAttribute(target, "unix:uid", (int) node.uid(), LinkOption.NOFOLLOW_LINKS);
      Files.setAttribute(target, "unix:gid", (int) node.gid(), LinkOption.NOFOLLOW_LINKS);
    }
  }

  static Set<PosixFilePermission> permissions(int mode) {
    Set<PosixFilePermission> s = EnumSet.noneOf(PosixFilePermission.class);
    PosixFilePermission[] order = {
      PosixFilePermission.OTHERS_EXECUTE,
      PosixFilePermission.OTHERS_WRITE,
      PosixFilePermission.OTHERS_READ,
      PosixFilePermission.GROUP_EXECUTE,
      PosixFilePermission.GROUP_WRITE,
      PosixFilePermission.GROUP_READ,
      PosixFilePermission.OWNER_EXECUTE,
      PosixFilePermission.OWNER_WRITE,
      PosixFilePermission.OWNER_READ
    };
    for (int i = 0; i < order.length; i++) {
      if ((mode & (1 << i)) != 0) {
        s.add(order[i]);
      }
    }
    return s;
  }
}
