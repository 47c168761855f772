package io.granule.engine.internal.repo.crypto;

import io.granule.engine.internal.repo.blob.BlobStore;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Key-encryption keys derived ahead of need: a one-shot command starts a {@link #task} on a spare
 * core while the runtime is still starting (see {@code KeyPrefetch}), and {@link KeyRing#unlock}
 * with the same password takes the key instead of running scrypt (about 0.1 s of CPU) on the main
 * thread. Nothing else changes: the key is still checked by unwrapping the master key, a wrong
 * password still fails there, and an unlock that finds nothing derived for exactly its password,
 * salt and parameters runs scrypt as before. An unlock that starts while the task is still reading
 * the key blobs waits for that (at most {@link #LISTING_WAIT_MS} ms), not for the derivation.
 *
 * <p>Kept apart from {@link KeyRing} so that starting a task costs the caller (the thread that
 * starts the bundles) nothing: KeyRing's class initialization (its JSON mapper) runs on the task's
 * thread.
 */
public final class PrederivedKeys {
  /** How long an unlock waits for a task still reading the key blobs. */
  static final long LISTING_WAIT_MS = 250;

  /** Each taken at most once; usually empty. */
  private static final List<Entry> ENTRIES = new CopyOnWriteArrayList<>();

  /** Done once the latest task has read the key blobs; null if none is running. */
  private static volatile CompletableFuture<Void> listing;

  private PrederivedKeys() {}

  /** One key being derived, or derived, for one password, salt and parameters. */
  static final class Entry {
    private final byte[] password;
    private final byte[] salt;
    private final int n;
    private final int r;
    private final int p;
    private final CompletableFuture<byte[]> kek = new CompletableFuture<>();

    private Entry(byte[] password, byte[] salt, KdfParams params) {
      this.password = password.clone();
      this.salt = salt;
      this.n = params.n();
      this.r = params.r();
      this.p = params.p();
    }

    private boolean matches(byte[] pw, byte[] salt, KdfParams params) {
      return n == params.n()
          && r == params.r()
          && p == params.p()
          && Arrays.equals(this.salt, salt)
          && MessageDigest.isEqual(password, pw);
    }

    /** Runs scrypt (on the task's thread). */
    void derive(byte[] pw) {
      try {
        kek.complete(Scrypt.derive(pw, salt, n, r, p, 32));
      } catch (RuntimeException | LinkageError e) {
        kek.completeExceptionally(e);
      }
    }
  }

  /**
   * A task that derives the key-encryption key of every key blob in {@code store} under {@code
   * password} (copied: the caller may zero it once this returns).
   */
  public static Runnable task(BlobStore store, char[] password) {
    byte[] pw = Scrypt.passwordBytes(password);
    CompletableFuture<Void> listed = new CompletableFuture<>();
    listing = listed;
    return () -> {
      try {
        KeyRing.prederive(store, pw, listed);
      } finally {
        listed.complete(null);
        Arrays.fill(pw, (byte) 0);
      }
    };
  }

  static Entry register(byte[] password, byte[] salt, KdfParams params) {
    Entry e = new Entry(password, salt, params);
    ENTRIES.add(e);
    return e;
  }

  /**
   * The key derived ahead for exactly these inputs, waiting for its derivation if it is under way
   * (removed: taken once), or null.
   */
  static byte[] take(byte[] password, byte[] salt, KdfParams params) {
    CompletableFuture<Void> l = listing;
    if (l != null && !l.isDone()) {
      try {
        l.get(LISTING_WAIT_MS, TimeUnit.MILLISECONDS);
      } catch (ExecutionException | TimeoutException e) {
        // derive it here
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return null;
      }
    }
    for (Entry e : ENTRIES) {
      if (e.matches(password, salt, params) && ENTRIES.remove(e)) {
        Arrays.fill(e.password, (byte) 0);
        try {
          return e.kek.get();
        } catch (ExecutionException x) {
          return null;
        } catch (InterruptedException x) {
          Thread.currentThread().interrupt();
          return null;
        }
      }
    }
    return null;
  }

  /** Forgets (and zeroes) every key derived ahead that no unlock took. */
  public static void forget() {
    listing = null;
    for (Entry e : ENTRIES) {
      if (ENTRIES.remove(e)) {
        Arrays.fill(e.password, (byte) 0);
        e.kek.thenAccept(k -> Arrays.fill(k, (byte) 0));
      }
    }
  }

  /** How many keys derived ahead no unlock has taken yet (for tests). */
  static int count() {
    return ENTRIES.size();
  }
}
