package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The server and dump binaries of one family and release series, for a staging server: from the
 * {@code mysql-bin} option (a directory, or the server binary itself), else from {@code PATH},
 * {@code /usr/sbin}, {@code /usr/local/mysql/bin}, {@code /usr/local/mariadb/bin}.
 *
 * @param server {@code mariadbd} or {@code mysqld}
 * @param dump {@code mariadb-dump} or {@code mysqldump}
 * @param version what the server binary reports
 */
record Binaries(Path server, Path dump, ServerVersion version) {

  static final List<String> DEFAULT_DIRS =
      List.of("/usr/sbin", "/usr/bin", "/usr/local/mysql/bin", "/usr/local/mariadb/bin");

  /**
   * Finds binaries of {@code family} whose series matches {@code wanted} (any series when null).
   *
   * @param option the {@code mysql-bin} option, or null
   * @param path the {@code PATH} value, or null
   * @throws ApplicationException {@link Reason#MISSING_TOOL} naming the family and series
   */
  static Binaries find(
      ServerVersion.Family family, ServerVersion wanted, String option, String path)
      throws ApplicationException {
    Set<Path> dirs = new LinkedHashSet<>();
    Path explicit = null;
    if (option != null && !option.isBlank()) {
      Path p = Path.of(option);
      if (Files.isRegularFile(p)) {
        explicit = p;
        dirs.add(p.toAbsolutePath().getParent());
      } else {
        dirs.add(p);
        dirs.add(p.resolve("bin"));
        dirs.add(p.resolve("sbin"));
      }
    } else {
      if (path != null) {
        for (String d : path.split(File.pathSeparator)) {
          if (!d.isEmpty()) {
            dirs.add(Path.of(d));
          }
        }
      }
      for (String d : DEFAULT_DIRS) {
        dirs.add(Path.of(d));
      }
    }
    List<String> serverNames =
        family == ServerVersion.Family.MARIADB ? List.of("mariadbd", "mysqld") : List.of("mysqld");
    List<String> seen = new ArrayList<>();
    List<Path> candidates = new ArrayList<>();
    if (explicit != null) {
      candidates.add(explicit);
    }
    for (Path d : dirs) {
      for (String n : serverNames) {
        candidates.add(d.resolve(n));
      }
    }
    Set<Path> tried = new LinkedHashSet<>();
    for (Path c : candidates) {
      if (!Files.isExecutable(c) || Files.isDirectory(c) || !tried.add(realPath(c))) {
        continue;
      }
      ServerVersion v = version(c);
      if (v == null) {
        continue;
      }
      seen.add(c + " (" + v + ")");
      if (v.family() == family && (wanted == null || v.sameSeries(wanted))) {
        Path dump = dump(family, c, dirs);
        if (dump == null) {
          throw new ApplicationException(
              Reason.MISSING_TOOL,
              "found "
                  + c
                  + " but no "
                  + (family == ServerVersion.Family.MARIADB ? "mariadb-dump" : "mysqldump")
                  + " next to it or on the PATH: install the "
                  + family.product()
                  + " client");
        }
        return new Binaries(c, dump, v);
      }
    }
    String what = family.product() + (wanted == null ? "" : " " + wanted.series());
    throw new ApplicationException(
        Reason.MISSING_TOOL,
        "no "
            + what
            + " server binary ("
            + String.join(" or ", serverNames)
            + ") to start a staging server: looked in "
            + (option != null && !option.isBlank() ? option : "PATH and " + DEFAULT_DIRS)
            + (seen.isEmpty() ? "" : ", found only " + String.join(", ", seen))
            + "; install "
            + what
            + " or pass the option mysql-bin=DIR");
  }

  private static Path realPath(Path p) {
    try {
      return p.toRealPath();
    } catch (IOException e) {
      return p.toAbsolutePath();
    }
  }

  private static Path dump(ServerVersion.Family family, Path server, Set<Path> dirs) {
    List<String> names =
        family == ServerVersion.Family.MARIADB
            ? List.of("mariadb-dump", "mysqldump")
            : List.of("mysqldump");
    Set<Path> where = new LinkedHashSet<>();
    Path parent = server.toAbsolutePath().getParent();
    where.add(parent);
    if (parent.getParent() != null) {
      where.add(parent.getParent().resolve("bin"));
    }
    where.addAll(dirs);
    for (Path d : where) {
      for (String n : names) {
        Path p = d.resolve(n);
        if (Files.isExecutable(p) && !Files.isDirectory(p)) {
          return p;
        }
      }
    }
    return null;
  }

  /** What {@code binary --version} reports, or null if it does not run or say. */
  static ServerVersion version(Path binary) {
    try {
      Process p =
          new ProcessBuilder(binary.toString(), "--no-defaults", "--version")
              .redirectErrorStream(true)
              .start();
      p.getOutputStream().close();
      byte[] out = p.getInputStream().readNBytes(4096);
      if (!p.waitFor(20, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return null;
      }
      String text = new String(out, StandardCharsets.UTF_8);
      int ver = text.indexOf("Ver ");
      return ServerVersion.parse(ver < 0 ? text : text.substring(ver + 4), text);
    } catch (IOException | IllegalArgumentException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }
}
