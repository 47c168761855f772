package io.granule.plugin.mysql.internal;

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
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Finds a MariaDB or MySQL data directory inside a snapshot's volumes: first where the record says
 * it was (a host path such as {@code /mnt/x/mysql} is tried as {@code mnt/x/mysql}, {@code x/mysql}
 * and {@code mysql} inside each volume, since the volume may have been mounted anywhere), then by a
 * bounded breadth-first search.
 */
final class Locator {
  /** How deep the search goes below a volume's root. */
  static final int MAX_DEPTH = 4;

  /** How many directories the search lists at most, over all volumes. */
  static final int MAX_DIRECTORIES = 20_000;

  /** A directory of one volume. */
  record Place(Volume volume, String path) {
    @Override
    public String toString() {
      String where = volume.disk() + (volume.partition() == null ? "" : "/" + volume.partition());
      return where + ":/" + path;
    }
  }

  /**
   * What was found.
   *
   * @param datadir the data directory
   * @param family the server family its files show, or null when they do not tell
   * @param innodbHomes InnoDB directories outside the data directory (system tablespace, redo,
   *     undo), whose InnoDB files are extracted next to the data directory's
   * @param searched true if the data directory was found by searching rather than from the record
   */
  record Found(
      Place datadir, ServerVersion.Family family, List<Place> innodbHomes, boolean searched) {}

  private Locator() {}

  static Found locate(SnapshotView snapshot, ApplicationRecord record)
      throws IOException, ApplicationException {
    List<Volume> volumes = snapshot.volumes();
    String recorded = null;
    if (record != null) {
      recorded = record.attributes().get("datadir");
      if (recorded == null && !record.dataPaths().isEmpty()) {
        recorded = record.dataPaths().get(0);
      }
    }
    Place datadir = recorded == null ? null : bySuffix(volumes, recorded, Locator::isDatadir);
    boolean searched = false;
    if (datadir == null) {
      datadir = search(volumes);
      searched = true;
    }
    if (datadir == null) {
      throw new ApplicationException(
          Reason.NO_DATA,
          "no MariaDB or MySQL data directory in snapshot "
              + snapshot.id().substring(0, Math.min(12, snapshot.id().length()))
              + ": "
              + (recorded == null ? "" : "looked for " + recorded + ", then ")
              + "searched "
              + volumes.size()
              + " volume(s) "
              + MAX_DEPTH
              + " levels deep for a directory holding mysql/ and ibdata1, aria_log_control"
              + " or mysql.ibd");
    }
    FileSystem fs = datadir.volume().fileSystem();
    Set<String> names = names(fs, fs.lookup(datadir.path()));
    ServerVersion.Family family =
        names.contains("aria_log_control")
            ? ServerVersion.Family.MARIADB
            : names.contains("mysql.ibd") ? ServerVersion.Family.MYSQL : null;
    List<Place> homes = new ArrayList<>();
    Map<String, String> attrs = record == null ? Map.of() : record.attributes();
    if (!names.contains("ibdata1")) {
      homes.add(home(volumes, attrs, "innodb_data_home_dir", n -> n.contains("ibdata1")));
    }
    if (!names.contains("ib_logfile0") && !names.contains("#innodb_redo")) {
      homes.add(
          home(
              volumes,
              attrs,
              "innodb_log_group_home_dir",
              n -> n.contains("ib_logfile0") || n.contains("#innodb_redo")));
    }
    int undo = parseInt(attrs.get("innodb_undo_tablespaces"));
    if (undo > 0
        && !names.contains("undo001")
        && !names.contains("undo_001")
        && attrs.get("innodb_undo_directory") != null) {
      homes.add(
          home(
              volumes,
              attrs,
              "innodb_undo_directory",
              n -> n.contains("undo001") || n.contains("undo_001")));
    }
    return new Found(datadir, family, homes.stream().distinct().toList(), searched);
  }

  private static int parseInt(String s) {
    try {
      return s == null ? 0 : Integer.parseInt(s.trim());
    } catch (NumberFormatException e) {
      return 0;
    }
  }

  private interface Test {
    boolean test(Set<String> names);
  }

  private static Place home(List<Volume> volumes, Map<String, String> attrs, String var, Test test)
      throws IOException, ApplicationException {
    String path = attrs.get(var);
    Place p = path == null ? null : bySuffix(volumes, path, test);
    if (p == null) {
      throw new ApplicationException(
          Reason.NO_DATA,
          "the data directory was found but not its InnoDB files"
              + (path == null ? "" : " (" + var + " was " + path + ")")
              + ": the snapshot must include every disk that holds them");
    }
    return p;
  }

  /** Tries every suffix of {@code hostPath} as a path inside every volume. */
  static Place bySuffix(List<Volume> volumes, String hostPath, Test test) throws IOException {
    List<String> parts = new ArrayList<>();
    for (String s : hostPath.split("/")) {
      if (!s.isEmpty() && !s.equals(".")) {
        parts.add(s);
      }
    }
    for (int start = 0; start <= parts.size(); start++) {
      String rel = String.join("/", parts.subList(start, parts.size()));
      for (Volume v : volumes) {
        FileNode node;
        try {
          node = v.fileSystem().lookup(rel);
        } catch (NoSuchFileException | NotDirectoryException e) {
          continue;
        }
        if (node.isDirectory() && test.test(names(v.fileSystem(), node))) {
          return new Place(v, rel);
        }
      }
    }
    return null;
  }

