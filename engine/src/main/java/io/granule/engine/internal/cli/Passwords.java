package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.PasswordSource;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Gets a repository password from, in this order: a password file, an environment variable, or an
 * interactive prompt. Passwords never appear in arguments, logs or messages.
 */
final class Passwords {
  static final String ENV = PasswordSource.ENV;
  static final String NEW_ENV = "GRANULE_NEW_PASSWORD";

  private Passwords() {}

  /** The source for opening a repository. */
  static PasswordSource forOpen(CliContext ctx, Path file) {
    if (file == null) {
      // GRANULE_PASSWORD set (empty too) is given; else asked on the terminal
      return PasswordSource.fromEnvironment(
          ctx.env(), () -> read(ctx, null, ENV, "--password-file", "repository password: ", false));
    }
    return new PasswordSource() {
      @Override
      public char[] password() {
        return read(ctx, file, ENV, "--password-file", "repository password: ", false);
      }

      @Override
      public boolean given() {
        return true;
      }

      @Override
      public String toString() {
        return "--password-file";
      }
    };
  }

  /**
   * A password from {@code file}, else from environment variable {@code env}, else asked on the
   * terminal ({@code twice} to confirm a new one).
   *
   * @throws CommandException (usage) if there is none of the three
   */
  static char[] read(
      CliContext ctx, Path file, String env, String fileOption, String prompt, boolean twice) {
    if (file != null) {
      return fromFile(file, fileOption);
    }
    String v = ctx.env().apply(env);
    if (v != null) {
      if (v.isEmpty()) {
        throw new CommandException(ExitCodes.USAGE, env + " is set but empty: give a password");
      }
      return v.toCharArray();
    }
    char[] typed = ctx.terminal().readPassword(prompt);
    if (typed == null) {
      throw new CommandException(
          ExitCodes.USAGE,
          "no password given: set "
              + env
              + ", use "
              + fileOption
              + " FILE, or run interactively to be asked");
    }
    if (typed.length == 0) {
      throw new CommandException(ExitCodes.USAGE, "empty password: give a password");
    }
    if (twice) {
      char[] again = ctx.terminal().readPassword("enter it again: ");
      boolean same = again != null && Arrays.equals(typed, again);
      if (again != null) {
        Arrays.fill(again, '\0');
      }
      if (!same) {
        Arrays.fill(typed, '\0');
        throw new CommandException(ExitCodes.USAGE, "the passwords differ: nothing was changed");
      }
    }
    return typed;
  }

  /** The first line of {@code file} (UTF-8, without its line ending). */
  static char[] fromFile(Path file, String option) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (IOException e) {
      throw new CommandException(
          ExitCodes.USAGE, "unable to read " + option + " '" + file + "': " + e.getMessage(), e);
    }
    CharBuffer chars;
    try {
      chars =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .decode(ByteBuffer.wrap(bytes));
    } catch (CharacterCodingException e) {
      throw new CommandException(ExitCodes.USAGE, option + " '" + file + "' is not UTF-8 text", e);
    } finally {
      Arrays.fill(bytes, (byte) 0);
    }
    int end = 0;
    while (end < chars.length() && chars.get(end) != '\n' && chars.get(end) != '\r') {
      end++;
    }
    char[] pw = new char[end];
    chars.get(pw, 0, end);
    Arrays.fill(chars.array(), '\0');
    if (pw.length == 0) {
      throw new CommandException(ExitCodes.USAGE, option + " '" + file + "' is empty");
    }
    return pw;
  }
}
