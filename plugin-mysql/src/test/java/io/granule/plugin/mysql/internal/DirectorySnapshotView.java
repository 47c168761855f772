package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.SnapshotView;
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
 * A {@link SnapshotView} over local directories, one volume each: stands in for the engine's view
 * of a snapshot's filesystems until a test can take a real snapshot.
 */
final class DirectorySnapshotView implements SnapshotView {
  private final String id;
  private final List<Volume> volumes = new ArrayList<>();

  DirectorySnapshotView(String id, Path... roots) {
    this.id = id;
    int i = 0;
    for (Path root : roots) {
      String disk = "disk" + i++;
      LocalFileSystem fs = new LocalFileSystem(root);
      volumes.add(
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
              return "directory";
            }

            @Override
            public FileSystem fileSystem() {
              return fs;
            }
          });
    }
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
    throw new NoSuchFileException(name);
  }

  @Override
  public long extract(Volume volume, String path, Path target, Predicate<String> include)
      throws IOException {
    Path from = ((LocalFileSystem) volume.fileSystem()).resolve(path);
    Files.createDirectories(target);
    long[] bytes = {0};
    copy(from, target, "", include, bytes);
    return bytes[0];
  }

  private static void copy(
      Path dir, Path target, String rel, Predicate<String> include, long[] bytes)
      throws IOException {
    List<Path> children;
    try (Stream<Path> s = Files.list(dir)) {
      children = s.toList();
    }
    for (Path child : children) {
      String name = child.getFileName().toString();
      String r = rel.isEmpty() ? name : rel + "/" + name;
      if (!include.test(r)) {
        continue;
      }
      Path to = target.resolve(name);
      if (Files.isDirectory(child, LinkOption.NOFOLLOW_LINKS)) {
        Files.createDirectory(to);
        copy(child, to, r, include, bytes);
        Files.setLastModifiedTime(to, Files.getLastModifiedTime(child));
      } else {
        Files.copy(child, to, StandardCopyOption.COPY_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
        bytes[0] += Files.size(to);
      }
    }
  }

  @Override
  public long bytesFetched() {
    return 0;
  }

  @Override
  public long chunksFetched() {
    return 0;
  }

  @Override
  public long diskBytes() {
    return 0;
  }

  /** A read-only {@link FileSystem} over a local directory tree (no symbolic links followed). */
  static final class LocalFileSystem implements FileSystem {
    private final Path root;
    private final Map<Long, Path> paths = new ConcurrentHashMap<>();

    LocalFileSystem(Path root) {
      this.root = root;
    }

    Path resolve(String path) {
      Path p = root;
      for (String c : path.split("/")) {
        if (!c.isEmpty()) {
          p = p.resolve(c);
        }
      }
      return p;
    }

    private FileNode node(Path p) throws IOException {
      if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
        throw new NoSuchFileException(p.toString());
      }
      Map<String, Object> a = Files.readAttributes(p, "unix:*", LinkOption.NOFOLLOW_LINKS);
      long ino = ((Number) a.get("ino")).longValue();
      paths.put(ino, p);
      FileKind kind =
          Files.isSymbolicLink(p)
              ? FileKind.SYMLINK
              : Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)
                  ? FileKind.DIRECTORY
                  : Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)
                      ? FileKind.FILE
                      : FileKind.OTHER;
      return new FileNode(
          ino,
          kind,
          ((Number) a.get("size")).longValue(),
          ((Number) a.get("mode")).intValue() & 07777,
          ((Number) a.get("uid")).longValue(),
          ((Number) a.get("gid")).longValue(),
          ((Number) a.get("nlink")).longValue(),
          ((FileTime) a.get("lastModifiedTime")).toInstant(),
          ((FileTime) a.get("lastAccessTime")).toInstant(),
          ((FileTime) a.get("ctime")).toInstant(),
          null);
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
      Path p = paths.get(dir.id());
      if (!dir.isDirectory()) {
        throw new NotDirectoryException(String.valueOf(p));
      }
      List<DirectoryEntry> out = new ArrayList<>();
      try (Stream<Path> s = Files.list(p)) {
        for (Path c : s.toList()) {
          out.add(new DirectoryEntry(c.getFileName().toString(), node(c)));
        }
      }
      return out;
    }

    @Override
    public int read(FileNode file, long position, ByteBuffer dst) throws IOException {
      try (FileChannel ch = FileChannel.open(paths.get(file.id()))) {
        return ch.read(dst, position);
      }
    }

    @Override
    public String readLink(FileNode link) throws IOException {
      return Files.readSymbolicLink(paths.get(link.id())).toString();
    }

    @Override
    public List<Extent> allocation(FileNode file) {
      return file.size() == 0 ? List.of() : List.of(new Extent(0, file.size()));
    }

    @Override
    public void close() {}
  }
}