  private static Place search(List<Volume> volumes) throws IOException {
    int listed = 0;
    for (Volume v : volumes) {
      FileSystem fs = v.fileSystem();
      record Item(String path, FileNode node, int depth, Set<Long> ancestors) {}
      Deque<Item> queue = new ArrayDeque<>();
      queue.add(new Item("", fs.root(), 0, Set.of()));
      while (!queue.isEmpty()) {
        Item it = queue.poll();
        if (++listed > MAX_DIRECTORIES) {
          return null;
        }
        List<DirectoryEntry> entries;
        try {
          entries = fs.list(it.node());
        } catch (IOException e) {
          continue; // an unreadable directory is not where the data is
        }
        if (isDatadir(entries)) {
          return new Place(v, it.path());
        }
        if (it.depth() >= MAX_DEPTH) {
          continue;
        }
        Set<Long> ancestors = new HashSet<>(it.ancestors());
        ancestors.add(it.node().id());
        for (DirectoryEntry e : entries) {
          if (e.node().kind() == FileKind.DIRECTORY && !ancestors.contains(e.node().id())) {
            String child = it.path().isEmpty() ? e.name() : it.path() + "/" + e.name();
            queue.add(new Item(child, e.node(), it.depth() + 1, ancestors));
          }
        }
      }
    }
    return null;
  }

  private static Set<String> names(FileSystem fs, FileNode dir) throws IOException {
    Set<String> names = new HashSet<>();
    for (DirectoryEntry e : fs.list(dir)) {
      names.add(e.name() + (e.node().isDirectory() ? "/" : ""));
      names.add(e.name());
    }
    return names;
  }

  /** A data directory holds the mysql schema and InnoDB's system tablespace or Aria's log. */
  static boolean isDatadir(Set<String> names) {
    return names.contains("mysql/")
        && (names.contains("ibdata1")
            || names.contains("aria_log_control")
            || names.contains("mysql.ibd"));
  }

  private static boolean isDatadir(List<DirectoryEntry> entries) {
    Set<String> names = new HashSet<>();
    for (DirectoryEntry e : entries) {
      names.add(e.name() + (e.node().isDirectory() ? "/" : ""));
      names.add(e.name());
    }
    return isDatadir(names);
  }

  /**
   * The binary log a staging server needs for crash recovery: the last two files its index lists
   * (recovery starts at the last binary log checkpoint, normally in the last file).
   *
   * @param dir the directory that holds the files
   * @param baseName the base name, e.g. {@code mysql-bin}
   * @param files the file names to extract, oldest first
   */
  record Binlog(Place dir, String baseName, List<String> files) {}

  /** How many of the last binary log files a staging server gets. */
  static final int BINLOG_FILES = 2;

  /**
   * Finds the binary log of the instance in the snapshot: where {@code log_bin_basename} was, or
   * (without a record) an index file in the data directory. Null when the server had none or the
   * snapshot does not hold it.
   */
  static Binlog binlog(Found found, ApplicationRecord record) throws IOException {
    String basename = record == null ? null : record.attributes().get("log_bin_basename");
    if (record != null && "OFF".equalsIgnoreCase(record.attributes().get("log_bin"))) {
      return null;
    }
    FileSystem fs = found.datadir().volume().fileSystem();
    Place dir = null;
    String base = null;
    if (basename != null && !basename.isBlank()) {
      Path p = Path.of(basename);
      base = p.getFileName().toString();
      String datadir = record.attributes().get("datadir");
      if (datadir != null && p.getParent() != null && p.getParent().equals(Path.of(datadir))) {
        dir = found.datadir();
      } else if (p.getParent() != null) {
        String index = base + ".index";
        dir =
            bySuffix(
                List.of(found.datadir().volume()),
                p.getParent().toString(),
                n -> n.contains(index));
      }
    } else if (record == null) {
      for (DirectoryEntry e : fs.list(fs.lookup(found.datadir().path()))) {
        if (e.name().endsWith(".index") && e.node().kind() == FileKind.FILE) {
          String b = e.name().substring(0, e.name().length() - ".index".length());
          if (b.endsWith("-bin") || b.equals("binlog")) {
            base = b;
            dir = found.datadir();
            break;
          }
        }
      }
    }
    if (dir == null || base == null) {
      return null;
    }
    FileSystem dfs = dir.volume().fileSystem();
    String prefix = dir.path().isEmpty() ? "" : dir.path() + "/";
    FileNode index;
    try {
      index = dfs.lookup(prefix + base + ".index");
    } catch (NoSuchFileException | NotDirectoryException e) {
      return null;
    }
    if (index.kind() != FileKind.FILE || index.size() > 1 << 20) {
      return null;
    }
    java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate((int) index.size());
    while (buf.hasRemaining() && dfs.read(index, buf.position(), buf) > 0) {
      // read it all
    }
    List<String> files = new ArrayList<>();
    for (String line :
        new String(buf.array(), 0, buf.position(), java.nio.charset.StandardCharsets.UTF_8)
            .split("\n")) {
      String name = line.strip();
      int slash = name.lastIndexOf('/');
      name = slash >= 0 ? name.substring(slash + 1) : name;
      if (name.matches(java.util.regex.Pattern.quote(base) + "\\.\\d+")) {
        try {
          if (dfs.lookup(prefix + name).kind() == FileKind.FILE) {
            files.add(name);
          }
        } catch (NoSuchFileException e) {
          // rotated away
        }
      }
    }
    if (files.isEmpty()) {
      return null;
    }
    return new Binlog(
        dir,
        base,
        List.copyOf(files.subList(Math.max(0, files.size() - BINLOG_FILES), files.size())));
  }
}
