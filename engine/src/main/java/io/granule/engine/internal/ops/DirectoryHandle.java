package io.granule.engine.internal.ops;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A directory a restore writes into, held open (through {@code libgranule-native}): entries are
 * made through {@code /proc/self/fd/N/NAME}, which the kernel resolves through the open directory
 * itself, not through its name. Someone who can write a parent directory and swaps the directory
 * for a symbolic link (or moves it) mid-restore can then no longer make the restore write outside
 * the target. Where the library or {@code /proc} is missing, the directory's own path is used.
 */
public final class DirectoryHandle implements AutoCloseable {
  static final boolean ENABLED =
      NativeLibrary.unavailableReason() == null && Files.isDirectory(Path.of("/proc/self/fd"));

  private final Path shown;
  private final Path via;
  private final int fd;

  private DirectoryHandle(Path shown, Path via, int fd) {
    this.shown = shown;
    this.via = via;
    this.fd = fd;
  }

  /**
   * Opens directory {@code at} (not through a link at its last component), named {@code shown} in
   * messages; {@code made}, if not null, is the device and inode ({@code unix:dev,ino}) it had when
   * this restore made it: another directory swapped in since is refused.
   */
  public static DirectoryHandle open(Path at, Path shown, Object made) throws IOException {
    if (!ENABLED) {
      return new DirectoryHandle(shown, shown, -1);
    }
    int fd;
    try {
      fd = open0((at.toString() + "\0").getBytes(StandardCharsets.UTF_8));
    } catch (UnsatisfiedLinkError e) {
      return new DirectoryHandle(shown, shown, -1);
    }
    if (fd < 0) {
      throw new java.nio.file.FileSystemException(
          null,
          null,
          "unable to open directory '"
              + shown
              + "' (errno "
              + -fd
              + (-fd == 40 || -fd == 20 ? ": it was replaced while the restore ran" : "")
              + ")");
    }
    DirectoryHandle h = new DirectoryHandle(shown, Path.of("/proc/self/fd/" + fd), fd);
    if (made != null) {
      Object opened;
      try {
        opened = Files.readAttributes(h.via, "unix:dev,ino");
      } catch (IOException | RuntimeException e) {
        h.close();
        throw e;
      }
      if (!made.equals(opened)) {
        h.close();
        throw new java.nio.file.FileSystemException(
            null, null, "directory '" + shown + "' was replaced by another while the restore ran");
      }
    }
    return h;
  }

  /**
   * Holds directory descriptor {@code fd} (an O_PATH one, from {@link SafePath}), named in messages
   * by the path the kernel gives it.
   */
  static DirectoryHandle adopt(int fd) throws IOException {
    Path via = Path.of("/proc/self/fd/" + fd);
    Path shown;
    try {
      shown = Files.readSymbolicLink(via);
    } catch (IOException | RuntimeException e) {
      close0(fd);
      throw e;
    }
    return new DirectoryHandle(shown, via, fd);
  }

  /**
   * This handle named {@code shown} in messages; it holds the same descriptor, so only one of the
   * two may be closed (this one is not used afterwards).
   */
  DirectoryHandle withShown(Path shown) {
    return new DirectoryHandle(shown, via, fd);
  }

  /**
   * Directory {@code name} of this directory, held open in turn (not through a link: one renamed
   * over it meanwhile is refused), named {@code shown} in messages.
   */
  public DirectoryHandle child(String name, Path shown) throws IOException {
    return open(entry(name), shown, null);
  }

  /**
   * Opens directory {@code dir} as the user named it (symbolic links on the way followed, its last
   * component's too: where a store's root lives is its user's choice), held open when {@link
   * #heldAvailable()}, else used by name; for stores that follow nothing below it ({@link
   * #subdirectory}).
   *
   * @throws java.nio.file.NoSuchFileException if there is no such directory
   * @throws java.nio.file.NotDirectoryException if it is not a directory
   */
  public static DirectoryHandle openFollowing(Path dir) throws IOException {
    if (ENABLED) {
      int fd;
      try {
        // "dir/." with O_NOFOLLOW: its last component is "." (no link), so dir's own link is
        // followed
        fd = open0((dir.resolve(".").toString() + "\0").getBytes(StandardCharsets.UTF_8));
      } catch (UnsatisfiedLinkError e) {
        fd = Integer.MIN_VALUE;
      }
      if (fd >= 0) {
        return new DirectoryHandle(dir, Path.of("/proc/self/fd/" + fd), fd);
      }
      if (fd == -2) {
        throw new java.nio.file.NoSuchFileException(dir.toString());
      }
      if (fd == -20) {
        throw new java.nio.file.NotDirectoryException(dir.toString());
      }
      if (fd != Integer.MIN_VALUE) {
        throw new java.nio.file.FileSystemException(
            dir.toString(), null, "unable to open the directory (errno " + -fd + ")");
      }
    }
    java.nio.file.attribute.BasicFileAttributes a =
        Files.readAttributes(dir, java.nio.file.attribute.BasicFileAttributes.class);
    if (!a.isDirectory()) {
      throw new java.nio.file.NotDirectoryException(dir.toString());
    }
    return new DirectoryHandle(dir, dir, -1);
  }

