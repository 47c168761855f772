package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * {@code --repo PATH} (default {@code $GRANULE_REPO}) and {@code --password-file FILE} (default
 * {@code $GRANULE_PASSWORD}, then a prompt).
 */
final class RepoOption {
  @Option(
      names = "--repo",
      paramLabel = "PATH",
      defaultValue = "${env:GRANULE_REPO}",
      description = "Repository directory (default: $GRANULE_REPO).")
  Path repo;

  @Option(
      names = "--password-file",
      paramLabel = "FILE",
      description =
          "Read the repository password from the first line of FILE. Without it the password"
              + " comes from $GRANULE_PASSWORD, else it is asked on the terminal.")
  Path passwordFile;

  Path path() {
    if (repo == null) {
      throw new CommandException(
          ExitCodes.USAGE, "no repository given: use --repo PATH or set GRANULE_REPO");
    }
    return repo;
  }

  /** Opens the repository, asking for its password only if it is encrypted. */
  Repository open(CliContext ctx) {
    return Repository.open(path(), Passwords.forOpen(ctx, passwordFile));
  }
}
