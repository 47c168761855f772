package io.granule.plugin.postgres.internal;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Finds a password the way libpq does when the URL has none: {@code PGPASSWORD}, then the password
 * file ({@code PGPASSFILE}, default {@code ~/.pgpass}; lines {@code
 * host:port:database:username:password}, {@code *} matches anything, {@code \:} and {@code \\}
 * escape; the first matching line wins; a file readable by group or others is ignored, as libpq
 * ignores it).
 */
final class Passwords {
  private Passwords() {}

  /** The password for {@code url}, or null if none is configured. */
  static String find(PgUrl url, Map<String, String> env, Path home) {
    if (url.password() != null) {
      return url.password();
    }
    String pw = env.get("PGPASSWORD");
    if (pw != null && !pw.isEmpty()) {
      return pw;
    }
    String file = env.get("PGPASSFILE");
    Path path =
        file != null && !file.isEmpty()
            ? Path.of(file)
            : home == null ? null : home.resolve(".pgpass");
    if (path == null || !Files.isRegularFile(path)) {
      return null;
    }
    try {
      Set<PosixFilePermission> perms =
          Files.getPosixFilePermissions(path, LinkOption.NOFOLLOW_LINKS);
      if (perms.stream()
          .anyMatch(p -> p.name().startsWith("GROUP") || p.name().startsWith("OTHERS"))) {
        return null;
      }
      for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
        if (line.isBlank() || line.startsWith("#")) {
          continue;
        }
        List<String> f = fields(line);
        if (f.size() < 5) {
          continue;
        }
        if (matches(f.get(0), url.host())
            && matches(f.get(1), Integer.toString(url.port()))
            && matches(f.get(2), url.database())
            && matches(f.get(3), url.user())) {
          return f.get(4);
        }
      }
    } catch (IOException | UnsupportedOperationException e) {
      return null;
    }
    return null;
  }

  /** The password for {@code url} from this process's environment and home directory. */
  static String find(PgUrl url) {
    String home = System.getProperty("user.home");
    return find(url, System.getenv(), home == null ? null : Path.of(home));
  }

  private static boolean matches(String pattern, String value) {
    return pattern.equals("*")
        || pattern.equals(value)
        || (pattern.equals("localhost") && value.equals("127.0.0.1"))
        || (pattern.equals("127.0.0.1") && value.equals("localhost"));
  }

  private static List<String> fields(String line) {
    List<String> out = new ArrayList<>();
    StringBuilder cur = new StringBuilder();
    for (int i = 0; i < line.length(); i++) {
      char c = line.charAt(i);
      if (c == '\\' && i + 1 < line.length()) {
        cur.append(line.charAt(++i));
      } else if (c == ':' && out.size() < 4) {
        out.add(cur.toString());
        cur.setLength(0);
      } else {
        cur.append(c);
      }
    }
    out.add(cur.toString());
    return out;
  }
}
