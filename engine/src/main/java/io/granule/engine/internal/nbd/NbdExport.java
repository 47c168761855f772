package io.granule.engine.internal.nbd;

import io.granule.engine.spi.DiskImage;
import java.util.Objects;

/**
 * One disk the NBD server offers under {@code name} (the empty name is the default export).
 * Read-only unless {@code overlay} is present; then writes go to it and reads come from it.
 *
 * @param name the export name clients ask for; empty for the default export
 * @param image the disk clients read
 * @param overlay where writes go; {@code null} for a read-only export
 */
public record NbdExport(String name, DiskImage image, OverlayDisk overlay) {
  public NbdExport {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(image, "image");
    if (name.length() > 4096) {
      throw new IllegalArgumentException("export name longer than 4096 characters");
    }
  }

  /** A read-only export of {@code image}. */
  public static NbdExport readOnly(String name, DiskImage image) {
    return new NbdExport(name, image, null);
  }

  /** A writable export whose reads and writes go through {@code overlay}. */
  public static NbdExport writable(String name, OverlayDisk overlay) {
    return new NbdExport(name, overlay, overlay);
  }

  /** Whether clients may write. */
  public boolean writable() {
    return overlay != null;
  }
}
