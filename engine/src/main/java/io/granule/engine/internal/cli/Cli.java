package io.granule.engine.internal.cli;

import io.granule.engine.internal.plugin.PluginUnavailableException;
import io.granule.engine.internal.repo.AmbiguousSnapshotException;
import io.granule.engine.internal.repo.PasswordRequiredException;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.SnapshotNotFoundException;
import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.internal.repo.WrongPasswordException;
import java.io.PrintWriter;
import picocli.CommandLine;

/** Runs one command line: parses it with picocli, runs the command, maps failures to exit codes. */
public final class Cli {
  private final CliContext context;

  public Cli(CliContext context) {
    this.context = context;
  }

  /** Runs {@code args} and returns the exit code (see {@link ExitCodes}). */
  public int run(String... args) {
    CommandLine cl = commandLine(subcommandNamed(args));
    return cl.execute(args);
  }

  /** The name of the subcommand {@code args} invoke, or null (help, no command, an error). */
  static String subcommandNamed(String... args) {
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (a.equals("--data")) {
        i++;
      } else if (!a.startsWith("-")) {
        for (Class<?> c : GranuleCommand.SUBCOMMANDS) {
          if (c.getAnnotation(CommandLine.Command.class).name().equals(a)) {
            return a;
          }
        }
        return null;
      }
    }
    return null;
  }

  CommandLine commandLine() {
    return commandLine(null);
  }

  /** The command line with every subcommand, or only {@code only} when it names one. */
  CommandLine commandLine(String only) {
    CommandLine cl = new CommandLine(new GranuleCommand(), new Factory(context));
    for (Class<?> c : GranuleCommand.SUBCOMMANDS) {
      if (only == null || c.getAnnotation(CommandLine.Command.class).name().equals(only)) {
        cl.addSubcommand(c);
      }
    }
    // every subcommand's --version (picocli's standard options) prints what the top level does
    inheritVersion(cl, cl.getCommandSpec().versionProvider());
    cl.setOut(context.out());
    cl.setErr(context.err());
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    cl.setUsageHelpAutoWidth(true);
    cl.setExecutionExceptionHandler(this::handle);
    cl.setParameterExceptionHandler(
        (ex, args) -> {
          PrintWriter err = ex.getCommandLine().getErr();
          err.println("granule: " + Printable.lines(ex.getMessage()));
          err.println(
              "run '"
                  + ex.getCommandLine().getCommandSpec().qualifiedName()
                  + " --help' for usage");
          err.flush();
          return ExitCodes.USAGE;
        });
    return cl;
  }

  private static void inheritVersion(CommandLine cl, CommandLine.IVersionProvider version) {
    for (CommandLine sub : cl.getSubcommands().values()) {
      if (sub.getParent() == cl) {
        sub.getCommandSpec().versionProvider(version);
        inheritVersion(sub, version);
      }
    }
  }

  private int handle(Exception ex, CommandLine cl, CommandLine.ParseResult parsed) {
    PrintWriter err = cl.getErr();
    int code = exitCode(ex);
    String msg = ex.getMessage() == null ? ex.toString() : ex.getMessage();
    err.println("granule: " + Printable.lines(msg));
    if (code == ExitCodes.DAMAGED) {
      java.util.Optional<String> changed = unlockedReadChanged(parsed);
      if (changed.isPresent()) {
        err.println("granule: " + unlockedDamage(changed.get()));
        code = ExitCodes.LOCKED;
      }
    }
    if (code == ExitCodes.FAILURE) {
      // Unexpected: keep the stack trace for the bug report.
      ex.printStackTrace(err);
    }
    err.flush();
    return code;
  }

  /** The exit code for a failure; see {@link ExitCodes}. */
  /**
   * For a command that read its repository without a lock: why the damage it met may be a prune's
   * doing elsewhere (see {@link RepoOption#changedWhileUnlocked}).
   */
  static java.util.Optional<String> unlockedReadChanged(CommandLine.ParseResult parsed) {
    CommandLine.ParseResult last = parsed;
    while (last != null && last.hasSubcommand()) {
      last = last.subcommand();
    }
    if (last == null) {
      return java.util.Optional.empty();
    }
    for (CommandLine.Model.CommandSpec m : last.commandSpec().mixins().values()) {
      if (m.userObject() instanceof RepoOption repo) {
        return repo.changedWhileUnlocked();
      }
    }
    return java.util.Optional.empty();
  }

  /** The message for damage met by a read without a lock while the repository changed. */
  static String unlockedDamage(String why) {
    return "this ran without a lock, and "
        + why
        + ": what it reported missing or damaged may only be what that removed. Run it again"
        + " when no prune runs (exit code 9)";
  }

  public static int exitCode(Throwable ex) {
    // A plugin that went away mid-operation surfaces wrapped (e.g. as an unreadable source).
    int depth = 0; // a cause chain can loop (a.initCause(b), b.initCause(a))
    for (Throwable t = ex; t != null && depth++ < 100; t = t.getCause()) {
      if (t instanceof PluginUnavailableException) {
        return ExitCodes.PLUGIN;
      }
    }
    if (ex instanceof io.granule.engine.internal.ops.ConsistencyException) {
      return ExitCodes.APPLICATION;
    }
    if (ex instanceof io.granule.engine.internal.app.ApplicationFailure af) {
      return switch (af.reason()) {
        case AUTH -> ExitCodes.AUTH;
        case NOT_FOUND, NO_DATA -> ExitCodes.NOT_FOUND;
        case TARGET_EXISTS -> ExitCodes.TARGET;
        case MISSING_TOOL -> ExitCodes.TOOL;
        case UNREACHABLE, UNSUPPORTED, FAILED -> ExitCodes.APPLICATION;
      };
    }
    if (ex instanceof CommandException ce) {
      return ce.exitCode();
    }
    if (ex instanceof PluginUnavailableException) {
      return ExitCodes.PLUGIN;
    }
    if (ex instanceof io.granule.engine.internal.image.ImageException
        || ex instanceof SourceUnreadableException) {
      return ExitCodes.SOURCE;
    }
    if (ex instanceof io.granule.engine.internal.ops.FileBrowser.NoFileSystemException) {
      return ExitCodes.NOT_FOUND;
    }
    if (ex instanceof SnapshotNotFoundException || ex instanceof AmbiguousSnapshotException) {
      return ExitCodes.NOT_FOUND;
    }
    if (ex instanceof io.granule.engine.internal.repo.RestoreTargetException) {
      return ExitCodes.TARGET;
    }
    if (ex instanceof WrongPasswordException) {
      return ExitCodes.AUTH;
    }
    if (ex instanceof PasswordRequiredException) {
      return ExitCodes.USAGE;
    }
    if (ex instanceof io.granule.engine.internal.repo.RepositoryLockedException) {
      return ExitCodes.LOCKED;
    }
    if (ex instanceof RepositoryCorruptedException) {
      return ExitCodes.DAMAGED;
    }
    if (ex instanceof io.granule.engine.internal.repo.maintenance.NoSuchPackException) {
      return ExitCodes.NOT_FOUND;
    }
    if (ex instanceof RepositoryException) {
      // not a repository, a newer format, or one that cannot be created or written
      return ExitCodes.REPOSITORY;
    }
    if (ex instanceof java.nio.file.NoSuchFileException
        || ex instanceof java.nio.file.AccessDeniedException
        || ex instanceof java.nio.file.FileSystemException) {
      return ExitCodes.TARGET;
    }
    if (ex instanceof InterruptedException) {
      return ExitCodes.INTERRUPTED;
    }
    return ExitCodes.FAILURE;
  }

  /** Gives every command the context. */
  private record Factory(CliContext context) implements CommandLine.IFactory {
    @Override
    public <K> K create(Class<K> cls) throws Exception {
      if (ContextCommand.class.isAssignableFrom(cls)) {
        K k = CommandLine.defaultFactory().create(cls);
        ((ContextCommand) k).context = context;
        return k;
      }
      return CommandLine.defaultFactory().create(cls);
    }
  }
}
