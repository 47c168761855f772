package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import java.io.PrintWriter;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule init}: creates a repository. */
@Command(
    name = "init",
    mixinStandardHelpOptions = true,
    description = "Create a repository in an empty or new directory.")
final class InitCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(
      names = "--chunk-size",
      paramLabel = "SIZE",
      converter = SizeConverter.class,
      description =
          "Fixed chunk size for disks, a power of two from 4K to 8M (default: 1M, see"
              + " bench/RESULTS.md for the measurements behind it).")
  Integer chunkSize;

  @Override
  public Integer call() {
    RepositoryConfig cfg = RepositoryConfig.defaults();
    if (chunkSize != null) {
      if (Integer.bitCount(chunkSize) != 1) {
        throw new CommandException(
            ExitCodes.USAGE, "--chunk-size " + chunkSize + " is not a power of two (e.g. 1M)");
      }
      cfg = cfg.withChunkSize(chunkSize);
    }
    Repository created;
    try {
      created = Repository.init(repo.path(), cfg);
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    }
    try (Repository r = created) {
      PrintWriter out = context().out();
      out.printf(
          Locale.ROOT,
          "created repository %s at %s (chunk size %s)%n",
          r.config().repositoryId().substring(0, 12),
          repo.path().toAbsolutePath(),
          Sizes.human(r.config().chunkSize()));
      out.flush();
    }
    return ExitCodes.OK;
  }
}
