package io.granule.engine.internal.image;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

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
      for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
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
      long rdev = (Long) Files.getAttribute(device, "unix:rdev");
      long major = ((rdev >>> 8) & 0xfff) | ((rdev >>> 32) & ~0xfffL);
      long minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xffL);
      return major + ":" + minor;
    } catch (IOException | RuntimeException e) {
      return null;
    }
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
   * writing the file writes them.
   */
  public static List<Path> loopDevicesBackedBy(Path file) {
    List<Path> loops = new ArrayList<>();
    Object key;
    try {
      key = Files.readAttributes(file, "unix:dev,ino");
    } catch (IOException | RuntimeException e) {
      return loops;
    }
    try (var entries = Files.newDirectoryStream(Path.of("/sys/block"), "loop*")) {
      for (Path loop : entries) {
        Path backing = loop.resolve("loop").resolve("backing_file");
        if (!Files.isRegularFile(backing)) {
          continue;
        }
        String name = Files.readString(backing).trim();
        try {
          if (key.equals(Files.readAttributes(Path.of(name), "unix:dev,ino"))) {
            loops.add(Path.of("/dev", loop.getFileName().toString()));
          }
        } catch (IOException | RuntimeException e) {
          // a deleted backing file, or one under another mount namespace
        }
      }
    } catch (IOException e) {
      // no sysfs
    }
    return loops;
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
