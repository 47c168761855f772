package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.IOException;
import java.util.List;
import java.util.Optional;

/**
 * Checks a held {@link Lock} before every save and delete, so an operation whose lock was lost
 * (removed by {@code unlock --remove-all}, or unrefreshed for too long) stops before it writes or
 * deletes anything more; reads pass through.
 */
public final class LockCheckingBlobStore implements BlobStore {
  private final BlobStore delegate;
  private final Lock lock;

  public LockCheckingBlobStore(BlobStore delegate, Lock lock) {
    this.delegate = delegate;
    this.lock = lock;
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
  public byte[] load(BlobName name) throws IOException {
    return delegate.load(name);
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    return delegate.load(name, offset, length);
  }

  @Override
  public void load(BlobName name, long offset, java.nio.ByteBuffer dst) throws IOException {
    delegate.load(name, offset, dst);
  }

  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    delegate.prefetch(name, offset, length, useful);
  }

  @Override
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    return delegate.stat(name);
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    return delegate.list(type);
  }

  @Override
  public List<BlobInfo> listInfo(BlobType type) throws IOException {
    return delegate.listInfo(type);
  }

  @Override
  public void delete(BlobName name) throws IOException {
    lock.check();
    delegate.delete(name);
  }

  @Override
  public String location() {
    return delegate.location();
  }
}
