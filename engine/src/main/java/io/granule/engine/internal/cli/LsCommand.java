package io.granule.engine.internal.cli;

import io.granule.engine.internal.ops.FileBrowser;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code granule ls}: lists files inside a disk of a backup, without restoring it. */
@Command(
    name = "ls",
    mixinStandardHelpOptions = true,
    description = {
      "List a directory (or show a file) inside a disk of a snapshot, reading only the "
          + "chunks that hold its metadata. SNAP[:DISK[/PART]]: DISK may be left out with one "
          + "disk, PART (p1, p2, … as the partition table numbers them) with one filesystem. "
          + "Filesystems: ext2/3/4, XFS, NTFS (from the vmdisk plugin)."
    })
final class LsCommand extends ContextCommand {
  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm", Locale.ROOT).withZone(ZoneOffset.UTC);

  @Mixin RepoOption repo;

  @Mixin SnapshotFilterOption filter;

  @Parameters(index = "0", paramLabel = "SNAP[:DISK[/PART]]", description = "Where to look.")
  String where;

  @Parameters(index = "1", arity = "0..1", paramLabel = "PATH", description = "Default: /.")
  String path = "/";

  @Option(names = "--json", description = "Print JSON.")
  boolean json;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = context().out();
    try (Repository r = repo.open(context(), LockKind.SHARED, "ls");
        FileBrowser b = FileBrowser.open(r, where, filter.filter(), context().fileSystems())) {
      FileSystem fs = b.fileSystem();
      FileNode node = lookup(b, path);
      List<DirectoryEntry> entries =
          node.isDirectory() ? fs.list(node) : List.of(new DirectoryEntry(name(path), node));
      if (json) {
        List<Map<String, Object>> list = new ArrayList<>();
        for (DirectoryEntry e : entries) {
          Map<String, Object> m = new LinkedHashMap<>();
          m.put("name", e.name());
          m.put("kind", e.node().kind().name().toLowerCase(Locale.ROOT));
          m.put("size", e.node().size());
          m.put("mode", String.format(Locale.ROOT, "%04o", e.node().mode()));
          m.put("uid", e.node().uid());
          m.put("gid", e.node().gid());
          m.put("links", e.node().linkCount());
          m.put("modified", e.node().modified().toString());
          m.put("inode", e.node().id());
          if (e.node().kind() == FileKind.SYMLINK) {
            m.put("target", fs.readLink(e.node()));
          }
          list.add(m);
        }
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("snapshot", b.snapshot().id());
        o.put("disk", b.disk().disk().name());
        o.put("partition", b.volume().name());
        o.put("filesystem", b.type());
        o.put("path", path);
        o.put("entries", list);
        o.put("chunksFetched", b.chunksFetched());
        o.put("chunksWithData", b.chunksWithData());
        out.println(Json.MAPPER.writeValueAsString(o));
      } else {
        for (DirectoryEntry e : entries) {
          FileNode n = e.node();
          String name =
              n.kind() == FileKind.SYMLINK
                  ? Printable.text(e.name()) + " -> " + Printable.text(fs.readLink(n))
                  : Printable.text(e.name());
          out.printf(
              Locale.ROOT,
              "%s %3d %5d %5d %12d %s %s%n",
              modeString(n),
              n.linkCount(),
              n.uid(),
              n.gid(),
              n.size(),
              TIME.format(n.modified()),
              name);
        }
        context()
            .err()
            .printf(
                Locale.ROOT,
                "%s %s on %s/%s of snapshot %s: %d of %d chunks fetched%n",
                b.type(),
                Printable.text(path),
                Printable.text(b.disk().disk().name()),
                Printable.text(b.volume().name()),
                b.snapshot().id().substring(0, 12),
                b.chunksFetched(),
                b.chunksWithData());
      }
    }
    out.flush();
    context().err().flush();
    return ExitCodes.OK;
  }

  /** The node at {@code path}, or a not-found error naming the snapshot, disk and partition. */
  static FileNode lookup(FileBrowser b, String path) throws IOException {
    try {
      return b.fileSystem().lookup(path);
    } catch (java.nio.file.NoSuchFileException | java.nio.file.NotDirectoryException e) {
      throw new CommandException(
          ExitCodes.NOT_FOUND,
          "no '"
              + path
              + "' in "
              + b.type()
              + " on "
              + b.disk().disk().name()
              + "/"
              + b.volume().name()
              + " of snapshot "
              + b.snapshot().id().substring(0, 12),
          e);
    }
  }

  private static String name(String p) {
    String s = p.endsWith("/") && p.length() > 1 ? p.substring(0, p.length() - 1) : p;
    return s.substring(s.lastIndexOf('/') + 1);
  }

  static String modeString(FileNode n) {
    char type =
        switch (n.kind()) {
          case DIRECTORY -> 'd';
          case SYMLINK -> 'l';
          case FILE -> '-';
          case OTHER -> '?';
        };
    StringBuilder sb = new StringBuilder().append(type);
    String rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++) {
      sb.append((n.mode() & (1 << (8 - i))) != 0 ? rwx.charAt(i) : '-');
    }
    // set-user-ID, set-group-ID and sticky, as ls(1) shows them: s/t over x, S/T without it
    special(sb, 3, (n.mode() & 04000) != 0, 's');
    special(sb, 6, (n.mode() & 02000) != 0, 's');
    special(sb, 9, (n.mode() & 01000) != 0, 't');
    return sb.toString();
  }

  private static void special(StringBuilder sb, int at, boolean set, char mark) {
    if (set) {
      sb.setCharAt(at, sb.charAt(at) == 'x' ? mark : Character.toUpperCase(mark));
    }
  }
}
