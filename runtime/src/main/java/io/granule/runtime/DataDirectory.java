package io.granule.runtime;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;

/**
 * Where the data directory is by default, and whether it may be used: it holds plugins (code this
 * process runs), configuration and the log, so whoever can write it, or any directory above it, or
 * swap a link on the way, runs code as the user of every granule command that uses it. A root
 * {@code granule --version} run in a directory another user owns ran that user's plugin as root.
 *
 * <p>The check is OpenSSH's {@code StrictModes} for this process's user: every directory from
 * {@code /} to the data directory, and the data directory's {@code plugins/}, {@code config/} and
 * {@code logs/} and their files, must be owned by root or by this user, and writable by no one else
 * (a world-writable directory above it is fine if it is sticky, as {@code /tmp} is, since then only
 * its owner may rename what is in it); a symbolic link on the way must be owned by root or this
 * user too and is checked where it leads. A data directory that does not exist is made (0700) and
 * then checked.
 */
final class DataDirectory {
  private static final int MAX_LINKS = 40;

  private DataDirectory() {}

  /**
   * The default data directory: {@code /var/lib/granule} for root, else {@code
   * $XDG_DATA_HOME/granule} ({@code ~/.local/share/granule}); never the working directory, which
   * may be anyone's.
   */
  static Path defaultFor(Map<String, String> env, long uid, String home) {
    if (uid == 0) {
      return Path.of("/var/lib/granule");
    }
    String xdg = env.get("XDG_DATA_HOME");
    if (xdg != null && xdg.startsWith("/")) {
      return Path.of(xdg, "granule");
    }
    return Path.of(home, ".local", "share", "granule");
  }

