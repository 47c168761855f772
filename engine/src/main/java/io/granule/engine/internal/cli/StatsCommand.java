package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryStats;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule stats}: sizes and deduplication. */
@Command(
    name = "stats",
    mixinStandardHelpOptions = true,
    description = "Show snapshots, disks, logical and stored bytes, chunks, packs and dedup ratio.")
public final class StatsCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(names = "--json", description = "Print JSON.")
  boolean json;

  /** The stats as {@code --json} prints them (and {@code GET /api/stats} answers). */
  public static Map<String, Object> json(RepositoryStats s, RepositoryConfig c) {
    Map<String, Object> o = new LinkedHashMap<>();
    o.put("repositoryId", c.repositoryId());
    o.put("formatVersion", c.version());
    o.put("chunkSize", c.chunkSize());
    o.put("chunkHash", c.chunkHash());
    o.put("encryption", c.encrypted() ? c.encryption() : "none");
    o.put("snapshots", s.snapshots());
    o.put("disks", s.disks());
    o.put("logicalBytes", s.logicalBytes());
    o.put("storedBytes", s.storedBytes());
    o.put("chunks", s.chunks());
    o.put("packs", s.packs());
    o.put("dedupRatio", s.dedupRatio());
    return o;
  }

  @Override
  public Integer call() throws IOException {
    RepositoryStats s;
    RepositoryConfig c;
    try (Repository r = repo.open(context())) {
      s = r.stats();
      c = r.config();
    }
    String id = c.repositoryId();
    int chunkSize = c.chunkSize();
    PrintWriter out = context().out();
    if (json) {
      out.println(Json.MAPPER.writeValueAsString(json(s, c)));
    } else {
      out.printf(
          Locale.ROOT,
          "repository:    %s (format %d, chunk size %s, chunk hash %s, %s)%n",
          id,
          c.version(),
          Sizes.human(chunkSize),
          c.chunkHash(),
          c.encrypted() ? "encrypted " + c.encryption() : "UNENCRYPTED");
      out.printf(
          Locale.ROOT, "snapshots:     %d (%s)%n", s.snapshots(), Sizes.count(s.disks(), "disk"));
      out.printf(Locale.ROOT, "logical size:  %s%n", Sizes.human(s.logicalBytes()));
      out.printf(Locale.ROOT, "stored size:   %s%n", Sizes.human(s.storedBytes()));
      out.printf(
          Locale.ROOT, "chunks:        %d in %s%n", s.chunks(), Sizes.count(s.packs(), "pack"));
      out.printf(Locale.ROOT, "dedup ratio:   %.2fx%n", s.dedupRatio());
    }
    out.flush();
    return ExitCodes.OK;
  }
}
