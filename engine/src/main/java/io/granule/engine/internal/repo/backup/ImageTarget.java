package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.blob.DirectIo;
import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * An image file of another format (qcow2, VMDK, VHDX) as a {@link RunTarget}: runs go to the format
 * plugin's {@link DiskImageWriter} in disk order, from the restore's own thread (the writer is not
 * thread-safe), in aligned direct buffers that a writer may hand to {@code O_DIRECT} writes as they
 * are.
 */
final class ImageTarget implements RunTarget {
  private final DiskImageWriter writer;

  ImageTarget(DiskImageWriter writer) {
    this.writer = writer;
  }

  @Override
  public ByteBuffer allocate(int length) {
    return DirectIo.allocate(length, DirectIo.MIN_ALIGN);
  }

  @Override
  public void reserve(long[] starts, long[] ends, int count) {
    // The writer lays the file out itself: nothing is known ahead.
  }

  @Override
  public void write(ByteBuffer src, long offset) throws IOException {
    writer.write(offset, src);
  }

  @Override
  public boolean ordered() {
    return true;
  }
}
