package io.granule.engine.internal.repo.lock;

import java.net.InetAddress;
import java.net.UnknownHostException;

/** Who takes a lock: host name, process id and user name. */
public record LockOwner(String host, long pid, String user) {

  /** This process: the host name, {@link ProcessHandle#current()} pid, {@code user.name}. */
  public static LockOwner current() {
    return new LockOwner(
        hostName(), ProcessHandle.current().pid(), System.getProperty("user.name"));
  }

  private static String hostName() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (UnknownHostException e) {
      return "unknown";
    }
  }
}
