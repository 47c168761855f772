package io.granule.engine.internal.app;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Whether a host path lives on one of the disks a backup reads (Linux): the filesystem holding the
 * path is found in {@code /proc/self/mountinfo}; a disk covers it if it is that block device, the
 * whole disk of that partition, or an image file a loop device (or its partition) under that
 * filesystem is backed by. Used to warn when an application's data is not in the snapshot.
 */
public final class DiskCoverage {
  private final Path mountinfo;
  private final Path sysBlock;

  public DiskCoverage() {
    this(Path.of("/proc/self/mountinfo"), Path.of("/sys/class/block"));
  }

  DiskCoverage(Path mountinfo, Path sysBlock) {
    this.mountinfo = mountinfo;
    this.sysBlock = sysBlock;
  }

  /**
   * True if one of {@code disks} holds {@code path}, false if none does, empty if it cannot be told
   * (the path does not exist here, e.g. it is inside a VM, or the system does not say).
   */
  public Optional<Boolean> covers(List<Path> disks, Path path) {
    try {
      if (!Files.exists(path)) {
        return Optional.empty();
      }
      String device = deviceOf(path.toRealPath());
      if (device == null || device.startsWith("0:")) {
        // not a block-device filesystem (tmpfs, overlay, FUSE): nothing a disk backup reads
        return Optional.empty();
      }
      Set<String> holders = new HashSet<>();
      holders.add(device);
      String name = nameOf(device);
      if (name != null) {
        // a partition: its whole disk also holds it
        Path parent = sysBlock.resolve(name).toRealPath().getParent();
        Path dev = parent == null ? null : parent.resolve("dev");
        if (dev != null && !Files.exists(parent.resolve("partition")) && Files.exists(dev)) {
          holders.add(Files.readString(dev, StandardCharsets.US_ASCII).trim());
        }
      }
      for (Path disk : disks) {
        if (!Files.exists(disk)) {
          continue;
        }
        Path real = disk.toRealPath();
        if (Files.isRegularFile(real)) {
          String loop = name == null ? null : loopOf(name);
          if (loop != null && backs(loop, real)) {
            return Optional.of(true);
          }
        } else {
          Path dev = sysBlock.resolve(real.getFileName().toString()).resolve("dev");
          if (Files.exists(dev)
              && holders.contains(Files.readString(dev, StandardCharsets.US_ASCII).trim())) {
            return Optional.of(true);
          }
        }
      }
      return Optional.of(false);
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  /** major:minor of the filesystem holding {@code real}: the longest mount point prefix. */
  String deviceOf(Path real) throws IOException {
    String[] mount =
        io.granule.engine.internal.image.BlockDeviceClaim.mountHolding(real, mountinfo);
    return mount == null ? null : mount[2];
  }

  /** The block device name (e.g. {@code loop3p1}) with this major:minor, or null. */
  private String nameOf(String majorMinor) throws IOException {
    if (!Files.isDirectory(sysBlock)) {
      return null;
    }
    try (var s = Files.list(sysBlock)) {
      for (Path p : s.toList()) {
        Path dev = p.resolve("dev");
        if (Files.exists(dev)
            && Files.readString(dev, StandardCharsets.US_ASCII).trim().equals(majorMinor)) {
          return p.getFileName().toString();
        }
      }
    }
    return null;
  }

  /** The loop device behind {@code name} ({@code loop3} for {@code loop3} or {@code loop3p1}). */
  private static String loopOf(String name) {
    if (!name.startsWith("loop")) {
      return null;
    }
    int p = name.indexOf('p', 4);
    return p < 0 ? name : name.substring(0, p);
  }

  /**
   * Whether loop device {@code loop} is backed by the image file {@code real}: by the name sysfs
   * shows (which may end in spaces), else by the file's device and inode (a name renamed or deleted
   * since the loop device was set up, or one under a mount since detached, still backs it).
   */
  private boolean backs(String loop, Path real) throws IOException {
    if (real.toString()
        .equals(
            io.granule.engine.internal.image.BlockDeviceClaim.backingFileName(
                sysBlock.resolve(loop)))) {
      return true;
    }
    return io.granule.engine.internal.image.BlockDeviceClaim.loopDevicesBackedBy(real)
        .contains(Path.of("/dev", loop));
  }
}
