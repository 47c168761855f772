package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import java.io.IOException;

/**
 * Checks a held {@link Lock} before every save and delete, so an operation whose lock was lost
 * (removed by {@code unlock --remove-all}, or unrefreshed for too long) stops before it writes or
 * deletes anything more; reads pass through.
 */
public final class LockCheckingBlobStore extends ForwardingBlobStore {
  private final Lock lock;

  public LockCheckingBlobStore(BlobStore delegate, Lock lock) {
    super(delegate);
    this.lock = lock;
  }

  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    lock.check();
    delegate.save(name, file, length);
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    lock.check();
    delegate.save(name, data);
  }

  @Override
  public void save(BlobName name, java.nio.ByteBuffer data) throws IOException {
    lock.check();
    delegate.save(name, data);
  }

  @Override
  public void save(BlobName name, java.nio.ByteBuffer data, Runnable released) throws IOException {
    lock.check();
    delegate.save(name, data, released);
  }

  @Override
  public void delete(BlobName name) throws IOException {
    lock.check();
    delegate.delete(name);
  }
}
