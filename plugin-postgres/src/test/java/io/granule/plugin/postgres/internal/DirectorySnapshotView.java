package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.SnapshotView;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * A {@link SnapshotView} over local directories, one volume each, with captured files in memory: a
 * stand-in for the engine's view of a repository snapshot in plugin-level tests.
 */
final class DirectorySnapshotView implements SnapshotView {
  private final String id;
  private final List<Volume> volumes;
  private final Map<String, byte[]> captured;
  private long bytes;

  DirectorySnapshotView(String id, List<Path> roots, Map<String, byte[]> captured) {
    this.id = id;
    List<Volume> vs = new ArrayList<>();
    for (int i = 0; i < roots.size(); i++) {
      LocalFileSystem fs = new LocalFileSystem(roots.get(i));
      String disk = "disk" + i;
      vs.add(
          new Volume() {
            @Override
            public String disk() {
              return disk;
            }

            @Override
            public String partition() {
              return null;
            }

            @Override
            public String type() {
              return "local";
            }

            @Override
            public FileSystem fileSystem() {
              return fs;
            }
          });
    }
    this.volumes = vs;
    this.captured = Map.copyOf(captured);
  }

  @Override
  public String id() {
    return id;
  }

  @Override
  public Instant time() {
    return Instant.EPOCH;
  }

  @Override
  public String host() {
    return "test";
  }

  @Override
  public List<Volume> volumes() {
    return volumes;
  }

  @Override
  public InputStream openCaptured(ApplicationRecord record, String name) throws IOException {
    byte[] b = captured.get(name);
    if (b == null || !record.files().contains(name)) {
      throw new NoSuchFileException(name);
    }
    return new ByteArrayInputStream(b);
  }

  @Override
  public long extract(Volume volume, String path, Path target, Predicate<String> include)
      throws IOException {
    Path from = ((LocalFileSystem) volume.fileSystem()).root.resolve(path);
    Files.createDirectories(target);
    long total = 0;
    List<Path> todo = new ArrayList<>(List.of(from));
    while (!todo.isEmpty()) {
      Path dir = todo.remove(todo.size() - 1);
      try (Stream<Path> s = Files.list(dir)) {
        for (Path p : s.toList()) {
          String rel = from.relativize(p).toString();
          if (!include.test(rel)) {
            continue;
          }
          Path to = target.resolve(rel);
          if (Files.isSymbolicLink(p)) {
            Files.createSymbolicLink(to, Files.readSymbolicLink(p));
          } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
            Files.createDirectories(to);
            todo.add(p);
          } else {
            Files.copy(p, to, StandardCopyOption.COPY_ATTRIBUTES);
            total += Files.size(to);
          }
        }
      }
    }
    bytes += total;
    return total;
  }

  @Override
  public long bytesFetched() {
    return bytes;
  }

  @Override
  public long chunksFetched() {
    return 0;
  }

  @Override
  public long diskBytes() {
    return 0;
  }

  /** A read-only local directory as a {@link FileSystem}; node ids are inode numbers. */
  static final class LocalFileSystem implements FileSystem {
    final Path root;
    private final Map<Long, Path> paths = new ConcurrentHashMap<>();

    LocalFileSystem(Path root) {
      this.root = root;
    }

    private FileNode node(Path p) throws IOException {
      if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
        throw new NoSuchFileException(p.toString());
      }
      Map<String, Object> a = Files.readAttributes(p, "unix:*", LinkOption.NOFOLLOW_LINKS);
      FileKind kind =
          Files.isSymbolicLink(p)
              ? FileKind.SYMLINK
              : Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)
                  ? FileKind.DIRECTORY
                  : Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)
                      ? FileKind.FILE
                      : FileKind.OTHER;
      long ino = (Long) a.get("ino");
      paths.put(ino, p);
      return new FileNode(
          ino,
          kind,
          (Long) a.get("size"),
          ((Integer) a.get("mode")) & 07777,
          (Integer) a.get("uid"),
          (Integer) a.get("gid"),
          (Integer) a.get("nlink"),
          ((FileTime) a.get("lastModifiedTime")).toInstant(),
          null,
          null,
          null);
    }

    private Path path(FileNode n) {
      return paths.get(n.id());
    }

    @Override
    public FileNode root() throws IOException {
      return node(root);
    }

    @Override
    public FileNode lookup(String path) throws IOException {
      Path p = root;
      for (String c : path.split("/")) {
        if (c.isEmpty()) {
          continue;
        }
        if (!Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
          throw new NotDirectoryException(p.toString());
        }
        p = p.resolve(c);
      }
      return node(p);
    }

    @Override
    public List<DirectoryEntry> list(FileNode dir) throws IOException {
      List<DirectoryEntry> out = new ArrayList<>();
      try (Stream<Path> s = Files.list(path(dir))) {
        for (Path p : s.toList()) {
          out.add(new DirectoryEntry(p.getFileName().toString(), node(p)));
        }
      }
      return out;
    }

    @Override
    public int read(FileNode file, long position, ByteBuffer dst) throws IOException {
      try (FileChannel ch = FileChannel.open(path(file))) {
        return ch.read(dst, position);
      }
    }

    @Override
    public String readLink(FileNode link) throws IOException {
      return Files.readSymbolicLink(path(link)).toString();
    }

    @Override
    public List<Extent> allocation(FileNode file) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void close() {}
  }
}
