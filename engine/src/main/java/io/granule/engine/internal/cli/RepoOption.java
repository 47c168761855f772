package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --repo PATH}, defaulting to {@code $GRANULE_REPO}. */
final class RepoOption {
  @Option(
      names = "--repo",
      paramLabel = "PATH",
      defaultValue = "${env:GRANULE_REPO}",
      description = "Repository directory (default: $GRANULE_REPO).")
  Path repo;

  Path path() {
    if (repo == null) {
      throw new CommandException(
          ExitCodes.USAGE, "no repository given: use --repo PATH or set GRANULE_REPO");
    }
    return repo;
  }

  Repository open() {
    return Repository.open(path());
  }
}
