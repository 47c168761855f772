package io.granule.engine.internal.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * The record of one freeze by one granule process, written before its {@code fsfreeze -f} runs and
 * removed once the mount is known thawed, so that the next granule command can thaw what a process
 * killed with SIGKILL left frozen ({@link FsFreeze#thawStale}).
 *
 * <p>Each freeze has a record of its own, named by the freezer's pid, its process start time and a
 * random nonce: two freezes of one mount (two jobs of a server, a server and a cron run) never
 * share or delete each other's. It identifies the freezer by pid <em>and</em> start time (field 22
 * of {@code /proc/PID/stat}), within one boot and pid namespace, so that a reused pid is not taken
 * for it; and the filesystem by the mount point's {@code st_dev} and the mount id in {@code
 * /proc/self/mountinfo}, so that whatever is mounted there later is not thawed for it. It also
 * carries the freeze's deadline: a granule freeze never lasts past its limit, so a record found
 * past {@link #STALE_MARGIN} after it is dropped rather than acted on (the filesystem was thawed by
 * hand, or a freeze there now is someone else's).
 */
final class FreezeRecord {
  static final String MAGIC = "granule-freeze 2";
  static final String SUFFIX = ".frozen";

  /**
   * How long past its deadline a record still leads to a thaw. Past it, a freeze there is not taken
   * for the dead freezer's: a filesystem thawed by hand leaves the record behind, and another tool
   * may freeze it later.
   */
  static final Duration STALE_MARGIN = Duration.ofHours(1);

  final long pid;
  final long startTime; // jiffies after boot, -1 if unknown
  final String bootId;
  final String pidNs;
  final String mntNs;
  final Path mount;
  final long dev; // st_dev of the mount point, -1 if unknown
  final long mountId; // in mntNs, -1 if unknown
  final long frozenAt; // epoch ms
  final long deadline; // epoch ms: frozenAt + limit + one fsfreeze step
  final String nonce;
  final boolean legacy; // "PID\nMOUNT\n" of granule before records were per freeze

  FreezeRecord(
      long pid,
      long startTime,
      String bootId,
      String pidNs,
      String mntNs,
      Path mount,
      long dev,
      long mountId,
      long frozenAt,
      long deadline,
      String nonce,
      boolean legacy) {
    this.pid = pid;
    this.startTime = startTime;
    this.bootId = bootId;
    this.pidNs = pidNs;
    this.mntNs = mntNs;
    this.mount = mount;
    this.dev = dev;
    this.mountId = mountId;
    this.frozenAt = frozenAt;
    this.deadline = deadline;
    this.nonce = nonce;
    this.legacy = legacy;
  }

  /**
   * A record of a freeze of {@code mount} (its real path; {@code dev} and {@code mountId} those of
   * the directory held, -1 if unknown) by this process, lasting at most {@code limit}.
   */
  static FreezeRecord ofThisProcess(Path mount, long dev, long mountId, Duration limit, Host host) {
    long pid = ProcessHandle.current().pid();
    byte[] n = new byte[8];
    new SecureRandom().nextBytes(n);
    long now = host.nowMillis();
    return new FreezeRecord(
        pid,
        host.startTime(pid).orElse(-1),
        host.bootId(),
        host.pidNs(),
        host.mntNs(),
        mount,
        dev,
        mountId,
        now,
        now + limit.toMillis() + FsFreeze.stepLimit.toMillis(),
        HexFormat.of().formatHex(n),
        false);
  }

  /** The file name: unique per freeze. */
  String fileName() {
    return pid + "-" + startTime + "-" + nonce + SUFFIX;
  }

  String format() {
    return MAGIC
        + "\npid="
        + pid
        + "\nstart="
        + startTime
        + "\nboot="
        + bootId
        + "\npidns="
        + pidNs
        + "\nmntns="
        + mntNs
        + "\ndev="
        + dev
        + "\nmountid="
        + mountId
        + "\nfrozenat="
        + frozenAt
        + "\ndeadline="
        + deadline
        + "\nnonce="
        + nonce
        + "\nmount="
        + escape(mount.toString())
        + "\n";
  }

  /**
   * Reads a record; one in the old format ({@code PID\nMOUNT\n}) is {@link #legacy}.
   *
   * @throws IllegalArgumentException if it is neither
   */
  static FreezeRecord parse(String text) {
    List<String> lines = text.lines().toList();
    if (lines.isEmpty()) {
      throw new IllegalArgumentException("empty");
    }
    if (!lines.get(0).equals(MAGIC)) {
      if (lines.size() >= 2 && lines.get(0).trim().matches("\\d+")) {
        return new FreezeRecord(
            Long.parseLong(lines.get(0).trim()),
            -1,
            "",
            "",
            "",
            Path.of(lines.get(1).trim()),
            -1,
            -1,
            0,
            0,
            "",
            true);
      }
      throw new IllegalArgumentException("not a freeze record");
    }
    Map<String, String> f = new LinkedHashMap<>();
    for (String l : lines.subList(1, lines.size())) {
      int eq = l.indexOf('=');
      if (eq > 0) {
        f.put(l.substring(0, eq), l.substring(eq + 1));
      }
    }
    for (String k :
        List.of(
            "pid",
            "start",
            "boot",
            "pidns",
            "mntns",
            "dev",
            "mountid",
            "frozenat",
            "deadline",
            "nonce",
            "mount")) {
      if (!f.containsKey(k)) {
        throw new IllegalArgumentException("no " + k);
      }
    }
    return new FreezeRecord(
        Long.parseLong(f.get("pid")),
        Long.parseLong(f.get("start")),
        f.get("boot"),
        f.get("pidns"),
        f.get("mntns"),
        Path.of(unescape(f.get("mount"))),
        Long.parseLong(f.get("dev")),
        Long.parseLong(f.get("mountid")),
        Long.parseLong(f.get("frozenat")),
        Long.parseLong(f.get("deadline")),
        f.get("nonce"),
        false);
  }

  /** What {@link FsFreeze#thawStale} does with a record. */
  enum Verdict {
    /** Its freezer may be alive: leave it. */
    KEEP,
    /** Its freezer is gone, and the filesystem there is the one it froze: thaw it. */
    THAW,
    /** From an older granule: it cannot be checked; drop it, with a warning. */
    DROP_LEGACY,
    /** Written before the last boot, which thawed everything. */
    DROP_REBOOTED,
    /** Past its deadline and the margin: a freeze there now is not taken for its freezer's. */
    DROP_EXPIRED,
    /** The filesystem there is not the one it froze (unmounted, or another mounted there). */
    DROP_OTHER_FILESYSTEM
  }

  /** What this record says to do now, by what {@code host} sees at {@link #mount}. */
  Verdict verdict(Host host) {
    return verdict(host, mount);
  }

  /**
   * What this record says to do now, by what {@code host} sees at {@code at}: where the mount point
   * was resolved and is held ({@code /proc/PID/fd/N}), or its path.
   */
  Verdict verdict(Host host, Path at) {
    if (legacy) {
      return Verdict.DROP_LEGACY;
    }
    if (!bootId.equals(host.bootId())) {
      return Verdict.DROP_REBOOTED;
    }
    boolean expired = host.nowMillis() > deadline + STALE_MARGIN.toMillis();
    if (!pidNs.equals(host.pidNs())) {
      // its pid means nothing here: judge it by its deadline only
      return expired ? Verdict.DROP_EXPIRED : Verdict.KEEP;
    }
    if (freezerAlive(host)) {
      return Verdict.KEEP;
    }
    if (expired) {
      return Verdict.DROP_EXPIRED;
    }
    if (host.freezeUnderWay(mount, dev)) {
      return Verdict.KEEP; // a thaw now would be answered EINVAL, and that freeze take effect after
    }
    return sameFilesystem(host, at) ? Verdict.THAW : Verdict.DROP_OTHER_FILESYSTEM;
  }

  /** Whether the process that froze may still be running (a reused pid is not it). */
  boolean freezerAlive(Host host) {
    if (!pidNs.equals(host.pidNs())) {
      return true; // unknowable from here
    }
    OptionalLong start = host.startTime(pid);
    return start.isPresent() && (startTime < 0 || start.getAsLong() == startTime);
  }

  /** Whether what is at {@code at} (the mount point) now is the filesystem this record froze. */
  boolean sameFilesystem(Host host, Path at) {
    OptionalLong d = host.dev(at);
    if (d.isEmpty() || dev < 0 || d.getAsLong() != dev) {
      return false;
    }
    if (mntNs.equals(host.mntNs()) && mountId >= 0) {
      OptionalLong id = host.mountId(at);
      return id.isPresent() && id.getAsLong() == mountId;
    }
    return true; // another mount namespace: its mount ids are not ours; the device must do
  }

  /** Whether both records are of one filesystem (for a live freeze of it beside a stale one). */
  boolean sameFilesystemAs(FreezeRecord o) {
    return dev >= 0 && dev == o.dev;
  }

  private static String escape(String s) {
    return s.replace("\\", "\\\\").replace("\n", "\\n");
  }

  private static String unescape(String s) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 1 < s.length()) {
        char n = s.charAt(++i);
        b.append(n == 'n' ? '\n' : n);
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  /** What a record is checked against: this machine, or a test's stand-in. */
  interface Host {
    long nowMillis();

    String bootId();

    String pidNs();

    String mntNs();

    /** The start time of process {@code pid} (field 22 of its stat), empty if there is none. */
    OptionalLong startTime(long pid);

    /** {@code st_dev} of {@code path}, empty if it cannot be read. */
    OptionalLong dev(Path path);

    /**
     * The id of the mount {@code path} is on, in this mount namespace, empty if unknown; for a
     * {@code /proc/PID/fd/N} path, that of the descriptor.
     */
    OptionalLong mountId(Path path);

    /**
     * Whether an {@code fsfreeze -f} of the filesystem at {@code path} (device {@code dev}) runs,
     * left by a freezer that exited meanwhile. Only a process that can freeze counts: the real
     * fsfreeze binary, run by root (or with CAP_SYS_ADMIN); anyone can name a process {@code
     * fsfreeze} and give it {@code -f PATH} as arguments.
     */
    boolean freezeUnderWay(Path path, long dev);
  }

  /** The real machine: {@code /proc}. */
  static final Host LINUX =
      new Host() {
        @Override
        public long nowMillis() {
          return System.currentTimeMillis();
        }

        @Override
        public String bootId() {
          return read(Path.of("/proc/sys/kernel/random/boot_id")).orElse("");
        }

        @Override
        public String pidNs() {
          return link(Path.of("/proc/self/ns/pid"));
        }

        @Override
        public String mntNs() {
          return link(Path.of("/proc/self/ns/mnt"));
        }

        @Override
        public OptionalLong startTime(long pid) {
          Optional<String> stat = read(Path.of("/proc/" + pid + "/stat"));
          if (stat.isEmpty()) {
            return OptionalLong.empty();
          }
          return startTimeOf(stat.get());
        }

        @Override
        public OptionalLong dev(Path path) {
          try {
            return OptionalLong.of(((Number) Files.getAttribute(path, "unix:dev")).longValue());
          } catch (IOException | RuntimeException e) {
            return OptionalLong.empty();
          }
        }

        @Override
        public OptionalLong mountId(Path path) {
          if (path.startsWith("/proc") && path.getParent().endsWith("fd")) {
            return MountInfo.mountIdOfDescriptor(path);
          }
          try {
            return mountIdIn(MountInfo.read(MountInfo.SELF), path.toRealPath());
          } catch (IOException | RuntimeException e) {
            return OptionalLong.empty();
          }
        }

        @Override
        public boolean freezeUnderWay(Path path, long dev) {
          Optional<Object> binary = fsfreezeBinary();
          if (binary.isEmpty()) {
            return false; // none to run: none runs
          }
          try (var procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.toList()) {
              if (!p.getFileName().toString().matches("\\d+")) {
                continue;
              }
              try {
                if (isFreeze(p, binary.get(), path, dev)) {
                  return true;
                }
              } catch (IOException | RuntimeException gone) {
                // ended meanwhile, or not ours to read
              }
            }
          } catch (IOException | RuntimeException e) {
            return false;
          }
          return false;
        }

        /** The device and inode of the fsfreeze that {@link FsFreeze#run} executes. */
        private Optional<Object> fsfreezeBinary() {
          String cmd = FsFreeze.command;
          List<Path> candidates = new java.util.ArrayList<>();
          if (cmd.contains("/")) {
            candidates.add(Path.of(cmd));
          } else {
            String pathVar = System.getenv("PATH");
            for (String d :
                (pathVar == null ? "/usr/sbin:/usr/bin:/sbin:/bin" : pathVar).split(":")) {
              if (!d.isEmpty()) {
                candidates.add(Path.of(d, cmd));
              }
            }
          }
          for (Path c : candidates) {
            if (Files.isRegularFile(c) && Files.isExecutable(c)) {
              try {
                return Optional.of(Files.readAttributes(c, "unix:dev,ino"));
              } catch (IOException | RuntimeException e) {
                return Optional.empty();
              }
            }
          }
          return Optional.empty();
        }

        /**
         * Whether process {@code proc} ({@code /proc/PID}) is a freeze of the filesystem at {@code
         * path}: it runs {@code binary} with root's power, has {@code -f}, and names {@code path}
         * or holds a directory of device {@code dev} open (fsfreeze opens what it freezes).
         */
        private boolean isFreeze(Path proc, Object binary, Path path, long dev) throws IOException {
          if (!mayFreeze(Files.readString(proc.resolve("status"), StandardCharsets.UTF_8))) {
            return false;
          }
          if (!binary.equals(Files.readAttributes(proc.resolve("exe"), "unix:dev,ino"))) {
            return false; // another program, named fsfreeze
          }
          byte[] raw = Files.readAllBytes(proc.resolve("cmdline"));
          List<String> argv = List.of(new String(raw, StandardCharsets.UTF_8).split("\0"));
          if (!argv.contains("-f") && !argv.contains("--freeze")) {
            return false;
          }
          if (argv.get(argv.size() - 1).equals(path.toString())) {
            return true;
          }
          if (dev < 0) {
            return false;
          }
          try (var fds = Files.list(proc.resolve("fd"))) {
            for (Path fd : fds.toList()) {
              try {
                if (Files.isDirectory(fd)
                    && ((Number) Files.getAttribute(fd, "unix:dev")).longValue() == dev) {
                  return true;
                }
              } catch (IOException | RuntimeException closed) {
                // closed meanwhile
              }
            }
          }
          return false;
        }

        private Optional<String> read(Path p) {
          try {
            return Optional.of(Files.readString(p, StandardCharsets.UTF_8).trim());
          } catch (IOException | RuntimeException e) {
            return Optional.empty();
          }
        }

        private String link(Path p) {
          try {
            return Files.readSymbolicLink(p).toString();
          } catch (IOException | RuntimeException e) {
            return "";
          }
        }
      };

  /**
   * Whether the process of {@code /proc/PID/status} text {@code status} may freeze a filesystem:
   * effective uid 0, or CAP_SYS_ADMIN in its effective set (FIFREEZE needs it).
   */
  static boolean mayFreeze(String status) {
    boolean root = false;
    boolean admin = false;
    for (String l : status.split("\n")) {
      String[] f = l.split("\\s+");
      if (f[0].equals("Uid:") && f.length >= 3) {
        root = f[2].equals("0");
      } else if (f[0].equals("CapEff:") && f.length >= 2) {
        try {
          admin = (new java.math.BigInteger(f[1], 16).testBit(21)); // CAP_SYS_ADMIN
        } catch (NumberFormatException e) {
          admin = false;
        }
      }
    }
    return root || admin;
  }

  /** Field 22 (starttime) of a {@code /proc/PID/stat} line; the name (2) may hold spaces. */
  static OptionalLong startTimeOf(String stat) {
    int close = stat.lastIndexOf(')');
    if (close < 0) {
      return OptionalLong.empty();
    }
    String[] rest = stat.substring(close + 1).trim().split("\\s+");
    // rest[0] is field 3 (state)
    if (rest.length < 20) {
      return OptionalLong.empty();
    }
    try {
      return OptionalLong.of(Long.parseLong(rest[19]));
    } catch (NumberFormatException e) {
      return OptionalLong.empty();
    }
  }

  /**
   * The mount id of the mount {@code path} (a real path) is on: the last entry (the one on top)
   * with the longest mount point that contains it.
   */
  static OptionalLong mountIdIn(String mountinfo, Path path) {
    long id = -1;
    int best = -1;
    for (String line : mountinfo.split("\n")) {
      String[] f = line.split(" ");
      if (f.length < 5) {
        continue;
      }
      Path mp = Path.of(BlockDeviceClaim.unescape(f[4]));
      if (path.startsWith(mp) && mp.getNameCount() >= best) {
        best = mp.getNameCount();
        id = Long.parseLong(f[0]);
      }
    }
    return id < 0 ? OptionalLong.empty() : OptionalLong.of(id);
  }
}
