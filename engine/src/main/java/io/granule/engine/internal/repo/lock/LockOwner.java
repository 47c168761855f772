package io.granule.engine.internal.repo.lock;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;

/**
 * Who takes a lock: host name, process id and user name, and where that pid means something.
 *
 * <p>A host name alone does not say whether a pid can be checked: a container sharing the host's
 * name (host networking, a copied UTS namespace) or a cloned VM runs other processes under the same
 * name. So a lock also records the machine id ({@code /etc/machine-id}), the kernel's boot id
 * ({@code /proc/sys/kernel/random/boot_id}) and the PID namespace ({@code /proc/self/ns/pid});
 * another process judges the pid only when all three match its own, and calls a lock of the same
 * machine taken before its last boot, and not refreshed since, stale. Each is null where the system
 * does not have it.
 *
 * @param host host name
 * @param pid process id
 * @param user user name
 * @param machineId the machine id, or null
 * @param bootId the boot id, or null
 * @param pidNamespace the PID namespace ({@code pid:[4026531836]}), or null
 * @param bootTime when this machine booted ({@code btime} in {@code /proc/stat}), or null; not
 *     recorded in locks, only used to judge them
 */
public record LockOwner(
    String host,
    long pid,
    String user,
    String machineId,
    String bootId,
    String pidNamespace,
    Instant bootTime) {

  /** An owner whose pid is judged by host name alone (as locks of earlier versions are). */
  public LockOwner(String host, long pid, String user) {
    this(host, pid, user, null, null, null, null);
  }

  /** An owner whose boot time is unknown. */
  public LockOwner(
      String host, long pid, String user, String machineId, String bootId, String pidNamespace) {
    this(host, pid, user, machineId, bootId, pidNamespace, null);
  }

  /** This process. */
  public static LockOwner current() {
    long pid = ProcessHandle.current().pid();
    return new LockOwner(
        hostName(),
        pid,
        System.getProperty("user.name"),
        firstLine(Path.of("/etc/machine-id")),
        firstLine(Path.of("/proc/sys/kernel/random/boot_id")),
        procShowsOwnPids(pid) ? link(Path.of("/proc/self/ns/pid")) : null,
        bootTime(Path.of("/proc/stat")));
  }

  /**
   * Whether {@code /proc} shows the pids of this process's own PID namespace: not so in a namespace
   * made without mounting its own {@code /proc} ({@code unshare --pid --fork}), where pids looked
   * up there are another namespace's (a live holder's lock was judged stale). Without it no pid is
   * judged: the PID namespace is recorded as unknown.
   */
  static boolean procShowsOwnPids(long pid) {
    String self = link(Path.of("/proc/self"));
    return self != null && self.equals(Long.toString(pid));
  }

  private static Instant bootTime(Path stat) {
    try {
      for (String line : Files.readAllLines(stat, StandardCharsets.US_ASCII)) {
        if (line.startsWith("btime ")) {
          return Instant.ofEpochSecond(Long.parseLong(line.substring(6).strip()));
        }
      }
    } catch (IOException | RuntimeException e) {
      // unknown
    }
    return null;
  }

  private static String hostName() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (UnknownHostException e) {
      return "unknown";
    }
  }

  private static String firstLine(Path p) {
    try {
      String s = Files.readString(p, StandardCharsets.US_ASCII).strip();
      return s.isEmpty() ? null : s;
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  private static String link(Path p) {
    try {
      return Files.readSymbolicLink(p).toString();
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }
}
