package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Locale;

/** Opens backing (parent) images by format name or by probing, following a {@link Chain}. */
final class Images {
  private Images() {}

  /** Opens one format's reader on a file, which it owns on success. */
  interface Opener {
    DiskImage open(ImageFile file, Chain chain) throws IOException;
  }

  /** Opens a top-level image (the start of its chain) with {@code opener}. */
  static DiskImage openTop(Path path, Opener opener) throws IOException {
    Chain chain = Chain.empty().enter(path, null);
    ImageFile file = ImageFile.open(path);
    try {
      return opener.open(file, chain);
    } catch (IOException | RuntimeException e) {
      file.close();
      throw e;
    }
  }

  /**
   * Opens the backing image {@code path} of {@code child}.
   *
   * @param format the backing format the child names (qemu's names: qcow2, raw, vmdk, vpc, vhdx),
   *     or null to probe
   */
  static DiskImage openBacking(ImageFile child, Path path, String format, Chain chain)
      throws IOException {
    Chain next = chain.enter(path, child);
    ImageFile file = ImageFile.open(path);
    try {
      // a block device is raw unless the child names its format: who can write a device (another
      // node of it, a descriptor held open) cannot be known, so a header on it is no one's word
      String name =
          format != null
              ? format.toLowerCase(Locale.ROOT)
              : isBlockDevice(path) ? "raw" : detect(file);
      switch (name) {
        case "raw":
        case "file":
          return RawImage.open(file);
        case "qcow2":
          return Qcow2Reader.open(file, next);
        case "vmdk":
          return VmdkReader.open(file, next);
        case "vpc":
        case "vhd":
          return VhdReader.open(file, next);
        case "vhdx":
          return VhdxReader.open(file, next);
        default:
          throw child.openError(
              "backing file '"
                  + path
                  + "' has format '"
                  + format
                  + "', which is not supported (supported: qcow2, raw, vmdk, vpc, vhdx)");
      }
    } catch (IOException | RuntimeException e) {
      file.close();
      throw e;
    }
  }

  /** Whether {@code path} (links followed) is a block device. */
  static boolean isBlockDevice(Path path) {
    try {
      return (((Integer) java.nio.file.Files.getAttribute(path, "unix:mode")) & 0170000) == 0060000;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /** The best format for the file by probing its head; raw if no format claims it. */
  static String detect(ImageFile file) throws IOException {
    int n = (int) Math.min(DiskImageFormat.PROBE_BYTES, file.size());
    ByteBuffer head = file.read("image header", 0, n, ByteOrder.BIG_ENDIAN, true);
    String best = "raw";
    int bestScore = 0;
    for (DiskImageFormat f :
        new DiskImageFormat[] {
          new Qcow2Format(), new VmdkFormat(), new VhdFormat(), new VhdxFormat()
        }) {
      int score = f.probe(head.duplicate(), file.size());
      if (score > bestScore) {
        best = f.name();
        bestScore = score;
      }
    }
    return best;
  }
}
