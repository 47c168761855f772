package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Fails, as a crash would, the Nth delete (or the Nth save) and every one after it; lock blobs are
 * not counted and never fail, so the fault lands in the operation itself.
 */
final class CrashingBlobStore implements BlobStore {
  private final BlobStore delegate;
  private final int failDeleteAt;
  private final int failSaveAt;
  private final AtomicInteger deletes = new AtomicInteger();
  private final AtomicInteger saves = new AtomicInteger();

  CrashingBlobStore(BlobStore delegate, int failDeleteAt, int failSaveAt) {
    this.delegate = delegate;
    this.failDeleteAt = failDeleteAt;
    this.failSaveAt = failSaveAt;
  }

  boolean fired() {
    return (failDeleteAt > 0 && deletes.get() >= failDeleteAt)
        || (failSaveAt > 0 && saves.get() >= failSaveAt);
  }

  int deletes() {
    return deletes.get();
  }

  int saves() {
    return saves.get();
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    if (name.type() != BlobType.LOCK) {
      int n = saves.incrementAndGet();
      if (failSaveAt > 0 && n >= failSaveAt) {
        throw new IOException("injected fault: save #" + n + " of " + name);
      }
    }
    delegate.save(name, data);
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
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    return delegate.stat(name);
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    return delegate.list(type);
  }

  @Override
  public void delete(BlobName name) throws IOException {
    if (name.type() != BlobType.LOCK) {
      int n = deletes.incrementAndGet();
      if (failDeleteAt > 0 && n >= failDeleteAt) {
        throw new IOException("injected fault: delete #" + n + " of " + name);
      }
    }
    delegate.delete(name);
  }

  @Override
  public String location() {
    return delegate.location();
  }
}
