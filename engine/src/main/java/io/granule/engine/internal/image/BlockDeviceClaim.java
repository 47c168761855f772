package io.granule.engine.internal.image;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * An exclusive claim on a block device for as long as a restore writes it: the device opened with
 * {@code O_EXCL} (through {@code libgranule-native}), which the kernel refuses while the device is
 * mounted, holds a mounted partition or is a partition of a disk claimed whole, backs device mapper
 * (LVM), md or swap, or is claimed by another exclusive opener (another restore, whatever device
 * node it named). Writing a disk over a mounted file system destroys it (the one holding the
 * repository being read, say); {@code mkfs} and {@code wipefs} refuse the same way.
 *
 * <p>Where the library cannot be loaded, the same is checked from {@code /proc/self/mountinfo},
 * {@code /proc/swaps} and the device's {@code holders} in sysfs (no claim is then held).
 */
public final class BlockDeviceClaim implements AutoCloseable {
  private static final int EBUSY = 16;

  private final int fd;

  private BlockDeviceClaim(int fd) {
    this.fd = fd;
  }

  /** Thrown when a device is in use: the message says by what, and what to do. */
  public static final class DeviceBusyException extends IOException {
    private static final long serialVersionUID = 1L;

    DeviceBusyException(String message) {
      super(message);
    }
  }

  /**
   * Claims {@code device} (links followed) exclusively.
   *
   * @throws DeviceBusyException if it is in use
   * @throws IOException if this host cannot be asked
   */
  public static BlockDeviceClaim claim(Path device) throws IOException {
    String why = NativeLibrary.unavailableReason();
    if (why == null) {
      int fd;
      try {
        fd = claim0((device.toAbsolutePath() + "\0").getBytes(StandardCharsets.UTF_8));
      } catch (UnsatisfiedLinkError e) {
        fd = Integer.MIN_VALUE;
      }
      if (fd >= 0) {
        return new BlockDeviceClaim(fd);
      }
      if (fd == -EBUSY) {
        String user = inUseBy(device);
        throw new DeviceBusyException(
            "'"
                + device
                + "' is in use"
                + (user == null
                    ? " (mounted, a partition of it mounted, or held by another program)"
                    : " (" + user + ")")
                + ": unmount it or stop what holds it first; writing a disk over it would destroy"
                + " what is on it");
      }
      // not opened (no permission to read it, say): judged from what this host shows, below
    }
    String user = inUseBy(device);
    if (user != null) {
      throw new DeviceBusyException(
          "'" + device + "' is in use (" + user + "): unmount it or stop what holds it first");
    }
    return new BlockDeviceClaim(-1);
  }

  /**
   * What uses {@code device} or a partition of it, as far as this host shows (mounts, swap, device
   * mapper and md holders), in words; null if nothing does.
   */
  static String inUseBy(Path device) {
    String majMin = majorMinor(device);
    if (majMin == null) {
      return null;
    }
    List<String> devices = new ArrayList<>(List.of(majMin));
    Path sys = Path.of("/sys/dev/block", majMin);
    try (var entries = Files.newDirectoryStream(sys)) {
      for (Path e : entries) {
        Path dev = e.resolve("dev");
        if (Files.exists(e.resolve("partition")) && Files.isRegularFile(dev)) {
          devices.add(Files.readString(dev).trim());
        }
      }
    } catch (IOException e) {
      // no sysfs: the device alone
    }
    List<String> uses = new ArrayList<>();
    try {
      for (String line : MountInfo.lines(MountInfo.SELF)) {
        String[] f = line.split(" ");
        if (f.length > 4 && devices.contains(f[2])) {
          uses.add("mounted at " + unescape(f[4]));
        }
      }
    } catch (IOException e) {
      // not Linux
    }
    for (String d : devices) {
      Path holders = Path.of("/sys/dev/block", d, "holders");
      try (var entries = Files.newDirectoryStream(holders)) {
        for (Path h : entries) {
          uses.add("held by " + h.getFileName());
        }
      } catch (IOException e) {
        // none
      }
    }
    try {
      String real = device.toRealPath().toString();
      for (String line : Files.readAllLines(Path.of("/proc/swaps"))) {
        if (line.startsWith(real + " ") || line.startsWith(real + "\t")) {
          uses.add("used as swap");
        }
      }
    } catch (IOException e) {
      // no swap list
    }
    return uses.isEmpty() ? null : String.join(", ", uses.stream().distinct().toList());
  }

