package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Retries the calls of another store that fail with a {@link TransientBlobStoreException}, with
 * exponential backoff and full jitter (base, 2×base, 4×base… capped at 30 s), up to a number of
 * attempts. Every blob store operation is idempotent (names are random or content-derived, saves of
 * one name carry identical bytes, delete of a missing blob is no error), so retrying is safe.
 * Thread-safe if the delegate is.
 */
public final class RetryingBlobStore implements BlobStore {
  private static final Logger LOG = LoggerFactory.getLogger(RetryingBlobStore.class);
  private static final long MAX_DELAY_MS = 30_000;

  private final BlobStore delegate;
  private final int untilReached;
  private final int attempts;
  private final long baseMs;
  private volatile boolean reached;

  /** Retries up to {@code attempts} calls in all, the first backoff up to {@code base}. */
  public RetryingBlobStore(BlobStore delegate, int attempts, Duration base) {
    this(delegate, attempts, attempts, base);
  }

  /**
   * Retries up to {@code untilReached} calls in all until a call has once succeeded (a store that
   * never answered is more likely misconfigured than restarting: fail fast), then up to {@code
   * attempts} (an outage in the middle of a long backup is ridden out); the first backoff is up to
   * {@code base}.
   */
  public RetryingBlobStore(BlobStore delegate, int untilReached, int attempts, Duration base) {
    if (attempts < 1 || untilReached < 1) {
      throw new IllegalArgumentException("attempts must be at least 1, not " + attempts);
    }
    this.delegate = delegate;
    this.untilReached = untilReached;
    this.attempts = attempts;
    this.baseMs = Math.max(1, base.toMillis());
  }

  /**
   * Until the store first answers, 5 attempts over 4-8 s; then 11 attempts, backoffs capped at 0.5,
   * 1, 2, 4, 8, 16 and 30 s: an outage of about 75 s at least (150 s at most) is ridden out.
   */
  public static RetryingBlobStore withDefaults(BlobStore delegate) {
    return new RetryingBlobStore(delegate, 5, 11, Duration.ofMillis(500));
  }

  @FunctionalInterface
  private interface Call<T> {
    T call() throws IOException;
  }

  private <T> T retry(String what, Call<T> call) throws IOException {
    for (int attempt = 1; ; attempt++) {
      try {
        T result = call.call();
        reached = true;
        return result;
      } catch (TransientBlobStoreException e) {
        if (attempt >= (reached ? attempts : untilReached)) {
          // Given up: until the store answers again, calls fail fast (a command failing for an
          // outage must not spend another long budget releasing its lock).
          reached = false;
          throw e;
        }
        long cap = Math.min(MAX_DELAY_MS, baseMs << Math.min(20, attempt - 1));
        long delay = ThreadLocalRandom.current().nextLong(cap / 2, cap + 1);
        LOG.warn(
            "{} failed (attempt {} of {}), retrying in {} ms: {}",
            what,
            attempt,
            attempts,
            delay,
            e.getMessage());
        try {
          Thread.sleep(delay);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw (IOException) new InterruptedIOException("interrupted: " + what).initCause(e);
        }
      }
    }
  }

  /**
   * {@code saveNew}, retried as a save is: an attempt whose answer was lost may have saved it, so a
   * retry that finds the blob there counts as saved where it holds exactly {@code data} (an {@code
   * init} took its own config for another's, and deleted its key blob).
   */
  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    boolean[] tried = {false};
    retry(
        "saving " + name,
        () -> {
          try {
            delegate.saveNew(name, data);
          } catch (java.nio.file.FileAlreadyExistsException e) {
            if (!tried[0] || !java.util.Arrays.equals(delegate.load(name), data)) {
              throw e;
            }
          } finally {
            tried[0] = true;
          }
          return null;
        });
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    retry(
        "saving " + name,
        () -> {
          delegate.save(name, data);
          return null;
        });
  }

  @Override
  public void save(BlobName name, java.nio.ByteBuffer data) throws IOException {
    retry(
        "saving " + name,
        () -> {
          delegate.save(name, data);
          return null;
        });
  }

  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    retry(
        "saving " + name,
        () -> {
          delegate.save(name, file, length);
          return null;
        });
  }

  @Override
  public byte[] load(BlobName name) throws IOException {
    return retry("loading " + name, () -> delegate.load(name));
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    return retry("loading " + name, () -> delegate.load(name, offset, length));
  }

  @Override
  public void load(BlobName name, long offset, java.nio.ByteBuffer dst) throws IOException {
    int start = dst.position();
    retry(
        "loading " + name,
        () -> {
          delegate.load(name, offset, dst.position(start));
          return null;
        });
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
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    return retry("checking " + name, () -> delegate.stat(name));
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    return retry("listing " + type.directory(), () -> delegate.list(type));
  }

  @Override
  public List<BlobInfo> listInfo(BlobType type) throws IOException {
    return retry("listing " + type.directory(), () -> delegate.listInfo(type));
  }

  @Override
  public void delete(BlobName name) throws IOException {
    retry(
        "deleting " + name,
        () -> {
          delegate.delete(name);
          return null;
        });
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
