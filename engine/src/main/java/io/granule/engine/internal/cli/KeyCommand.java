package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.crypto.KeyInfo;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code granule key}: the passwords of an encrypted repository. */
@Command(
    name = "key",
    mixinStandardHelpOptions = true,
    description = "List or change the passwords (key blobs) of an encrypted repository.",
    subcommands = {KeyCommand.ListKeys.class, KeyCommand.Passwd.class})
final class KeyCommand extends ContextCommand {
  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    spec.commandLine().usage(context().err());
    return ExitCodes.USAGE;
  }

  /** {@code granule key list}. */
  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "List the key blobs; the one the given password opens is marked with '*'.")
  static final class ListKeys extends ContextCommand {
    @Mixin RepoOption repo;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      try (Repository r = repo.open(context())) {
        PrintWriter out = context().out();
        if (json) {
          java.util.List<java.util.Map<String, Object>> list = new java.util.ArrayList<>();
          for (KeyInfo k :
              r.keys().stream().sorted(Comparator.comparing(KeyInfo::created)).toList()) {
            java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
            m.put("id", k.id());
            m.put("created", k.created());
            m.put("kdf", k.kdf());
            boolean current = k.id().equals(r.currentKey());
            m.put("version", k.version()); // as its frame says: checked only if current
            // whether it seals the config, known only of the blob the password opened
            m.put("sealsConfig", current ? k.sealsConfig() : null);
            m.put("verified", current);
            m.put("current", current);
            list.add(m);
          }
          out.println(Json.MAPPER.writeValueAsString(list));
          out.flush();
          return ExitCodes.OK;
        }
        if (!r.config().encrypted()) {
          out.println("the repository is not encrypted: it has no keys");
          out.flush();
          return ExitCodes.OK;
        }
        out.printf(Locale.ROOT, "  %-16s %-24s %-22s %s%n", "ID", "CREATED", "KDF", "CONFIG");
        boolean old = false;
        boolean unverified = false;
        for (KeyInfo k :
            r.keys().stream().sorted(Comparator.comparing(KeyInfo::created)).toList()) {
          // only the blob the password opened is authenticated (its format is bound to its
          // contents); what another says of itself is anyone's who can write the storage
          boolean current = k.id().equals(r.currentKey());
          old |= current && !k.sealsConfig();
          unverified |= !current;
          out.printf(
              Locale.ROOT,
              "%s %-16s %-24s %-22s %s%n",
              current ? "*" : " ",
              k.id().substring(0, 16),
              Printable.text(k.created()), // what a key blob says of itself: anyone's
              Printable.text(k.kdf()),
              !current ? "unverified" : k.sealsConfig() ? "sealed" : "not sealed");
        }
        if (old) {
          out.println(
              "a key blob marked 'not sealed' (an older format) does not authenticate the"
                  + " repository's config; 'granule key passwd' with its password replaces it"
                  + " (give a new password: a copy of the old blob opens with the old one)");
        }
        if (unverified) {
          out.println(
              "a key blob marked 'unverified' is not opened by the given password: what it says of"
                  + " itself (created, kdf, format) is not checked; list with its password to see"
                  + " whether it seals the config");
        }
        out.flush();
      }
      return ExitCodes.OK;
    }
  }

  /** {@code granule key passwd}. */
  @Command(
      name = "passwd",
      mixinStandardHelpOptions = true,
      description = {
        "Change the password: add a key blob for the new password and delete the one the old "
            + "password opened. No data is rewritten; other passwords keep working. The new "
            + "password comes from --new-password-file, $GRANULE_NEW_PASSWORD, or is asked twice on "
            + "the terminal."
      })
  static final class Passwd extends ContextCommand {
    @Mixin RepoOption repo;

    @Option(
        names = "--new-password-file",
        paramLabel = "FILE",
        description = "Read the new password from the first line of FILE.")
    Path newPasswordFile;

    @Override
    public Integer call() {
      try (Repository r = repo.open(context())) {
        if (!r.config().encrypted()) {
          throw new CommandException(
              ExitCodes.USAGE,
              "the repository at '" + repo.describe() + "' is not encrypted: it has no password");
        }
        char[] pw =
            Passwords.read(
                context(),
                newPasswordFile,
                Passwords.NEW_ENV,
                "--new-password-file",
                "new password: ",
                true);
        String added;
        try {
          added = r.changePassword(pw, KdfParams.DEFAULT);
        } finally {
          Arrays.fill(pw, '\0');
        }
        context().out().println("password changed: new key " + added.substring(0, 16));
        context().out().flush();
      }
      return ExitCodes.OK;
    }
  }
}
