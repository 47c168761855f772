package io.granule.engine.internal.repo;

import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Where the password of an encrypted repository comes from. Asked only when the repository turns
 * out to be encrypted, at most once per open; the caller zeroes the array after use.
 */
@FunctionalInterface
public interface PasswordSource {
  /** A source for unencrypted repositories: asking it is a {@link PasswordRequiredException}. */
  PasswordSource NONE =
      () -> {
        throw new PasswordRequiredException(
            "the repository is encrypted: give its password (GRANULE_PASSWORD, --password-file,"
                + " or interactively)");
      };

  /**
   * The password.
   *
   * @throws PasswordRequiredException (or another unchecked exception) if there is none
   */
  char[] password();

  /**
   * Whether a password was given before anyone asked (a password file, an environment variable):
   * whoever gives one expects the repository to be encrypted, and an unencrypted one is then
   * refused (its config may have been rewritten as unencrypted, keys deleted, by someone who can
   * write the storage, so that the next backup stores plaintext). False for a source that would ask
   * (a terminal prompt).
   */
  default boolean given() {
    return false;
  }

  /**
   * What to do when the repository turns out to be unencrypted though {@link #given} said a
   * password was given (the end of the refusal's message).
   */
  default String unencryptedRemedy() {
    return "if it really is unencrypted, give no password for it";
  }

  /** The environment variable a password is read from. */
  String ENV = "GRANULE_PASSWORD";

  /**
   * The password in {@link #ENV} of {@code env}, else {@code otherwise} (a prompt; null: none, a
   * {@link PasswordRequiredException} when asked). The variable set counts as a password given,
   * even empty (as an empty password file does: who sets it expects an encrypted repository);
   * asking a source whose variable is empty is a {@link PasswordRequiredException}. One definition
   * for the command line and the REST server ({@link #ofServer}).
   */
  static PasswordSource fromEnvironment(Function<String, String> env, Supplier<char[]> otherwise) {
    return new PasswordSource() {
      @Override
      public char[] password() {
        String v = env.apply(ENV);
        if (v == null) {
          char[] p = otherwise.get();
          return p != null ? p : NONE.password();
        }
        if (v.isEmpty()) {
          throw new PasswordRequiredException(ENV + " is set but empty: give a password");
        }
        return v.toCharArray();
      }

      @Override
      public boolean given() {
        return env.apply(ENV) != null;
      }

      @Override
      public String toString() {
        return ENV;
      }
    };
  }

  /**
   * The password of a long-running server's repositories: its own {@link #ENV}, as {@link
   * #fromEnvironment}, nothing else. Its clients cannot give or withhold one: an unencrypted
   * repository, refused while the server has a password, is served by a server started without.
   */
  static PasswordSource ofServer(Function<String, String> env) {
    PasswordSource source = fromEnvironment(env, () -> null);
    return new PasswordSource() {
      @Override
      public char[] password() {
        return source.password();
      }

      @Override
      public boolean given() {
        return source.given();
      }

      @Override
      public String unencryptedRemedy() {
        return "this server was started with "
            + ENV
            + " and gives it for every repository (a client cannot give no password): if it really"
            + " is unencrypted, serve it from a granule server started without "
            + ENV;
      }

      @Override
      public String toString() {
        return ENV + " of the server";
      }
    };
  }
}
