package io.granule.engine.internal.net;

import java.net.InetAddress;

/** For tests in other packages: what {@link PeerUserTest} finds of this host. */
public final class PeerUserTestAccess {
  private PeerUserTestAccess() {}

  /** An IPv4 address of this host's that is not loopback (nor link-local), or null. */
  public static InetAddress hostAddress() throws Exception {
    return PeerUserTest.hostAddress();
  }
}
