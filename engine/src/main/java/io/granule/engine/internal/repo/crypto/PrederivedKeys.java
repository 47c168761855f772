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

  /**
   * How long an unlock waits for a key still being derived ahead before it derives the key itself
   * (a derivation ahead that never ends must not hold the unlock).
   */
  static volatile long derivationWaitMs = 60_000;

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
    private volatile boolean forgotten;

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

    /**
     * Runs scrypt (on the task's thread). Any failure, an {@link OutOfMemoryError} too, completes
     * the entry: an unlock waiting for it then goes on (a forged key blob once ran this thread out
     * of memory, and every command waited forever for a key that never came).
     */
    void derive(byte[] pw) {
      try {
        kek.complete(kdf.derive(pw, salt, new KdfParams(n, r, p)));
      } catch (Throwable e) {
        kek.completeExceptionally(e);
      }
    }

    /** Whether {@link #forget} dropped it (no unlock will take it). */
    boolean forgotten() {
      return forgotten;
    }

    /**
     * Gives the entry up if it is not derived yet (the task stopped before it): a waiter then
     * derives the key itself.
     */
    void abandon() {
      kek.complete(null);
    }
  }

  /** scrypt to a 32-byte key; a seam for tests (a derivation that fails, or runs out of memory). */
  @FunctionalInterface
  interface Kdf {
    byte[] derive(byte[] password, byte[] salt, KdfParams params);
  }

  /** The derivation of every key-encryption key, ahead or in the unlock ({@link KeyRing}). */
  static final Kdf SCRYPT = (pw, salt, q) -> Scrypt.derive(pw, salt, q.n(), q.r(), q.p(), 32);

  /** {@link #SCRYPT}, but in tests. */
  static volatile Kdf kdf = SCRYPT;

  /** The derivation ahead of a key failed (with its cause): the unlock skips that key blob. */
  static final class DerivationFailedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    DerivationFailedException(Throwable cause) {
      super(cause.toString(), cause);
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
   * (removed: taken once), or null (none, or not derived within {@link #derivationWaitMs}).
   *
   * @throws DerivationFailedException if its derivation ahead failed
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
          return e.kek.get(derivationWaitMs, TimeUnit.MILLISECONDS); // null if abandoned
        } catch (ExecutionException x) {
          throw new DerivationFailedException(x.getCause() == null ? x : x.getCause());
        } catch (TimeoutException x) {
          e.kek.thenAccept(k -> zero(k));
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
        e.forgotten = true;
        Arrays.fill(e.password, (byte) 0);
        e.kek.thenAccept(k -> zero(k));
      }
    }
  }

  private static void zero(byte[] k) {
    if (k != null) {
      Arrays.fill(k, (byte) 0);
    }
  }

  /** How many keys derived ahead no unlock has taken yet (for tests). */
  static int count() {
    return ENTRIES.size();
  }
}
