package io.granule.engine.internal.cli;

import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/** The top-level {@code granule} command. */
@Command(
    name = "granule",
    mixinStandardHelpOptions = true,
    versionProvider = GranuleCommand.Version.class,
    description = {
      "Application-aware, deduplicating block-level backup with granular restore.",
      ""
    },
    footer = {
      "",
      "Environment: GRANULE_REPO (repository), GRANULE_PASSWORD (repository password),",
      "GRANULE_NEW_PASSWORD (for 'key passwd'), GRANULE_DATA (data directory),",
      "GRANULE_LOG_LEVEL (log level).",
      "Exit codes: 0 ok, 1 failure, 2 usage, 3 repository, 4 not found, 5 damaged data,",
      "6 source, 7 target, 8 wrong password, 9 locked, 10 plugin, 11 application,",
      "12 server, 13 missing tool, 70 runtime, 130 interrupted. See README.md."
    })
public final class GranuleCommand extends ContextCommand {

  /**
   * The subcommands, in the order help lists them. {@link Cli} adds only the one a command line
   * names (building picocli's model of every command costs a cold JVM ~100 ms), or all of them for
   * help and errors.
   */
  static final List<Class<?>> SUBCOMMANDS =
      List.of(
          InitCommand.class,
          BackupCommand.class,
          SnapshotsCommand.class,
          RestoreCommand.class,
          CatalogCommand.class,
          LsCommand.class,
          VerifyCommand.class,
          StatsCommand.class,
          ForgetCommand.class,
          PruneCommand.class,
          RepairCommand.class,
          UnlockCommand.class,
          KeyCommand.class,
          ImageCommand.class,
          PluginsCommand.class,
          ServerCommand.class,
          ServeCommand.class);

  @Option(
      names = "--data",
      scope = ScopeType.INHERIT,
      paramLabel = "DIR",
      description =
          "Data directory: plugins/, config/, logs/ (default: $GRANULE_DATA, else"
              + " /var/lib/granule for root, ~/.local/share/granule for others); only you and"
              + " root may be able to write it.")
  Path data;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    spec.commandLine().usage(context().err());
    return ExitCodes.USAGE;
  }

  /** Prints the product version and the runtime it runs on. */
  public static final class Version extends ContextCommand implements IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = context == null ? "unknown" : context.version();
      return new String[] {
        "granule " + v,
        "Java "
            + System.getProperty("java.version")
            + " ("
            + System.getProperty("java.vendor")
            + "), JIT: "
            + (java.lang.management.ManagementFactory.getRuntimeMXBean()
                    .getInputArguments()
                    .contains("-XX:TieredStopAtLevel=1")
                ? "quick (C1 only)"
                : "full"),
        "Crypto: " + io.granule.engine.internal.repo.crypto.NativeCrypto.describe(),
        "BLAKE3: " + io.granule.engine.internal.repo.crypto.NativeCrypto.describeBlake3()
      };
    }

    @Override
    public Integer call() {
      return ExitCodes.OK;
    }
  }
}
