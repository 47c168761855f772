package io.granule.engine.internal.ops;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import java.io.IOException;
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
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
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

  /** A file restored: its path relative to the target and its {@code unix:dev,ino}. */
  private record Restored(String relative, Object identity) {}

  /**
   * What a restore did; {@code setIdCleared}: files and directories whose set-user-ID or
   * set-group-ID bit a root restore did not restore (see {@link #keepSetId}).
   */
  public record Result(
      long files, long directories, long symlinks, long hardLinks, long bytes, long setIdCleared) {}

  private final FileSystem fs;
  private final Path root;
  private final boolean asRoot;
  private final boolean clearsSetId;
  private boolean keepSetId;
  private long setIdCleared;

  /** Files with several links restored so far: their path under the target and identity. */
  private final Map<Long, Restored> restoredInodes = new HashMap<>();

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
    // resolved once, from a held directory down (links of other users refused), and the missing
    // directories made through it: a user who flips a component of the path to a link meanwhile
    // cannot send the restore into a directory of his choosing
    SafePath.Location at = SafePath.locate(target);
    DirectoryHandle dir = at.dir();
    try {
      if (at.exists() && !at.isDirectory()) {
        throw new java.nio.file.FileAlreadyExistsException(
            target.toString(), null, "is not a directory: name a directory to restore into");
      }
      Path shown = dir.shown();
      boolean made = false;
      for (String name : at.rest().isEmpty() ? new String[0] : at.rest().split("/")) {
        shown = shown.resolve(name);
        try {
          Files.createDirectory(dir.entry(name));
          made = true;
        } catch (java.nio.file.FileAlreadyExistsException e) {
          // there, or made meanwhile: opened below without following a link, or refused
          made = false;
        }
        DirectoryHandle next = dir.child(name, shown);
        dir.close();
        dir = next;
      }
      this.madeTarget = made;
      this.root = dir.held() ? dir.self().toRealPath() : shown;
      this.rootIdentity = dir.held() ? Files.readAttributes(dir.self(), "unix:dev,ino") : null;
    } finally {
      dir.close();
    }
    // root's rules wherever root's powers are (a capability too, not only uid 0)
    this.asRoot = Privilege.chownsFiles();
    this.clearsSetId = Privilege.ownsAnyFile();
  }

  /**
   * Whether this restorer made the target directory (it was missing). Only then does a restore of
   * the filesystem's root give it the root directory's owner, mode and times: a directory that
   * existed is the caller's (root's {@code --to /srv/restores} was handed to the image's owner,
   * mode 0777, with root's files in it).
   */
  private final boolean madeTarget;

  /** The target directory's device and inode as resolved, or null without the library. */
  private final Object rootIdentity;

  /**
   * The target directory, held open: the one resolved and checked (another directory at its path
   * now is refused).
   */
  private DirectoryHandle rootHandle() throws IOException {
    return DirectoryHandle.open(root, root, rootIdentity);
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
   * Whether a root restore gives files and directories their set-user-ID and set-group-ID bits
   * (false by default). The files come from a disk whose owner may not be root's to trust (a
   * tenant's VM): restored as root with the snapshot's owners, a set-user-ID program of uid 0 from
   * that disk, in a directory the tenant can reach, made him root. Cleared ones are counted ({@link
   * Result#setIdCleared}). A restore by another user keeps them (the files are that user's).
   */
  public FileRestorer keepSetId(boolean keep) {
    this.keepSetId = keep;
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
    try (DirectoryHandle r = rootHandle()) {
      restoreChildren(node, r, 0);
      dirsOnPath.remove(node.id());
      applyDirectoryMetadata(r, node);
    }
    return new Result(files, dirs, links, hardLinks, bytes, setIdCleared);
  }

  /**
   * Restores the object at {@code path} (a file, symlink or directory tree) into the target as
   * {@code TARGET/NAME}, NAME being the last component of {@code path} (or the whole filesystem's
   * contents for {@code /}: the target gets the root directory's owner, mode and times only if this
   * restorer made it).
   */
  public Result restore(String path) throws IOException {
    FileNode node = fs.lookup(path);
    String name = lastName(path);
    try (DirectoryHandle r = rootHandle()) {
      if (name == null) {
        restoreChildren(node, r, 0);
        if (madeTarget) {
          applyDirectoryMetadata(r, node);
        }
      } else {
        restore(node, name, r, 0);
      }
    }
    return new Result(files, dirs, links, hardLinks, bytes, setIdCleared);
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

  /**
   * Restores {@code node} as entry {@code name} of {@code dir}: made through the open directory
   * ({@link DirectoryHandle}), named {@code target} in messages.
   */
  private void restore(FileNode node, String name, DirectoryHandle dir, int depth)
      throws IOException {
    Path parent = dir.shown();
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
    Path at = dir.entry(name);
    if (Files.exists(at, LinkOption.NOFOLLOW_LINKS)) {
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
        // the owner's alone until its contents are done and its own mode is set: made 0755, a
        // 0700 directory's files could be read by anyone while the restore ran
        Files.createDirectory(
            at,
            java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        Object made = Files.readAttributes(at, "unix:dev,ino", LinkOption.NOFOLLOW_LINKS);
        dirs++;
        // entered through its descriptor: swapped for a link or another directory meanwhile,
        // it is refused, and once open, renaming it changes nothing
        try (DirectoryHandle child = DirectoryHandle.open(at, target, made)) {
          if (child.held()) {
            DirectoryHandle.dropInheritedAcl(child.self(), true);
          }
          restoreChildren(node, child, depth + 1);
          dirsOnPath.remove(node.id());
          applyDirectoryMetadata(child, node);
        }
      }
      case SYMLINK -> {
        String linkTarget = fs.readLink(node);
        Files.createSymbolicLink(at, Path.of(linkTarget));
        links++;
        if (dir.held() && asRoot && node.uid() >= 0 && node.gid() >= 0) {
          // given its owner through a descriptor of the link itself, if it is still the link
          // made: a file renamed over it meanwhile is not made the snapshot owner's
          try (DirectoryHandle.NewFile made = dir.pin(name)) {
            made.chownLink(linkTarget, (int) node.uid(), (int) node.gid());
          }
        } else {
          setOwner(at, node);
        }
        // a symlink's own times (lutimes); its permissions are not settable on Linux
        PosixFileAttributeView view =
            Files.getFileAttributeView(at, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS);
        FileTime mtime = FileTime.from(node.modified());
        view.setTimes(
            mtime, node.accessed() == null ? mtime : FileTime.from(node.accessed()), null);
      }
      case FILE -> {
        Restored first = node.linkCount() > 1 ? restoredInodes.get(node.id()) : null;
        if (first != null) {
          link(first, at, target);
          hardLinks++;
          return;
        }
        Object identity;
        if (dir.held()) {
          // Made and held open, written, and given its owner and mode through its descriptor:
          // someone who can write the directory and renames a file of theirs over the name
          // meanwhile does not get it chowned and made set-user-ID.
          try (DirectoryHandle.NewFile made = dir.create(name)) {
            DirectoryHandle.dropInheritedAcl(made.self(), false);
            copy(node, made.self(), target, false);
            files++;
            identity = Files.readAttributes(made.self(), "unix:dev,ino");
            Object named;
            try {
              named = Files.readAttributes(at, "unix:dev,ino", LinkOption.NOFOLLOW_LINKS);
            } catch (java.nio.file.NoSuchFileException e) {
              named = null;
            }
            if (!identity.equals(named)) {
              throw new java.nio.file.FileSystemException(
                  null,
                  null,
                  "'"
                      + target
                      + "' was replaced or removed while the restore wrote it (someone else can"
                      + " write its directory): its owner and mode were not set; restore into a"
                      + " directory only you can write");
            }
            applyMetadata(made.self(), node, new LinkOption[0]);
          }
        } else {
          copy(node, at, target, true);
          files++;
          identity = Files.readAttributes(at, "unix:dev,ino", LinkOption.NOFOLLOW_LINKS);
          applyMetadata(at, node);
        }
        if (node.linkCount() > 1) {
          restoredInodes.put(node.id(), new Restored(root.relativize(target).toString(), identity));
        }
      }
      case OTHER -> {
        // devices, FIFOs, sockets: nothing to copy
      }
    }
  }

  /**
   * Makes {@code at} (named {@code target} in messages) a hard link to the file restored first as
   * {@code first}. The first file is reached from the target directory one directory at a time,
   * each opened without following a link, and the link made must be that file (device and inode):
   * someone who can write the target and swaps a directory on the way for a link, or the file for
   * another, cannot make the restore link a file from outside the target.
   */
  private void link(Restored first, Path at, Path target) throws IOException {
    String[] parts = first.relative().split("/");
    List<DirectoryHandle> opened = new ArrayList<>();
    try {
      DirectoryHandle dir = rootHandle();
      opened.add(dir);
      for (int i = 0; i < parts.length - 1; i++) {
        dir = DirectoryHandle.open(dir.entry(parts[i]), dir.shown().resolve(parts[i]), null);
        opened.add(dir);
      }
      Files.createLink(at, dir.entry(parts[parts.length - 1]));
    } finally {
      IOException failed = null;
      for (DirectoryHandle h : opened) {
        try {
          h.close();
        } catch (IOException e) {
          failed = e;
        }
      }
      if (failed != null) {
        throw failed;
      }
    }
    Object linked = Files.readAttributes(at, "unix:dev,ino", LinkOption.NOFOLLOW_LINKS);
    if (!first.identity().equals(linked)) {
      Files.deleteIfExists(at);
      throw new java.nio.file.FileSystemException(
          null,
          null,
          "refusing to link '"
              + target
              + "' to '"
              + root.resolve(first.relative())
              + "': that file was replaced while the restore ran");
    }
  }

  private void restoreChildren(FileNode dir, DirectoryHandle target, int depth) throws IOException {
    for (DirectoryEntry e : fs.list(dir)) {
      restore(e.node(), e.name(), target, depth);
    }
  }

  /**
   * Copies file {@code node} to {@code at}, named {@code target} in messages: a new file made by
   * this open if {@code create}, else the file made and held open ({@code /proc/self/fd/N}).
   */
  private void copy(FileNode node, Path at, Path target, boolean create) throws IOException {
    try (FileChannel out =
        create
            // 0600 until its own mode is set once it is complete: made 0644, a file of a 0600
            // kind (a key, /etc/shadow) could be opened by anyone while it was written
            ? FileChannel.open(
                at,
                java.util.Set.of(
                    StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE,
                    LinkOption.NOFOLLOW_LINKS),
                java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")))
            : FileChannel.open(at, StandardOpenOption.WRITE)) {
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
      if (out.size() < node.size()) {
        // a trailing hole: the size through this descriptor, not the name (a link swapped in
        // meanwhile would be followed): one zero byte at the end, the rest a hole
        out.write(ByteBuffer.allocate(1), node.size() - 1);
      }
      if (durable) {
        out.force(true);
      }
    }
  }

  /**
   * Gives directory {@code dir} the owner, mode and times of {@code node}: through its descriptor
   * ({@code /proc/self/fd/N}, followed) when held, the directory made wherever it is now.
   */
  private void applyDirectoryMetadata(DirectoryHandle dir, FileNode node) throws IOException {
    if (dir.held()) {
      applyMetadata(dir.self(), node, new LinkOption[0]);
    } else {
      applyMetadata(dir.shown(), node);
    }
  }

  private void applyMetadata(Path target, FileNode node) throws IOException {
    applyMetadata(target, node, new LinkOption[] {LinkOption.NOFOLLOW_LINKS});
  }

  private void applyMetadata(Path target, FileNode node, LinkOption[] options) throws IOException {
    PosixFileAttributeView view =
        Files.getFileAttributeView(target, PosixFileAttributeView.class, options);
    if (view != null) {
      // the owner first: a chown clears set-user-ID and set-group-ID
      setOwner(target, node, options);
      int mode = node.mode() & 07777;
      if (clearsSetId && !keepSetId && (mode & 06000) != 0) {
        mode &= ~06000;
        setIdCleared++;
      }
      if ((mode & 07000) != 0) {
        // set-user-ID, set-group-ID, sticky (a restored /tmp must stay sticky): chmod(2) itself
        Files.setAttribute(target, "unix:mode", mode, options);
      } else {
        view.setPermissions(permissions(mode));
      }
      FileTime mtime = FileTime.from(node.modified());
      FileTime atime = node.accessed() == null ? mtime : FileTime.from(node.accessed());
      view.setTimes(mtime, atime, null);
    }
  }

  private void setOwner(Path target, FileNode node) throws IOException {
    setOwner(target, node, new LinkOption[] {LinkOption.NOFOLLOW_LINKS});
  }

  private void setOwner(Path target, FileNode node, LinkOption[] options) throws IOException {
    if (asRoot && node.uid() >= 0 && node.gid() >= 0) {
      Files.setAttribute(target, "unix:uid", (int) node.uid(), options);
      Files.setAttribute(target, "unix:gid", (int) node.gid(), options);
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
