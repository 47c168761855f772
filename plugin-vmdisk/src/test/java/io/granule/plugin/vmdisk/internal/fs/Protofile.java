package io.granule.plugin.vmdisk.internal.fs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** Writes an mkfs.xfs protofile that copies a directory tree (names must not contain spaces). */
public final class Protofile {
  private Protofile() {}

  public static String of(Path root) throws IOException {
    StringBuilder sb = new StringBuilder("/dev/null\n0 0\n");
    sb.append(mode(root, 'd')).append(owner(root)).append('\n');
    directory(root, sb, "  ");
    sb.append("$\n");
    return sb.toString();
  }

  private static void directory(Path dir, StringBuilder sb, String indent) throws IOException {
    List<Path> children;
    try (Stream<Path> s = Files.list(dir)) {
      children = s.sorted().toList();
    }
    for (Path p : children) {
      String name = p.getFileName().toString();
      if (name.contains(" ")) {
        throw new IllegalArgumentException("protofile names cannot hold spaces: " + p);
      }
      sb.append(indent).append(name).append(' ');
      if (Files.isSymbolicLink(p)) {
        sb.append(mode(p, 'l')).append(owner(p)).append(' ').append(Files.readSymbolicLink(p));
        sb.append('\n');
      } else if (Files.isDirectory(p)) {
        sb.append(mode(p, 'd')).append(owner(p)).append('\n');
        directory(p, sb, indent + "  ");
        sb.append(indent).append("$\n");
      } else if (Files.isRegularFile(p)) {
        sb.append(mode(p, '-')).append(owner(p)).append(' ').append(p.toAbsolutePath());
        sb.append('\n');
      } else {
        sb.append(mode(p, 'p')).append(owner(p)).append('\n');
      }
    }
  }

  private static String mode(Path p, char type) throws IOException {
    int mode = (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
    return ""
        + type
        + ((mode & 04000) != 0 ? 'u' : '-')
        + ((mode & 02000) != 0 ? 'g' : '-')
        + String.format(java.util.Locale.ROOT, "%03o", mode & 0777);
  }

  private static String owner(Path p) throws IOException {
    Map<String, Object> a = Files.readAttributes(p, "unix:uid,gid", LinkOption.NOFOLLOW_LINKS);
    return " " + a.get("uid") + " " + a.get("gid");
  }
}
