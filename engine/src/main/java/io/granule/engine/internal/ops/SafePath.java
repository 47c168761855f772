package io.granule.engine.internal.ops;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where a restore target is, resolved once and held: each component of its path is opened relative
 * to the directory opened before it, not through a link ({@code O_PATH|O_NOFOLLOW}, through {@code
 * libgranule-native}), and a symbolic link on the way is followed only where root or this process's
 * user owns it. The directory reached is held open, so a user who can write a directory on the way
 * and swaps it for a link (or a link for another) once this is done changes nothing: what was
 * checked is what is written. A check by name followed by a second resolution by name let a user
 * flip a component between the two and send root's restore to a file of root's.
 *
 * <p>Without the library (or {@code /proc}), the same rule is checked by name and the directory is
 * opened by name: a race remains, as the README says.
 */
public final class SafePath {
  private SafePath() {}

  /**
   * A resolved target: the deepest directory that exists, held open, and what is left below it: the
   * target's last name (existing or not), missing directories and the last name, or nothing where
   * the target is that directory.
   *
   * @param dir the directory, held
   * @param rest the names left, '/' separated; empty if the target is {@code dir} itself
   * @param exists whether the last name exists in {@code dir} (then {@code rest} is that one name)
   * @param mode the last name's {@code st_mode} where it exists (not a link: links are followed)
   */
  public record Location(DirectoryHandle dir, String rest, boolean exists, int mode)
      implements AutoCloseable {
    /** The target's path as resolved: the held directory's real path and the rest. */
    public Path real() throws IOException {
      Path d = dir.held() ? dir.self().toRealPath() : dir.shown();
      return rest.isEmpty() ? d : d.resolve(rest);
    }

    /**
     * The target's name in {@link #dir()}, or null where that directory is not the target's own
     * (directories are missing on the way, or the target is that directory).
     */
    public String name() {
      return rest.isEmpty() || rest.contains("/") ? null : rest;
    }

    /** Whether the target exists and is a directory. */
    public boolean isDirectory() {
      return rest.isEmpty() || (exists && (mode & 0170000) == 0040000);
    }

    @Override
    public void close() throws IOException {
      dir.close();
    }
  }

  /**
   * Resolves {@code target} (made absolute), as the class comment says.
   *
   * @throws FileSystemException naming a link on the way that another user owns, or a path that
   *     cannot be resolved (a file where a directory is needed, too many links)
   */
  public static Location locate(Path target) throws IOException {
    Path abs = target.toAbsolutePath().normalize();
    if (!DirectoryHandle.ENABLED) {
      return byName(target, abs);
    }
    byte[] rest = new byte[8192];
    int[] out = new int[4];
    int fd;
    try {
      fd = resolve0((abs + "\0").getBytes(StandardCharsets.UTF_8), rest, out);
    } catch (UnsatisfiedLinkError e) {
      return byName(target, abs);
    }
    String left = new String(rest, 0, Math.max(0, out[0]), StandardCharsets.UTF_8);
    if (fd == -18) { // EXDEV: a link of another user, or in (or below) a directory others change
      throw new ChosenLink(target, left, out[1], out[2] == 2);
    }
    if (fd < 0) {
      throw new FileSystemException(
          target.toString(),
          null,
          "cannot resolve restore target (errno "
              + -fd
              + (-fd == 40 ? ": too many symbolic links" : "")
              + (-fd == 20 ? ": a file where a directory is needed" : "")
              + ")");
    }
    DirectoryHandle dir = DirectoryHandle.adopt(fd);
    return new Location(dir, left, out[2] == 1, out[3]);
  }