  /**
   * Directory {@code name} of this directory, held open in turn (opened from this one with {@code
   * O_NOFOLLOW|O_DIRECTORY}: never through a link, whatever is renamed in place of {@code name}
   * meanwhile), or null if nothing is there. Where this directory is not held (no library), by name
   * after a look that does not follow a link (not safe against a swap right after it).
   *
   * @throws java.nio.file.NotDirectoryException if {@code name} is a symbolic link or anything else
   *     but a directory
   */
  public DirectoryHandle subdirectory(String name) throws IOException {
    Path shownChild = shown.resolve(name);
    if (fd >= 0) {
      int c = open0((entry(name).toString() + "\0").getBytes(StandardCharsets.UTF_8));
      if (c >= 0) {
        return new DirectoryHandle(shownChild, Path.of("/proc/self/fd/" + c), c);
      }
      if (c == -2) {
        return null;
      }
      if (c == -40 || c == -20) { // ELOOP: a link (O_NOFOLLOW); ENOTDIR: not a directory
        throw new java.nio.file.NotDirectoryException(shownChild.toString());
      }
      throw new java.nio.file.FileSystemException(
          shownChild.toString(), null, "unable to open the directory (errno " + -c + ")");
    }
    java.nio.file.attribute.BasicFileAttributes a;
    try {
      a =
          Files.readAttributes(
              via.resolve(name),
              java.nio.file.attribute.BasicFileAttributes.class,
              java.nio.file.LinkOption.NOFOLLOW_LINKS);
    } catch (java.nio.file.NoSuchFileException e) {
      return null;
    }
    if (!a.isDirectory()) {
      throw new java.nio.file.NotDirectoryException(shownChild.toString());
    }
    return new DirectoryHandle(shownChild, via.resolve(name), -1);
  }

  /**
   * Makes directory {@code name} in this directory (mode 0777 less the umask; a link at {@code
   * name} is not followed: it exists); false if something already is at {@code name}.
   */
  public boolean makeDirectory(String name) throws IOException {
    try {
      Files.createDirectory(entry(name));
      return true;
    } catch (java.nio.file.FileAlreadyExistsException e) {
      return false;
    }
  }