  /** {@code MAJOR:MINOR} of a block device (links followed), or null. */
  static String majorMinor(Path device) {
    try {
      return majorMinorOf((Long) Files.getAttribute(device, "unix:rdev"));
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /**
   * The fields of the line of {@code mountinfo} (a {@code /proc/self/mountinfo}) for the mount in
   * effect at {@code real} (a path with links resolved): the last mount on the longest mount point
   * holding it; null if none does.
   */
  public static String[] mountHolding(Path real, Path mountinfo) throws IOException {
    String[] best = null;
    int bestLength = -1;
    for (String line : MountInfo.lines(mountinfo)) {
      String[] f = line.split(" ");
      if (f.length < 5) {
        continue;
      }
      String mountPoint = unescape(f[4]);
      if ((real.toString().equals(mountPoint) || real.startsWith(Path.of(mountPoint)))
          && mountPoint.length() >= bestLength) {
        best = f;
        bestLength = mountPoint.length();
      }
    }
    return best;
  }

  /** A field of {@code /proc/self/mountinfo}: spaces and the like are octal escapes there. */
  public static String unescape(String s) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 3 < s.length() && s.substring(i + 1, i + 4).matches("[0-7]{3}")) {
        b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
        i += 3;
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  /**
   * The loop devices whose backing file is {@code file} (by device and inode), as device paths:
   * writing the file writes them. Asked of the kernel through {@code losetup} (the backing file's
   * device and inode, whatever its name: a name with trailing spaces, a deleted name with another
   * hard link, a name under a mount since detached), and from sysfs' backing file names too.
   */
  public static List<Path> loopDevicesBackedBy(Path file) {
    List<Path> loops = new ArrayList<>();
    Map<String, Object> key;
    try {
      key = Files.readAttributes(file, "unix:dev,ino");
    } catch (IOException | RuntimeException e) {
      return loops;
    }
    String devMajMin = majorMinorOf((Long) key.get("dev"));
    for (LoopDevice l : loopDevices()) {
      if (l.backingIno() == ((Number) key.get("ino")).longValue()
          && devMajMin.equals(l.backingMajMin())) {
        loops.add(l.device());
      }
    }
    try (var entries = Files.newDirectoryStream(Path.of("/sys/block"), "loop*")) {
      for (Path loop : entries) {
        String name = backingFileName(loop);
        if (name == null) {
          continue;
        }
        try {
          Path dev = Path.of("/dev", loop.getFileName().toString());
          if (key.equals(Files.readAttributes(Path.of(name), "unix:dev,ino"))
              && !loops.contains(dev)) {
            loops.add(dev);
          }
        } catch (IOException | RuntimeException e) {
          // a deleted backing file, or one under another mount namespace: see losetup above
        }
      }
    } catch (IOException e) {
      // no sysfs
    }
    return loops;
  }

  /**
   * The other loop devices over the same backing file as loop device {@code loop} (two loop devices
   * over one file are the same bytes: writing one writes what the other, perhaps mounted, shows).
   */
  public static List<Path> loopSiblings(Path loop) {
    List<Path> siblings = new ArrayList<>();
    String mine = majorMinor(loop);
    if (mine == null) {
      return siblings;
    }
    List<LoopDevice> all = loopDevices();
    LoopDevice self = null;
    for (LoopDevice l : all) {
      if (mine.equals(majorMinor(l.device()))) {
        self = l;
      }
    }
    if (self == null) {
      return siblings;
    }
    for (LoopDevice l : all) {
      if (l != self
          && l.backingIno() == self.backingIno()
          && l.backingMajMin().equals(self.backingMajMin())) {
        siblings.add(l.device());
      }
    }
    return siblings;
  }

  /**
   * The loop devices backed by block device {@code dev} (stacked on it: they show its bytes, and
   * one of them may be mounted).
   */
  public static List<Path> loopsStackedOn(Path dev) {
    List<Path> out = new ArrayList<>();
    String mine = majorMinor(dev);
    if (mine == null || mine.equals("0:0")) {
      return out;
    }
    try (var entries = Files.newDirectoryStream(Path.of("/sys/block"), "loop*")) {
      for (Path loop : entries) {
        try {
          String name = backingFileName(loop);
          if (name == null) {
            continue;
          }
          Path b = Path.of(name);
          if ((((Integer) Files.getAttribute(b, "unix:mode")) & 0170000) == 0060000
              && mine.equals(majorMinor(b))) {
            out.add(Path.of("/dev", loop.getFileName().toString()));
          }
        } catch (IOException | RuntimeException e) {
          // its backing name is not reachable from here
        }
      }
    } catch (IOException e) {
      // no sysfs
    }
    return out;
  }

  /**
   * If block device {@code dev} is a partition: its whole disk's node and its partition number;
   * else null (sysfs: a partition's directory has a {@code partition} file and sits in its disk's).
   */
  public static java.util.Map.Entry<Path, Integer> partitionOf(Path dev) {
    String majMin = majorMinor(dev);
    if (majMin == null) {
      return null;
    }
    try {
      Path sys = Path.of("/sys/dev/block", majMin);
      Path number = sys.resolve("partition");
      if (!Files.isRegularFile(number)) {
        return null;
      }
      Path whole = Path.of("/dev", sys.toRealPath().getParent().getFileName().toString());
      return Files.exists(whole)
          ? java.util.Map.entry(whole, Integer.parseInt(Files.readString(number).trim()))
          : null;
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /**
   * The block device loop device {@code loop} is backed by (a loop device stacked on another
   * device), or null if it is backed by a file or is no loop device.
   */
  public static Path loopBackingDevice(Path loop) {
    Path dev = loopBackingFile(loop);
    try {
      return dev != null && (((Integer) Files.getAttribute(dev, "unix:mode")) & 0170000) == 0060000
          ? dev
          : null;
    } catch (IOException | RuntimeException e) {
      return null; // its backing name is not reachable from here
    }
  }

  /**
   * The name sysfs shows for what loop device {@code loop} is backed by (a file or a device), or
   * null if it is no loop device.
   */
  public static Path loopBackingFile(Path loop) {
    String majMin = majorMinor(loop);
    if (majMin == null) {
      return null;
    }
    try {
      String name = backingFileName(Path.of("/sys/dev/block", majMin));
      return name == null ? null : Path.of(name);
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /**
   * The backing file name sysfs shows for the block device at {@code sysDevice} (a {@code
   * /sys/block/loopN} directory), or null if it is no loop device with one. Only the line's end is
   * cut: names may end in spaces.
   */
  public static String backingFileName(Path sysDevice) throws IOException {
    Path backing = sysDevice.resolve("loop").resolve("backing_file");
    if (!Files.isRegularFile(backing)) {
      return null;
    }
    String name = Files.readString(backing);
    return name.endsWith("\n") ? name.substring(0, name.length() - 1) : name;
  }

  /** A loop device and its backing file's inode and device ({@code MAJOR:MINOR}). */
  public record LoopDevice(Path device, long backingIno, String backingMajMin) {}

  /**
   * Loop device {@code name} ({@code loop1}) with the inode and device of the file behind it as the
   * kernel holds them ({@code LOOP_GET_STATUS64}'s {@code lo_inode} and {@code lo_device}, through
   * {@code losetup}), whatever name sysfs shows for it; null if it is no loop device with a backing
   * file or this cannot be asked.
   */
  public static LoopDevice loopDevice(String name) {
    for (LoopDevice l : loopDevices()) {
      Path n = l.device().getFileName();
      if (n != null && n.toString().equals(name)) {
        return l;
      }
    }
    return null;
  }

  /**
   * Every loop device with a backing file, from {@code losetup --list --json}; empty without it.
   */
  static List<LoopDevice> loopDevices() {
    List<LoopDevice> out = new ArrayList<>();
    try {
      Process p =
          new ProcessBuilder(
                  "losetup", "--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN")
              .redirectErrorStream(false)
              .redirectError(ProcessBuilder.Redirect.DISCARD)
              .start();
      byte[] json = p.getInputStream().readAllBytes();
      if (!p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
        p.destroyForcibly();
        return out;
      }
      if (json.length == 0) {
        return out; // no loop devices
      }
      var root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(json);
      for (var d : root.path("loopdevices")) {
        String name = d.path("name").asText(null);
        var ino = d.path("back-ino");
        String majMin = d.path("back-maj:min").asText("").trim();
        if (name != null && ino.canConvertToLong() && !majMin.isEmpty()) {
          out.add(new LoopDevice(Path.of(name), ino.asLong(), majMin));
        }
      }
    } catch (IOException | RuntimeException e) {
      // no losetup: sysfs names only
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return out;
  }

  /** {@code MAJOR:MINOR} of a {@code dev_t}. */
  public static String majorMinorOf(long dev) {
    long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
    long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
    return major + ":" + minor;
  }

  @Override
  public void close() throws IOException {
    if (fd >= 0) {
      // the partition table is read again by the claim's holder: udev's request after the
      // writes is refused while the claim is held, and a restored disk's partitions would not show
      int r = release0(fd, true);
      if (r != 0) {
        throw new IOException("unable to close a claimed device: errno " + -r);
      }
    }
  }

  private static native int claim0(byte[] path);

  private static native int release0(int fd, boolean rereadPartitions);
}
