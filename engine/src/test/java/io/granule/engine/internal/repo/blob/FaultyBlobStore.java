package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A {@link BlobStore} decorator that fails the Nth {@link #save} (1-based) and every save after it,
 * as a crash would: the failing save stores nothing. It also counts whole-pack loads. {@link
 * #fired()} tells whether the scripted fault happened, so a test can assert that it did.
 */
public final class FaultyBlobStore implements BlobStore {
  private final BlobStore delegate;
  private final int failAt;
  private final AtomicInteger saves = new AtomicInteger();
  private final AtomicInteger wholePackLoads = new AtomicInteger();
  private final AtomicInteger footerLoads = new AtomicInteger();

  /** Fails save number {@code failAt} and all later ones; 0 never fails. */
  public FaultyBlobStore(BlobStore delegate, int failAt) {
    this.delegate = delegate;
    this.failAt = failAt;
  }

  /** Whether the scripted fault has fired. */
  public boolean fired() {
    return failAt > 0 && saves.get() >= failAt;
  }

  /** How many saves were attempted. */
  public int saves() {
    return saves.get();
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    int n = saves.incrementAndGet();
    if (failAt > 0 && n >= failAt) {
      throw new IOException("injected fault: save #" + n + " of " + name);
    }
    delegate.save(name, data);
  }

  /** How many times a whole pack was loaded (range loads not counted). */
  public int wholePackLoads() {
    return wholePackLoads.get();
  }

  @Override
  public byte[] load(BlobName name) throws IOException {
    if (name.type() == BlobType.PACK) {
      wholePackLoads.incrementAndGet();
    }
    return delegate.load(name);
  }

  /** Range loads of a pack's footer alone: its trailer read ({@code PackReader.loadTrailer}). */
  public int footerLoads() {
    return footerLoads.get();
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    if (name.type() == BlobType.PACK
        && length == io.granule.engine.internal.repo.pack.PackFormat.FOOTER_SIZE) {
      footerLoads.incrementAndGet();
    }
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
    delegate.delete(name);
  }

  @Override
  public String location() {
    return delegate.location();
  }
}
