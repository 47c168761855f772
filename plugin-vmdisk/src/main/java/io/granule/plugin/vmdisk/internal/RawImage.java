package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.util.List;

/**
 * A raw file as a backing image (qcow2 over a raw base, for example). The engine has its own raw
 * format for top-level images; this one only serves backing chains. Thread-safe.
 */
final class RawImage extends MappedImage {
  private RawImage(ImageFile file) {
    super("raw", file, file.size(), null, List.of(file));
  }

  static RawImage open(ImageFile file) {
    return new RawImage(file);
  }

  @Override
  protected Run map(long offset, long length) throws IOException {
    return new Run.Data(length, file(), offset);
  }
}