  /**
   * Checks {@code data} (absolute, normalized) for this process's user {@code uid}.
   *
   * @throws LaunchException naming the directory or file another user controls, and what to do
   */
  static void check(Path data, long uid) throws LaunchException {
    Path real;
    try {
      real = walk(data, uid);
      if (real == null) {
        // made now (0700) and checked again: left for later, another user who can write a
        // sticky directory above it (/tmp) made it first, between this check and the server's
        // plugins/, and his jar ran as root
        try {
          Files.createDirectories(
              data,
              java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                  java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        } catch (IOException e) {
          // cannot be made (read-only, say): nothing will be loaded from it either
        }
        real = walk(data, uid);
      }
    } catch (IOException e) {
      throw new LaunchException(
          "unable to check the data directory " + data + ": " + e.getMessage(), e);
    }
    if (real == null || !Files.isDirectory(real, LinkOption.NOFOLLOW_LINKS)) {
      return; // not there and cannot be made: nothing is loaded from it
    }
    for (String sub : new String[] {"plugins", "config", "logs"}) {
      Path dir = real.resolve(sub);
      try {
        if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
          continue;
        }
        if (Files.isSymbolicLink(dir) || !Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
          throw refused(data, dir, "is not a directory (a link is not followed here)");
        }
        requireOwn(data, dir, uid, false);
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
          for (Path f : files) {
            if (Files.isDirectory(f, LinkOption.NOFOLLOW_LINKS)) {
              continue; // not read: the folder watcher skips directories (subdir.mode=skip)
            }
            if (Files.isSymbolicLink(f)) {
              throw refused(data, f, "is a symbolic link (a plugin or setting must be a file)");
            }
            requireOwn(data, f, uid, false);
          }
        }
      } catch (IOException e) {
        throw new LaunchException(
            "unable to check the data directory " + data + ": " + e.getMessage(), e);
      }
    }
  }

  /**
   * Makes {@code root}, the cache the runtime's bundles are extracted into, if it is missing
   * (0700), and checks it and every directory above it as the data directory is checked, before
   * anything is extracted into it or cleaned up in it: checked only afterwards, a link another user
   * planted there had root create a file of his choosing, and root's clean-up deleted by name in
   * it.
   *
   * @throws LaunchException naming the directory another user controls, and what to do
   */
  static void prepareCache(Path root, long uid) throws LaunchException {
    Path abs = root.toAbsolutePath().normalize();
    try {
      Path real = walk(abs, uid, "the runtime's bundle cache");
      if (real == null) {
        Files.createDirectories(
            abs,
            java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        real = walk(abs, uid, "the runtime's bundle cache");
      }
      if (real == null) {
        throw new LaunchException("unable to make the bundle cache " + abs);
      }
    } catch (IOException e) {
      throw new LaunchException(
          "unable to check the bundle cache "
              + abs
              + ": "
              + e.getMessage()
              + " (set XDG_CACHE_HOME"
              + " to a directory only you can write)",
          e);
    }
  }

  /**
   * Checks {@code dir}, the directory the runtime's own bundles are installed from, and its jars,
   * for this process's user {@code uid} as {@link #check} checks the data directory.
   *
   * @throws LaunchException naming the directory or file another user controls, and what to do
   */
  static void checkCode(Path dir, long uid) throws LaunchException {
    Path abs = dir.toAbsolutePath().normalize();
    try {
      Path real = walk(abs, uid, "the runtime's bundle cache");
      if (real == null) {
        throw new LaunchException("the runtime's bundle cache " + abs + " is gone: start again");
      }
      try (DirectoryStream<Path> files = Files.newDirectoryStream(real, "*.jar")) {
        for (Path f : files) {
          if (!Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) {
            throw refused(abs, f, "is not a file", "the runtime's bundle cache");
          }
          requireOwn(abs, f, uid, false, "the runtime's bundle cache");
        }
      }
    } catch (IOException e) {
      throw new LaunchException(
          "unable to check the bundle cache " + abs + ": " + e.getMessage(), e);
    }
  }

  /**
   * Checks {@code file}, a plugin or setting the server's folder watcher found in {@code data}
   * after the start: the data directory as {@link #check} does, the folder holding the file, and
   * the file itself (a real file, owned by root or {@code uid}, writable by no one else). The check
   * at start saw only what was there then: a jar another user owned, moved in later (deploying with
   * {@code mv} keeps its owner), was his to rewrite, and the server ran it.
   *
   * @return why it is refused, or null
   */
  static String refusal(Path data, Path file, long uid) {
    try {
      // the way to it and its own folder and file: another file's fault is not this one's
      Path real = walk(data, uid);
      if (real == null) {
        return "the data directory " + data + " is gone";
      }
      Path abs = file.toAbsolutePath().normalize();
      Path rel = data.relativize(abs);
      if (rel.getNameCount() != 2 || rel.startsWith("..")) {
        return file
            + " is not a file of "
            + data.resolve("plugins")
            + " or "
            + data.resolve("config");
      }
      Path f = real.resolve(rel);
      requireOwn(data, f.getParent(), uid, false);
      if (!Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) {
        return f + " is not a file (a link or a directory is not loaded)";
      }
      requireOwn(data, f, uid, false);
      return null;
    } catch (LaunchException e) {
      return e.getMessage();
    } catch (IOException e) {
      return "unable to check " + file + ": " + e.getMessage();
    }
  }

  /**
   * Walks {@code path} from {@code /}, checking each directory and each link met; the real path of
   * the data directory, or null where a component does not exist (the rest is not checked: it is
   * made by this process).
   */
  private static Path walk(Path path, long uid) throws IOException, LaunchException {
    return walk(path, uid, DATA);
  }

  private static Path walk(Path path, long uid, String what) throws IOException, LaunchException {
    Path at = path.getRoot();
    requireOwn(path, at, uid, true, what);
    java.util.ArrayDeque<Path> rest = new java.util.ArrayDeque<>();
    for (Path p : path) {
      rest.add(p);
    }
    int links = 0;
    while (!rest.isEmpty()) {
      Path name = rest.poll();
      String n = name.toString();
      if (n.equals(".")) {
        continue;
      }
      if (n.equals("..")) {
        at = at.getParent() == null ? at : at.getParent();
        continue;
      }
      Path next = at.resolve(n);
      Map<String, Object> a;
      try {
        a = Files.readAttributes(next, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
      } catch (NoSuchFileException e) {
        return null;
      }
      int mode = (Integer) a.get("mode");
      if ((mode & 0170000) == 0120000) {
        int owner = (Integer) a.get("uid");
        if (owner != 0 && owner != uid) {
          throw refused(
              path,
              next,
              "is a symbolic link owned by uid " + owner + ", who could point it elsewhere",
              what);
        }
        if (++links > MAX_LINKS) {
          throw refused(path, next, "leads through too many symbolic links", what);
        }
        Path target = Files.readSymbolicLink(next);
        java.util.ArrayDeque<Path> spliced = new java.util.ArrayDeque<>();
        for (Path p : target) {
          spliced.add(p);
        }
        spliced.addAll(rest);
        rest = spliced;
        if (target.isAbsolute()) {
          at = target.getRoot();
        }
        continue;
      }
      at = next;
      requireOwn(path, at, uid, !rest.isEmpty(), what);
    }
    return at;
  }

  /**
   * {@code p} (in data directory {@code data}) must be owned by root or {@code uid} and writable by
   * no one else; {@code above}: a directory above the data directory, which may be world-writable
   * if sticky.
   */
  private static void requireOwn(Path data, Path p, long uid, boolean above)
      throws IOException, LaunchException {
    requireOwn(data, p, uid, above, DATA);
  }

  private static void requireOwn(Path data, Path p, long uid, boolean above, String what)
      throws IOException, LaunchException {
    Map<String, Object> a = Files.readAttributes(p, "unix:uid,gid,mode", LinkOption.NOFOLLOW_LINKS);
    int owner = (Integer) a.get("uid");
    int mode = (Integer) a.get("mode");
    if (owner != 0 && owner != uid) {
      throw refused(data, p, "is owned by uid " + owner + ", not by you or root", what);
    }
    boolean sticky = (mode & 01000) != 0 && (mode & 0170000) == 0040000;
    // a group of this user's alone (a user private group, under umask 002) is his own (audit K5:
    // a ~/.cache made 0775 refused every command)
    boolean ownGroup = (mode & 0022) == 0020 && !othersIn((Integer) a.get("gid"), uid);
    String acl = ownGroup ? aclWriters(p) : null;
    if ((mode & 0022) != 0 && !(above && sticky) && !(ownGroup && acl == null)) {
      throw refused(
          data,
          p,
          "can be written by "
              + ((mode & 0002) != 0 ? "every user" : acl != null ? acl : "its group")
              + " (mode "
              + Integer.toOctalString(mode & 07777)
              + ")",
          what);
    }
  }

  /**
   * Whether group {@code gid} may have a member other than user {@code uid}: it does unless it is
   * his user private group (root's group 0 for root): his primary group in /etc/passwd, named as he
   * is in /etc/group, with no other member listed there and no other user's primary group (root's
   * group 0 is no exception: audit M). Any other group counts as having others, even one /etc/group
   * lists without members (a process also gets groups from PAM, systemd-userdb, sssd: audit L4).
   * The engine's {@code SourceAccess.othersIn} answers the same for repositories; the launcher
   * cannot use the engine's classes.
   */
  static boolean othersIn(int gid, long uid) {
    return othersIn(gid, uid, Path.of("/etc/passwd"), Path.of("/etc/group"));
  }

  /** {@link #othersIn(int, long)} with these files for /etc/passwd and /etc/group. */
  static boolean othersIn(int gid, long uid, Path passwd, Path group) {
    String self = null;
    int selfGroup = -1;
    try {
      for (String line : Files.readAllLines(passwd, StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 3 && f[2].equals(Long.toString(uid))) {
          self = f[0];
          selfGroup = Integer.parseInt(f[3]);
        } else if (f.length > 3 && f[3].equals(Integer.toString(gid))) {
          return true;
        }
      }
      if (self == null || selfGroup != gid) {
        return true;
      }
      for (String line : Files.readAllLines(group, StandardCharsets.UTF_8)) {
        String[] f = line.split(":", -1);
        if (f.length > 3 && f[2].equals(Integer.toString(gid))) {
          if (!f[0].equals(self)) {
            return true;
          }
          for (String m : f[3].split(",")) {
            if (!m.isEmpty() && !m.equals(self)) {
              return true;
            }
          }
          return false;
        }
      }
    } catch (IOException | NumberFormatException e) {
      return true;
    }
    return true;
  }

  /**
   * Whether an access ACL on {@code p} has a named user or group entry that may write (audit L5:
   * with one, the mode's group bits are its mask, and {@code u:gu1:rwx} passed for a private
   * group's write). Read with {@code getfacl}, asked only where the group-only exception would
   * apply (the runtime has no native library yet); where it cannot be read, as if one did.
   */
  static boolean aclLetsOthersWrite(Path p) {
    return aclWriters(p) != null;
  }

  /**
   * Who {@link #aclLetsOthersWrite} finds may write {@code p} besides its owner and group, as a
   * message says it, or null.
   */
  static String aclWriters(Path p) {
    String out;
    try {
      Process proc =
          new ProcessBuilder(
                  Files.isExecutable(Path.of("/usr/bin/getfacl"))
                      ? "/usr/bin/getfacl"
                      : "/bin/getfacl", // not through $PATH
                  "--absolute-names",
                  "--numeric",
                  "--no-effective",
                  "--skip-base",
                  "--omit-header",
                  "--",
                  p.toString())
              .redirectErrorStream(true)
              .start();
      out = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!proc.waitFor(10, java.util.concurrent.TimeUnit.SECONDS) || proc.exitValue() != 0) {
        proc.destroyForcibly();
        return "anyone, as far as can be told (getfacl failed: " + out.strip() + ")";
      }
    } catch (IOException e) {
      // not known: as if an entry did
      return "anyone, as far as can be told (its ACL cannot be read without getfacl: install the"
          + " acl package, or make it writable by you only)";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "anyone, as far as can be told (interrupted reading its ACL)";
    }
    for (String line : out.split("\n")) {
      String[] f = line.strip().split(":", -1);
      // access entries only ("default:" ones apply to what is made in it, checked there)
      if (f.length == 3
          && (f[0].equals("user") || f[0].equals("group"))
          && !f[1].isEmpty()
          && f[2].contains("w")) {
        return "another user or group, through an access ACL entry";
      }
    }
    return null;
  }

  private static final String DATA = "the data directory";

  private static LaunchException refused(Path data, Path p, String why) {
    return refused(data, p, why, DATA);
  }

  private static LaunchException refused(Path data, Path p, String why, String what) {
    return new LaunchException(
        "refusing "
            + what
            + " "
            + data
            + ": "
            + p
            + " "
            + why
            + (what.equals(DATA)
                ? "; its plugins would run as you. Use --data DIR or GRANULE_DATA naming a"
                    + " directory only you (and root) can write, or fix the owner or mode of "
                : "; its code would run as you. Set XDG_CACHE_HOME to a directory only you (and"
                    + " root) can write, or fix the owner or mode of ")
            + p);
  }
}
