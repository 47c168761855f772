package io.granule.engine.internal.image;

import io.granule.engine.internal.ops.DirectoryHandle;
import io.granule.engine.internal.ops.SafePath;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * A mount point to freeze, resolved once and held: resolved with {@link SafePath}'s rules (no
 * symbolic link in or below a directory another user owns or others can write, none of another
 * user's), required to be the root of a mount, and held open, so that every later step (the
 * refused-filesystem check, the record's device and mount id, {@code fsfreeze -f} and {@code
 * fsfreeze -u}) reaches the filesystem resolved, not whatever the name leads to by then. fsfreeze
 * is given {@link #at()}, {@code /proc/PID/fd/N} of this process, which the kernel resolves through
 * the held descriptor. A name resolved again at each step let a user who can rename a directory on
 * the way make root freeze another filesystem, and thaw the first (which was not frozen).
 *
 * <p>Without {@code libgranule-native} (or {@code /proc}), the same rules are checked by name and
 * the path is used by name: a race remains, as the README says.
 *
 * <p>Not thread-safe; closed once its mount is known thawed.
 */
final class FreezeTarget implements AutoCloseable {
  /**
   * Whether directories stand in for mounts (tests of the bookkeeping): no mount-root requirement,
   * and no refusal of the filesystems of this process's own files.
   */
  static volatile boolean directoriesStandIn = false;

  private final Path named;
  private final Path real;
  private final Path at;
  private final long dev;
  private final long mountId;
  private final DirectoryHandle held; // null when used by name

  private FreezeTarget(
      Path named, Path real, Path at, long dev, long mountId, DirectoryHandle held) {
    this.named = named;
    this.real = real;
    this.at = at;
    this.dev = dev;
    this.mountId = mountId;
    this.held = held;
  }

  /**
   * Resolves and holds {@code named}.
   *
   * @throws IOException naming the target if it is not a directory, is reached through a link
   *     another user chose, or is not a mount point (then naming the mount point it is under)
   */
  static FreezeTarget resolve(Path named) throws IOException {
    FreezeTarget t = open(named, "freeze target ");
    try {
      if (!directoriesStandIn) {
        t.requireMountRoot();
      }
      return t;
    } catch (IOException | RuntimeException e) {
      t.close();
      throw e;
    }
  }

  /**
   * Resolves and holds the mount point a freeze record names, for {@link FsFreeze#thawStale}: by
   * the same rules, and with no mount-root requirement (whether it is still the filesystem frozen
   * is the record's test).
   */
  static FreezeTarget forThaw(Path mount) throws IOException {
    return open(mount, "recorded frozen mount ");
  }

  private static FreezeTarget open(Path named, String role) throws IOException {
    SafePath.Location loc;
    try {
      loc = SafePath.locate(named);
    } catch (SafePath.ChosenLink e) {
      throw new IOException(
          "unable to freeze: "
              + e.describe(
                  role, "a freeze through it would freeze (and leave frozen) a filesystem"),
          e);
    }
    DirectoryHandle dir;
    try {
      if (loc.rest().isEmpty()) {
        dir = loc.dir();
      } else if (loc.exists() && loc.name() != null && loc.isDirectory()) {
        // the last name is held in turn, not through a link renamed over it meanwhile
        dir = loc.dir().child(loc.name(), loc.dir().shown().resolve(loc.name()));
        loc.close();
      } else {
        throw new IOException(
            "unable to freeze '"
                + named
                + "': "
                + (loc.exists() ? "not a directory" : "no such directory")
                + " (name the mount point of the application's filesystem)");
      }
    } catch (IOException | RuntimeException e) {
      loc.close();
      throw e;
    }
    try {
      Path at;
      Path real;
      OptionalLong mountId;
      if (dir.held()) {
        // the kernel's name of the directory held, and one a child process resolves through it
        real = Files.readSymbolicLink(dir.self());
        at = Path.of("/proc/" + ProcessHandle.current().pid() + "/fd/" + dir.self().getFileName());
        mountId = MountInfo.mountIdOfDescriptor(dir.self());
      } else {
        real = dir.shown().toRealPath();
        at = real;
        mountId = FreezeRecord.mountIdIn(MountInfo.read(MountInfo.SELF), real);
      }
      long dev = ((Number) Files.getAttribute(at, "unix:dev")).longValue();
      return new FreezeTarget(named, real, at, dev, mountId.orElse(-1), dir.held() ? dir : null);
    } catch (IOException | RuntimeException e) {
      dir.close();
      throw e;
    }
  }

  private void requireMountRoot() throws IOException {
    String info = MountInfo.read(MountInfo.SELF);
    Optional<Path> mp = mountId < 0 ? Optional.empty() : mountPointOf(info, mountId);
    if (mp.isEmpty()) {
      throw new IOException(
          "unable to freeze '" + named + "': cannot tell which mount it is on (is /proc mounted?)");
    }
    if (!mp.get().equals(real)) {
      throw new IOException(
          "unable to freeze '"
              + named
              + "': "
              + (real.equals(named.toAbsolutePath().normalize()) ? "it" : "it ('" + real + "')")
              + " is not a mount point but a directory of the filesystem mounted at '"
              + mp.get()
              + "', and fsfreeze freezes that whole filesystem: name '"
              + mp.get()
              + "' instead");
    }
  }

  /** The path as the user named it. */
  Path named() {
    return named;
  }

  /** Its real path, as the kernel names the directory held. */
  Path real() {
    return real;
  }

  /** Where a child process (fsfreeze) and a stat reach the directory held. */
  Path at() {
    return at;
  }

  /** {@code st_dev} of the directory held. */
  long dev() {
    return dev;
  }

  /** The id of the mount it is the root of (this mount namespace), -1 if unknown. */
  long mountId() {
    return mountId;
  }

  @Override
  public void close() throws IOException {
    if (held != null) {
      held.close();
    }
  }

  /** The mount point of mount {@code id} in {@code mountinfo}. */
  static Optional<Path> mountPointOf(String mountinfo, long id) {
    for (String line : mountinfo.split("\n")) {
      String[] f = line.split(" ");
      if (f.length >= 5 && f[0].equals(Long.toString(id))) {
        return Optional.of(Path.of(BlockDeviceClaim.unescape(f[4])));
      }
    }
    return Optional.empty();
  }
}
