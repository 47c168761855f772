package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.blob.S3Location;
import io.granule.engine.internal.repo.crypto.PrederivedKeys;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Starts deriving an encrypted repository's key-encryption key (scrypt, about 0.1 s of CPU that an
 * unlock would otherwise spend on the main thread before any other work) on a spare core while the
 * runtime is still starting the command: {@link PrederivedKeys}. It reads the command line the way
 * the command will ({@code --repo}, else {@code $GRANULE_REPO}; {@code --password-file}, else
 * {@code $GRANULE_PASSWORD}) but only to guess: a local directory with key blobs and a password
 * that needs no prompt. A wrong guess costs that CPU and nothing else, since an unlock takes a key
 * only if it was derived from exactly its password, salt and parameters.
 */
public final class KeyPrefetch {
  private static final Logger LOG = LoggerFactory.getLogger(KeyPrefetch.class);

  private KeyPrefetch() {}

  /**
   * The repository directory and the password {@code args} and {@code env} give without a prompt,
   * or null: no repository, a remote one, one without key blobs, or a password still to ask.
   */
  static Target target(List<String> args, Function<String, String> env) {
    String repo = null;
    String passwordFile = null;
    for (int i = 0; i < args.size(); i++) {
      String a = args.get(i);
      if (a.equals("--")) {
        break;
      }
      String next = i + 1 < args.size() ? args.get(i + 1) : null;
      if (a.equals("--repo") && next != null) {
        repo = next;
        i++;
      } else if (a.startsWith("--repo=")) {
        repo = a.substring("--repo=".length());
      } else if (a.equals("--password-file") && next != null) {
        passwordFile = next;
        i++;
      } else if (a.startsWith("--password-file=")) {
        passwordFile = a.substring("--password-file=".length());
      }
    }
    if (repo == null) {
      repo = env.apply("GRANULE_REPO");
    }
    if (repo == null || repo.isEmpty() || S3Location.matches(repo)) {
      return null;
    }
    Path dir = Path.of(repo);
    if (!Files.isDirectory(dir.resolve("keys"))) {
      return null;
    }
    char[] password;
    if (passwordFile != null) {
      Path file = Path.of(passwordFile);
      if (!Files.isRegularFile(file)) {
        return null; // a pipe (--password-file <(...)) is the command's to read, once
      }
      password = Passwords.fromFile(file, "--password-file");
    } else {
      String v = env.apply(Passwords.ENV);
      if (v == null || v.isEmpty()) {
        return null;
      }
      password = v.toCharArray();
    }
    return new Target(dir, password);
  }

  /** A repository directory and its password (the caller zeroes it). */
  record Target(Path repo, char[] password) {}

  /**
   * Starts the derivation for {@code args} on a daemon thread, if they name a local encrypted
   * repository and a password ({@code -Dgranule.key.prefetch=false}: never); never fails (a failure
   * here is the command's to meet and report).
   */
  public static void start(List<String> args, Function<String, String> env) {
    if ("false".equals(System.getProperty("granule.key.prefetch"))) {
      return; // for measurements
    }
    Target t;
    try {
      t = target(args, env);
    } catch (RuntimeException e) {
      LOG.debug("no key derived ahead: {}", e.toString());
      return;
    }
    if (t == null) {
      return;
    }
    try {
      LocalBlobStore keys = new LocalBlobStore(t.repo());
      Runnable task = PrederivedKeys.task(keys, t.password());
      Thread th =
          new Thread(
              () -> {
                try {
                  task.run();
                } finally {
                  keys.close();
                }
              });
      th.setName("granule-key");
      th.setDaemon(true);
      th.start();
    } catch (RuntimeException | Error e) {
      PrederivedKeys.forget(); // an unlock must not wait for a task that never runs
      LOG.debug("no key derived ahead: {}", e.toString());
    } finally {
      Arrays.fill(t.password(), '\0');
    }
  }
}
