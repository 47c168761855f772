package io.granule.engine.internal.repo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Rewrites a repository's config the way someone who can write its storage could (tests). */
public final class TamperedConfigs {
  private TamperedConfigs() {}

  /**
   * Rewrites the config of the repository in directory {@code dir} as unencrypted, chunk ids by
   * unkeyed BLAKE3 (audit9 C1); returns the config it replaced.
   */
  public static RepositoryConfig downgrade(Path dir) throws IOException {
    Path file = dir.resolve("config");
    RepositoryConfig c = RepositoryConfig.fromBytes(dir.toString(), Files.readAllBytes(file));
    Files.write(
        file,
        new RepositoryConfig(
                c.version(),
                c.repositoryId(),
                c.created(),
                c.chunkSize(),
                c.packSize(),
                c.compressionLevel(),
                RepositoryConfig.BLAKE3,
                null)
            .toBytes());
    return c;
  }
}
