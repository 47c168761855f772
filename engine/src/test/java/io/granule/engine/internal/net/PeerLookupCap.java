package io.granule.engine.internal.net;

/**
 * For tests: the lookups' fallback (reading the kernel's tables) with its cap taken up, so that the
 * next lookup is refused ({@link PeerUser.Busy}) until this is closed.
 */
public final class PeerLookupCap implements AutoCloseable {
  private PeerLookupCap() throws InterruptedException {
    PeerUser.askKernel = false;
    PeerUser.LOOKUPS.acquire(PeerUser.LOOKUPS_AT_ONCE);
  }

  /** Makes lookups read the tables, with all {@link PeerUser#LOOKUPS_AT_ONCE} reads taken. */
  public static PeerLookupCap exhausted() throws InterruptedException {
    return new PeerLookupCap();
  }

  @Override
  public void close() {
    PeerUser.LOOKUPS.release(PeerUser.LOOKUPS_AT_ONCE);
    PeerUser.askKernel = true;
  }
}