  /**
   * Directory {@code dir} (made absolute) reached by the rule of {@link #locate} and held open,
   * named {@code dir} in messages: a symbolic link on the way that another user owns, or one in (or
   * below) a directory others can write, is refused, whoever it leads to; the user's and root's own
   * links are followed. A repository opened through a link that someone who could write the
   * directory above it put in its place was his repository, wherever the user's pins said the
   * user's was (audit15 F1). Without the library, the links are checked by name and the directory
   * is opened by name.
   *
   * @throws ChosenLink naming such a link
   * @throws java.nio.file.NoSuchFileException if there is no such directory
   * @throws java.nio.file.NotDirectoryException if it is not a directory
   */
  public static DirectoryHandle openDirectory(Path dir) throws IOException {
    if (!DirectoryHandle.ENABLED) {
      ForeignLinks.refuseByName(dir);
      return DirectoryHandle.openFollowing(dir);
    }
    Location l = locate(dir);
    if (l.rest().isEmpty()) {
      return l.dir().withShown(dir); // the root directory, say: the handle is the caller's now
    }
    try (l) {
      if (l.name() == null || !l.exists()) {
        throw new java.nio.file.NoSuchFileException(dir.toString());
      }
      if (!l.isDirectory()) {
        throw new java.nio.file.NotDirectoryException(dir.toString());
      }
      // not through a link: one swapped in since the walk is refused (NotDirectoryException)
      DirectoryHandle d = l.dir().subdirectory(l.name());
      if (d == null) {
        throw new java.nio.file.NoSuchFileException(dir.toString());
      }
      return d.withShown(dir);
    }
  }

  /** The refusal of a link of another user ({@code owner}) met on the way to {@code target}. */
  static FileSystemException foreign(Path target, String link, int owner) {
    return new ChosenLink(target, link, owner, false);
  }

  /**
   * A link on the way to a path that another user chose: his own, or any link in (or below) a
   * directory that user owns or others can write ({@code openDirectory}; {@code owner} is then that
   * directory's).
   */
  public static final class ChosenLink extends FileSystemException {
    private static final long serialVersionUID = 1L;
    private final Path target;
    private final String link;
    private final int owner;
    private final boolean openDirectory;

    ChosenLink(Path target, String link, int owner, boolean openDirectory) {
      super(
          null,
          null,
          describe(
              target,
              link,
              owner,
              openDirectory,
              "restore target ",
              "a restore through it would write where"));
      this.target = target;
      this.link = link;
      this.owner = owner;
      this.openDirectory = openDirectory;
    }

    /**
     * The refusal in words: {@code role} names the path ("restore target "), {@code harm} what
     * going through the link would do ("a restore through it would write where").
     */
    public String describe(String role, String harm) {
      return describe(target, link, owner, openDirectory, role, harm);
    }

    private static String describe(
        Path target, String link, int owner, boolean openDirectory, String role, String harm) {
      String on = "'" + link + "' on the way to " + role + "'" + target + "'";
      if (openDirectory) {
        return on
            + " is a symbolic link in (or below) a directory "
            + (owner == 0 || owner == io.granule.engine.internal.net.PeerUser.self()
                ? "others can write"
                : "of uid " + owner)
            + ", who could have put or renamed any link there (one a restore of theirs made,"
            + " say): "
            + harm
            + " they chose; name the real path";
      }
      return on
          + " is a symbolic link owned by uid "
          + owner
          + ", another user: "
          + harm
          + " that user chose; name the real path";
    }
  }

  /** The same rule, by name (no library): links checked, then the directory opened by name. */
  private static Location byName(Path target, Path abs) throws IOException {
    ForeignLinks.refuseByName(target);
    Path at = abs.getRoot();
    java.util.List<String> names = new java.util.ArrayList<>();
    for (Path n : abs) {
      names.add(n.toString());
    }
    int i = 0;
    for (; i < names.size(); i++) {
      Path next = at.resolve(names.get(i));
      if (!Files.exists(next)) {
        break;
      }
      if (i == names.size() - 1) {
        var a = Files.readAttributes(next, "unix:mode");
        return new Location(
            DirectoryHandle.open(at.toRealPath(), at, null),
            names.get(i),
            true,
            (Integer) a.get("mode"));
      }
      at = next.toRealPath();
    }
    String left = String.join("/", names.subList(i, names.size()));
    return new Location(DirectoryHandle.open(at.toRealPath(), at, null), left, false, 0);
  }

  private static native int resolve0(byte[] path, byte[] rest, int[] out);
}
