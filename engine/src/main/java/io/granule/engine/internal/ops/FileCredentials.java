package io.granule.engine.internal.ops;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs code that opens files with another user's file-system identity (fsuid, fsgid, supplementary
 * groups, through {@code libgranule-native}): every open it makes is then decided by the kernel as
 * for that user, ACLs included, and without root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. A root
 * backup opens a user's image this way, so neither a backing file nor an extent nor the image
 * itself can be one the user could not read, whatever links he swaps while it is opened.
 *
 * <p>The code runs on a thread of its own, whose identity alone is changed (the raw system calls
 * change the calling thread only) and set back before it ends: no other thread of the process ever
 * runs as that user. Everything the code opens must be opened before it returns; files opened
 * later, on other threads, are opened with the process's rights.
 */
public final class FileCredentials {
  private static final int MAX_GROUPS = 65536;

  /**
   * The probe's body: declared here, not in {@link Probe}, whose initialization (waiting for the
   * probe's thread) it would otherwise wait for.
   */
  private static final Callable<Object> NOTHING = () -> null;

  private FileCredentials() {}

  /** A file-system identity: uid, gid and supplementary groups. */
  public record Identity(int uid, int gid, int[] groups) {
    public Identity {
      groups = groups.clone();
    }

    @Override
    public int[] groups() {
      return groups.clone();
    }
  }

  /**
   * Why identities cannot be switched here (no native library, or the process may not set them: it
   * needs CAP_SETUID and CAP_SETGID), or null if they can.
   */
  public static String unavailableReason() {
    return Probe.REASON;
  }

  private static final class Probe {
    static final String REASON = probe();

    private static String probe() {
      if (NativeLibrary.unavailableReason() != null) {
        return "libgranule-native is not loaded: " + NativeLibrary.unavailableReason();
      }
      try {
        // the stand-in identity SourceAccess opens files as: a switch to it must work
        return call(
            new Identity(SourceAccess.STAND_IN, SourceAccess.STAND_IN, new int[0]), NOTHING, false);
      } catch (Exception | UnsatisfiedLinkError e) {
        return e.toString();
      }
    }
  }

  /**
   * Runs {@code body} as {@code who} (file system only), on a thread of its own, and returns what
   * it returns.
   *
   * @throws IllegalStateException if the identity cannot be switched ({@link #unavailableReason})
   * @throws Exception what {@code body} throws
   */
  public static <T> T call(Identity who, Callable<T> body) throws Exception {
    String why = unavailableReason();
    if (why != null) {
      throw new IllegalStateException("cannot open files as uid " + who.uid() + ": " + why);
    }
    AtomicReference<T> result = new AtomicReference<>();
    String failed = call(who, () -> result.getAndSet(body.call()), true);
    if (failed != null) {
      throw new IllegalStateException("cannot open files as uid " + who.uid() + ": " + failed);
    }
    return result.get();
  }

  /** Runs {@code body} as {@code who}: null, or why the switch failed; rethrows its exception. */
  private static String call(Identity who, Callable<?> body, boolean rethrow) throws Exception {
    AtomicReference<Throwable> thrown = new AtomicReference<>();
    AtomicReference<String> failed = new AtomicReference<>();
    Thread t =
        new Thread(
            () -> {
              int[] ids = new int[2];
              int[] groups = new int[MAX_GROUPS];
              int n = current0(ids, groups);
              if (n < 0) {
                failed.set("errno " + -n + " reading this thread's groups");
                return;
              }
              int[] g = who.groups();
              int r = set0(who.uid(), who.gid(), g, g.length, false);
              try {
                if (r < 0) {
                  failed.set("errno " + -r + " switching to it (needs CAP_SETUID and CAP_SETGID)");
                  return;
                }
                body.call();
              } catch (Throwable e) {
                thrown.set(e);
              } finally {
                int back = set0(ids[0], ids[1], groups, n, true);
                if (back < 0) {
                  // cannot happen for a thread that could switch; never let it run on
                  throw new IllegalStateException(
                      "cannot set this thread's file-system identity back (errno " + -back + ")");
                }
              }
            },
            "granule-open-as-" + who.uid());
    t.setDaemon(true);
    t.start();
    boolean interrupted = false;
    while (true) {
      try {
        t.join();
        break;
      } catch (InterruptedException e) {
        interrupted = true; // the opens finish (or fail) quickly; wait for them
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    Throwable e = thrown.get();
    if (e != null && rethrow) {
      if (e instanceof Exception ex) {
        throw ex;
      }
      if (e instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(e);
    }
    return failed.get();
  }

  private static native int current0(int[] ids, int[] groups);

  private static native int set0(int uid, int gid, int[] groups, int count, boolean back);
}
