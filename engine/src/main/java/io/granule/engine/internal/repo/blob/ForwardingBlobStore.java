package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * A blob store that hands every call to another one, the interface's default methods included (so
 * the other store's buffer saves, direct loads and prefetch hints are not lost to the defaults); a
 * subclass overrides what it changes.
 */
public abstract class ForwardingBlobStore implements BlobStore {
  /** The store every call goes to. */
  protected final BlobStore delegate;

  protected ForwardingBlobStore(BlobStore delegate) {
    this.delegate = java.util.Objects.requireNonNull(delegate, "delegate");
  }

  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    delegate.save(name, file, length);
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    delegate.save(name, data);
  }

  @Override
  public void save(BlobName name, ByteBuffer data) throws IOException {
    delegate.save(name, data);
  }

  @Override
  public void save(BlobName name, ByteBuffer data, Runnable released) throws IOException {
    delegate.save(name, data, released);
  }

  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    delegate.prefetch(name, offset, length, useful);
  }

  @Override
  public boolean evictCached(BlobName name) throws IOException {
    return delegate.evictCached(name);
  }

  @Override
  public long deleteLeftovers(java.time.Duration olderThan) throws IOException {
    return delegate.deleteLeftovers(olderThan);
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
  public void load(BlobName name, long offset, ByteBuffer dst) throws IOException {
    delegate.load(name, offset, dst);
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
    delegate.delete(name);
  }

  @Override
  public String location() {
    return delegate.location();
  }

  @Override
  public String place() {
    return delegate.place();
  }

  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    delegate.saveNew(name, data);
  }

  @Override
  public Optional<String> placeIdentity() {
    return delegate.placeIdentity();
  }

  @Override
  public Optional<String> placeInFileSystem() {
    return delegate.placeInFileSystem();
  }

  @Override
  public Optional<String> placeAsNamed() {
    return delegate.placeAsNamed();
  }

  @Override
  public Foreign foreign() {
    return delegate.foreign();
  }
}
