package io.granule.engine.internal.repo;

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
}
