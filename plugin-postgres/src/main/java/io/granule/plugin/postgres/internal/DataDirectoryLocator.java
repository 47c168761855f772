package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.SnapshotView;
import io.granule.engine.spi.SnapshotView.Volume;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Finds a PostgreSQL data directory (a directory holding {@code PG_VERSION} and {@code
 * global/pg_control}) on a snapshot's volumes, and says which of its files a staging server needs.
 *
 * <p>Where to look, in order: the {@code pg-data} option ({@code [DISK[:PARTITION]:]PATH} inside a
 * volume); the recorded data directory's path and its suffixes in each volume (host path {@code
 * /mnt/x/pgdata} is tried as {@code mnt/x/pgdata}, {@code x/pgdata}, {@code pgdata} and the
 * volume's root, as the volume may have been mounted anywhere); then, for snapshots taken without
 * {@code --app}, a breadth-first search of each volume down to depth {@value #MAX_DEPTH} visiting
 * at most {@value #MAX_DIRECTORIES} directories.
 */
final class DataDirectoryLocator {
  static final int MAX_DEPTH = 4;
  static final int MAX_DIRECTORIES = 20_000;

  private DataDirectoryLocator() {}

  /** A data directory inside a volume. */
  record Found(Volume volume, String path, int major) {
    String describe() {
      return volume.disk()
          + (volume.partition() == null ? "" : ":" + volume.partition())
          + ":/"
          + path;
    }
  }

  static Found locate(SnapshotView snapshot, ApplicationRecord record, Map<String, String> options)
      throws ApplicationException, IOException {
    List<Volume> volumes = snapshot.volumes();
    if (volumes.isEmpty()) {
      throw new ApplicationException(
          Reason.NO_DATA,
          "snapshot " + shortId(snapshot) + " has no filesystem the engine can read");
    }
    String given = options.get("pg-data");
    if (given != null && !given.isBlank()) {
      for (Volume v : volumes) {
        String path = given;
        String[] parts = given.split(":", -1);
        if (parts.length > 1) {
          String disk = parts[0];
          String partition = parts.length == 3 ? parts[1] : null;
          path = parts[parts.length - 1];
          if (!disk.equals(v.disk()) || (partition != null && !partition.equals(v.partition()))) {
            continue;
          }
        }
        String p = trim(path);
        if (isDataDirectory(v.fileSystem(), p)) {
          return new Found(v, p, major(v.fileSystem(), p));
        }
      }
      throw new ApplicationException(
          Reason.NO_DATA,
          "snapshot "
              + shortId(snapshot)
              + ": pg-data="
              + given
              + " is not a PostgreSQL data directory (no PG_VERSION and global/pg_control)");
    }
    Set<String> hostPaths = new LinkedHashSet<>();
    if (record != null) {
      String dd = record.attributes().get("data_directory");
      if (dd != null) {
        hostPaths.add(dd);
      }
      if (!record.dataPaths().isEmpty()) {
        hostPaths.add(record.dataPaths().get(0));
      }
    }
    for (String hostPath : hostPaths) {
      for (String suffix : suffixes(hostPath)) {
        for (Volume v : volumes) {
          if (isDataDirectory(v.fileSystem(), suffix)) {
            return new Found(v, suffix, major(v.fileSystem(), suffix));
          }
        }
      }
    }
    List<Found> found = new ArrayList<>();
    for (Volume v : volumes) {
      for (String p : search(v.fileSystem())) {
        found.add(new Found(v, p, major(v.fileSystem(), p)));
      }
    }
    if (found.isEmpty()) {
      throw new ApplicationException(
          Reason.NO_DATA,
          "snapshot "
              + shortId(snapshot)
              + " holds no PostgreSQL data directory"
              + (hostPaths.isEmpty() ? "" : " (looked for " + String.join(", ", hostPaths) + ")")
              + " on its "
              + volumes.size()
              + " filesystem(s), down to depth "
              + MAX_DEPTH
              + "; pass pg-data=PATH if it is deeper");
    }
    if (found.size() > 1) {
      throw new ApplicationException(
          Reason.FAILED,
          "snapshot "
              + shortId(snapshot)
              + " holds "
              + found.size()
              + " PostgreSQL data directories: "
              + String.join(", ", found.stream().map(Found::describe).toList())
              + "; pick one with pg-data=DISK:PATH");
    }
    return found.get(0);
  }

  /** {@code /mnt/x/pgdata} → {@code mnt/x/pgdata}, {@code x/pgdata}, {@code pgdata}, {@code ""}. */
  static List<String> suffixes(String hostPath) {
    String p = trim(hostPath);
    List<String> out = new ArrayList<>();
    while (!p.isEmpty()) {
      out.add(p);
      int slash = p.indexOf('/');
      p = slash < 0 ? "" : p.substring(slash + 1);
    }
    out.add("");
    return out;
  }

  private static String trim(String p) {
    String s = p.strip();
    while (s.startsWith("/")) {
      s = s.substring(1);
    }
    while (s.endsWith("/")) {
      s = s.substring(0, s.length() - 1);
    }
    return s;
  }

  private static String join(String dir, String name) {
    return dir.isEmpty() ? name : dir + "/" + name;
  }

  static boolean isDataDirectory(FileSystem fs, String dir) throws IOException {
    return isFile(fs, join(dir, "PG_VERSION")) && isFile(fs, join(dir, "global/pg_control"));
  }

  private static boolean isFile(FileSystem fs, String path) throws IOException {
    try {
      return fs.lookup(path).kind() == FileKind.FILE;
    } catch (NoSuchFileException | NotDirectoryException e) {
      return false;
    }
  }

  /** The major version in {@code PG_VERSION} (10 and later: one number). */
  static int major(FileSystem fs, String dir) throws ApplicationException, IOException {
    FileNode node = fs.lookup(join(dir, "PG_VERSION"));
    ByteBuffer buf = ByteBuffer.allocate(16);
    int n = fs.read(node, 0, buf);
    String text = new String(buf.array(), 0, Math.max(0, n), StandardCharsets.US_ASCII).strip();
    try {
      return Integer.parseInt(text);
    } catch (NumberFormatException e) {
      throw new ApplicationException(
          Reason.UNSUPPORTED,
          "PostgreSQL data directory /"
              + dir
              + " is version '"
              + text
              + "': only versions 10 and later can be staged");
    }
  }

  /** Breadth-first search for data directories, not following links, with bounds. */
  private static List<String> search(FileSystem fs) throws IOException {
    record Dir(FileNode node, String path, int depth) {}
    List<String> found = new ArrayList<>();
    Deque<Dir> queue = new ArrayDeque<>();
    Set<Long> seen = new HashSet<>();
    FileNode root = fs.root();
    queue.add(new Dir(root, "", 0));
    seen.add(root.id());
    int visited = 0;
    while (!queue.isEmpty() && visited < MAX_DIRECTORIES) {
      Dir d = queue.poll();
      visited++;
      List<DirectoryEntry> entries;
      try {
        entries = fs.list(d.node());
      } catch (IOException e) {
        continue; // a damaged directory hides nothing we could use
      }
      boolean hasVersion = false;
      boolean hasGlobal = false;
      for (DirectoryEntry e : entries) {
        if (e.name().equals("PG_VERSION") && e.node().kind() == FileKind.FILE) {
          hasVersion = true;
        } else if (e.name().equals("global") && e.node().isDirectory()) {
          hasGlobal = true;
        }
      }
      if (hasVersion && hasGlobal && isFile(fs, join(d.path(), "global/pg_control"))) {
        found.add(d.path());
        continue; // nothing to find inside a data directory
      }
      if (d.depth() >= MAX_DEPTH) {
        continue;
      }
      for (DirectoryEntry e : entries) {
        if (e.node().isDirectory() && seen.add(e.node().id())) {
          queue.add(new Dir(e.node(), join(d.path(), e.name()), d.depth() + 1));
        }
      }
    }
    return found;
  }

  /**
   * Which entries of the data directory (paths relative to it) a staging server needs: not the live
   * server's pid and options files, replication slots, temporary statistics or tablespace links;
   * not the WAL when it was captured (it comes from the capture); and, when {@code keepDatabases}
   * is given, only those databases' directories under {@code base/}.
   *
   * @param keepDatabases the OIDs of the databases to keep, or null for all
   */
  static Predicate<String> filter(boolean walCaptured, Set<String> keepDatabases) {
    return rel -> {
      if (rel.equals("postmaster.pid") || rel.equals("postmaster.opts")) {
        return false;
      }
      if (walCaptured && rel.startsWith("pg_wal/")) {
        return rel.equals("pg_wal/archive_status");
      }
      if (rel.startsWith("pg_wal/archive_status/")
          || rel.startsWith("pg_replslot/")
          || rel.startsWith("pg_stat_tmp/")
          || rel.startsWith("pg_tblspc/")) {
        return false;
      }
      if (keepDatabases != null && rel.startsWith("base/")) {
        int end = rel.indexOf('/', 5);
        String oid = end < 0 ? rel.substring(5) : rel.substring(5, end);
        return keepDatabases.contains(oid);
      }
      return true;
    };
  }

  private static String shortId(SnapshotView snapshot) {
    String id = snapshot.id();
    return id.length() > 12 ? id.substring(0, 12) : id;
  }
}
