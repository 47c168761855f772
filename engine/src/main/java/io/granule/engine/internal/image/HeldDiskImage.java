package io.granule.engine.internal.image;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * A disk image read under a {@link SnapshotProvider.Hold}: each read is followed by {@link
 * SnapshotProvider.Hold#check}, so a read that did not finish while the hold was still in force (a
 * freeze lifted by its time limit) fails the backup instead of storing inconsistent data. Does not
 * close the underlying image.
 */
public final class HeldDiskImage implements DiskImage {
  private final DiskImage image;
  private final SnapshotProvider.Hold hold;

  public HeldDiskImage(DiskImage image, SnapshotProvider.Hold hold) {
    this.image = image;
    this.hold = hold;
  }

  @Override
  public long size() {
    return image.size();
  }

  @Override
  public String format() {
    return image.format();
  }

  @Override
  public boolean readsPastPageCache() {
    return image.readsPastPageCache();
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws IOException {
    image.read(offset, dst);
    hold.check();
  }

  @Override
  public io.granule.engine.spi.ChangeTracking changeTracking() {
    return image.changeTracking();
  }

  @Override
  public List<Extent> allocation(long offset, long length) throws IOException {
    List<Extent> a = image.allocation(offset, length);
    hold.check();
    return a;
  }

  @Override
  public void close() {
    // the caller closes the image it wrapped
  }
}
