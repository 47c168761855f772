package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code granule init}: creates a repository. */
@Command(
    name = "init",
    mixinStandardHelpOptions = true,
    description = {
      "Create a repository in an empty or new directory, or under an unused S3 prefix.",
      "",
      "The repository is encrypted (AES-256-GCM, chunk ids keyed with the repository's MAC key)"
          + " under a"
          + " password from --password-file, $GRANULE_PASSWORD, or asked twice on the terminal."
          + " Keep the password safe: without it the backups cannot be read by anyone."
    })
final class InitCommand extends ContextCommand {
  @Mixin RepoOption repo;

  @Option(
      names = "--chunk-size",
      paramLabel = "SIZE",
      converter = SizeConverter.class,
      description =
          "Fixed chunk size for disks, a power of two from 4K to 8M (default: 512K, see"
              + " bench/results-e2e.md for the measurements behind it).")
  Integer chunkSize;

  @Option(
      names = "--chunk-hash",
      paramLabel = "HASH",
      description =
          "Hash that names chunks: blake3 (the default: about 1.3x as fast as SHA-256 here,"
              + " format version 3) or sha256 (for builds older than BLAKE3, or rules that require"
              + " SHA-2; format 1, or 2 when encrypted). Keyed with the repository's MAC key when"
              + " encrypted. Cannot be changed later.")
  String chunkHash;

  @Option(
      names = "--insecure-no-encryption",
      description =
          "Do NOT encrypt: anyone who can read the repository files (a stolen disk, a storage"
              + " provider, a backup of the backup) can read every backed-up byte, host and file"
              + " name. Only for data that is not secret or storage you fully control. Cannot be"
              + " changed later.")
  boolean noEncryption;

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
    if (chunkHash != null) {
      try {
        cfg = cfg.withChunkHashFamily(chunkHash.toLowerCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new CommandException(ExitCodes.USAGE, "--chunk-hash: " + e.getMessage(), e);
      }
    }
    if (noEncryption && repo.passwordFile != null) {
      throw new CommandException(
          ExitCodes.USAGE, "--password-file and --insecure-no-encryption exclude each other");
    }
    char[] password =
        noEncryption
            ? null
            : Passwords.read(
                context(),
                repo.passwordFile,
                Passwords.ENV,
                "--password-file",
                "new repository password: ",
                true);
    Repository created;
    try {
      created = repo.init(context(), cfg, password);
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    } finally {
      if (password != null) {
        Arrays.fill(password, '\0');
      }
    }
    try (Repository r = created) {
      PrintWriter out = context().out();
      out.printf(
          Locale.ROOT,
          "created %s repository %s at %s (chunk size %s, chunk hash %s)%n",
          r.config().encrypted() ? "encrypted" : "UNENCRYPTED",
          r.config().repositoryId().substring(0, 12),
          repo.describe(),
          Sizes.human(r.config().chunkSize()),
          r.config().chunkHash());
      out.flush();
    }
    return ExitCodes.OK;
  }
}