  /**
   * Whether this held directory was removed (no name leads to it any more: its link count is 0);
   * false where it is not held.
   */
  public boolean removed() {
    if (fd < 0) {
      return false;
    }
    try {
      return ((Number) Files.getAttribute(via, "unix:nlink")).intValue() == 0;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /** Whether directories can be held open here (libgranule-native and /proc are there). */
  public static boolean heldAvailable() {
    return ENABLED;
  }

  /** Whether the directory is held open (else its name is used). */
  public boolean held() {
    return fd >= 0;
  }

  /** The directory's name, for messages and include rules. */
  public Path shown() {
    return shown;
  }

  /** Entry {@code name} of this directory, as file operations must name it. */
  public Path entry(String name) {
    return via.resolve(name);
  }

  /**
   * Creates entry {@code name} as a new regular file, held open: {@link NewFile#self()} names that
   * file whatever is renamed over {@code name} meanwhile, so its owner and mode are set on the file
   * made and on no other. Only when {@link #held()}.
   *
   * @throws java.nio.file.FileAlreadyExistsException if anything is at {@code name}, a link too
   */
  public NewFile create(String name) throws IOException {
    if (fd < 0) {
      throw new IllegalStateException("directory '" + shown + "' is not held open");
    }
    Path shownFile = shown.resolve(name);
    int f = create0((entry(name).toString() + "\0").getBytes(StandardCharsets.UTF_8));
    if (f == -17) {
      throw new java.nio.file.FileAlreadyExistsException(
          shownFile.toString(), null, "already exists: restore into an empty directory");
    }
    if (f < 0) {
      throw new java.nio.file.FileSystemException(
          null, null, "unable to create '" + shownFile + "' (errno " + -f + ")");
    }
    return new NewFile(f, shownFile);
  }

  /**
   * Holds entry {@code name} (whatever it is, not through a link: an O_PATH descriptor, which a
   * FIFO does not block): {@link NewFile#self()} then names that file whatever is renamed over
   * {@code name} meanwhile. Only when {@link #held()}.
   */
  public NewFile pin(String name) throws IOException {
    if (fd < 0) {
      throw new IllegalStateException("directory '" + shown + "' is not held open");
    }
    Path shownFile = shown.resolve(name);
    int f = pin0((entry(name).toString() + "\0").getBytes(StandardCharsets.UTF_8));
    if (f == -2) {
      throw new java.nio.file.NoSuchFileException(shownFile.toString());
    }
    if (f < 0) {
      throw new java.nio.file.FileSystemException(
          null,
          null,
          "unable to open '"
              + shownFile
              + "' (errno "
              + -f
              + (-f == 40 ? ": it was replaced by a link while the restore ran" : "")
              + ")");
    }
    return new NewFile(f, shownFile);
  }

  /**
   * Whether {@code p} names a file held open ({@code /proc/self/fd/N}, see {@link NewFile#self}):
   * opened following that link, it is the file held; the entries of a held directory ({@code
   * /proc/self/fd/N/NAME}) are not.
   */
  public static boolean isHeldFile(Path p) {
    return p.getNameCount() == 4 && p.startsWith("/proc/self/fd");
  }

  /** A file {@link #create} made or {@link #pin} holds, held open until closed. */
  public static final class NewFile implements AutoCloseable {
    private final int fd;
    private final Path shown;

    private NewFile(int fd, Path shown) {
      this.fd = fd;
      this.shown = shown;
    }

    /**
     * The file made, as file operations must name it ({@code /proc/self/fd/N}: opened, stat'ed,
     * chmod'ed or chown'ed following this link, they act on the file made).
     */
    public Path self() {
      return Path.of("/proc/self/fd/" + fd);
    }

    /**
     * Gives the symbolic link {@link #pin} holds owner {@code uid:gid}, if it is still a link to
     * {@code target}: a file (or another link) renamed over the one the restore made is not given
     * the snapshot's owner.
     *
     * @throws java.nio.file.FileSystemException if it was replaced, or the owner cannot be set
     */
    public void chownLink(String target, int uid, int gid) throws IOException {
      // the bytes the JDK wrote the link with (file names use the platform's encoding)
      java.nio.charset.Charset names =
          java.nio.charset.Charset.forName(System.getProperty("sun.jnu.encoding", "UTF-8"));
      int r = chownLink0(fd, (target + "\0").getBytes(names), uid, gid);
      if (r == -22 || r == -116) { // EINVAL: not a link; ESTALE: another target
        throw new java.nio.file.FileSystemException(
            null,
            null,
            "'"
                + shown
                + "' was replaced while the restore made it (someone else can write its"
                + " directory): its owner was not set; restore into a directory only you can"
                + " write");
      }
      if (r < 0) {
        throw new java.nio.file.FileSystemException(
            null, null, "unable to set the owner of link '" + shown + "' (errno " + -r + ")");
      }
    }

    /**
     * Gives the file held (the one {@link #create} made, whatever was renamed over its name since)
     * the new name {@code at}, an entry of a held directory.
     *
     * @throws java.nio.file.FileAlreadyExistsException if anything is at {@code at}, a link too
     */
    public void link(Path at, Path shownAt) throws IOException {
      int r = linkHeld0(fd, (at.toString() + "\0").getBytes(StandardCharsets.UTF_8));
      if (r == -17) {
        throw new java.nio.file.FileAlreadyExistsException(shownAt.toString());
      }
      if (r == -2) {
        throw new java.nio.file.NoSuchFileException(shownAt.toString());
      }
      if (r < 0) {
        throw new java.nio.file.FileSystemException(
            null, null, "unable to name '" + shown + "' '" + shownAt + "' (errno " + -r + ")");
      }
    }

    @Override
    public void close() throws IOException {
      int r = close0(fd);
      if (r != 0) {
        throw new IOException("unable to close '" + shown + "': errno " + -r);
      }
    }
  }

  /** The directory itself, as file operations must name it. */
  public Path self() {
    return via;
  }

  @Override
  public void close() throws IOException {
    if (fd >= 0) {
      int r = close0(fd);
      if (r != 0) {
        throw new IOException("unable to close directory '" + shown + "': errno " + -r);
      }
    }
  }

  /**
   * Removes the ACLs file {@code p} inherited from a default ACL of its directory (through a held
   * name such as {@link NewFile#self()}): the restored file keeps the snapshot's mode, and no entry
   * a user put on the target directory (setfacl -d) lets him read what it holds. A no-op without
   * the library.
   */
  public static void dropInheritedAcl(Path p, boolean directory) throws IOException {
    if (!ENABLED) {
      return;
    }
    int r;
    try {
      r = dropAcl0((p.toString() + "\0").getBytes(StandardCharsets.UTF_8), directory);
    } catch (UnsatisfiedLinkError e) {
      return;
    }
    if (r < 0) {
      throw new java.nio.file.FileSystemException(
          p.toString(), null, "unable to remove an inherited ACL (errno " + -r + ")");
    }
  }

  private static native int dropAcl0(byte[] path, boolean directory);

  private static native int open0(byte[] path);

  private static native int close0(int fd);

  private static native int create0(byte[] path);

  private static native int pin0(byte[] path);

  private static native int linkHeld0(int fd, byte[] path);

  private static native int chownLink0(int fd, byte[] expected, int uid, int gid);
}
