package io.granule.plugin.postgres.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationException.Reason;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The PostgreSQL server and client binaries of one major version, which a staging server of a data
 * directory of that version needs.
 *
 * @param bin the directory holding {@code postgres}, {@code pg_ctl}, {@code psql}, {@code pg_dump}
 *     and {@code pg_restore}
 * @param major the major version they are for
 */
record PgBinaries(Path bin, int major) {
  static final List<String> PROGRAMS =
      List.of("postgres", "pg_ctl", "psql", "pg_dump", "pg_restore");

  /**
   * Finds the binaries for {@code major}: the {@code pg-bin} option if given, else the Debian
   * ({@code /usr/lib/postgresql/N/bin}) and RHEL ({@code /usr/pgsql-N/bin}) locations.
   *
   * @throws ApplicationException MISSING_TOOL naming the major version and what was searched
   */
  static PgBinaries find(int major, Map<String, String> options) throws ApplicationException {
    List<Path> candidates = new ArrayList<>();
    String given = options.get("pg-bin");
    if (given != null && !given.isBlank()) {
      candidates.add(Path.of(given));
    } else {
      candidates.add(Path.of("/usr/lib/postgresql/" + major + "/bin"));
      candidates.add(Path.of("/usr/pgsql-" + major + "/bin"));
    }
    for (Path dir : candidates) {
      if (PROGRAMS.stream().allMatch(p -> Files.isExecutable(dir.resolve(p)))) {
        return new PgBinaries(dir, major);
      }
    }
    List<String> missing = new ArrayList<>();
    Path first = candidates.get(0);
    for (String p : PROGRAMS) {
      if (!Files.isExecutable(first.resolve(p))) {
        missing.add(p);
      }
    }
    throw new ApplicationException(
        Reason.MISSING_TOOL,
        "PostgreSQL "
            + major
            + " server binaries not found (looked in "
            + String.join(", ", candidates.stream().map(Path::toString).toList())
            + "; missing in "
            + first
            + ": "
            + String.join(", ", missing)
            + "): the snapshot's data directory is version "
            + major
            + "; install postgresql-"
            + major
            + " or pass the option pg-bin=DIR");
  }

  String program(String name) {
    return bin.resolve(name).toString();
  }
}
