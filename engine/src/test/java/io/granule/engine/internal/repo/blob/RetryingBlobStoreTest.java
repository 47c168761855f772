package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RetryingBlobStoreTest {
  @TempDir Path tmp;

  /** Fails the first {@code failures} loads with {@code error}, then works. */
  static final class Flaky implements BlobStore {
    final AtomicInteger calls = new AtomicInteger();
    final LocalBlobStore d;
    final AtomicInteger failures = new AtomicInteger(); // still to come
    final IOException error;

    Flaky(Path root, int failures, IOException error) {
      this.d = new LocalBlobStore(root);
      this.failures.set(failures);
      this.error = error;
    }

    @Override
    public byte[] load(BlobName name) throws IOException {
      calls.incrementAndGet();
      if (failures.getAndUpdate(f -> Math.max(0, f - 1)) > 0) {
        throw error;
      }
      return d.load(name);
    }

    @Override
    public void save(BlobName name, byte[] data) throws IOException {
      d.save(name, data);
    }

    @Override
    public byte[] load(BlobName name, long offset, int length) throws IOException {
      return d.load(name, offset, length);
    }

    /** A failing load first puts part of the range into {@code dst}, as a broken stream would. */
    @Override
    public void load(BlobName name, long offset, java.nio.ByteBuffer dst) throws IOException {
      calls.incrementAndGet();
      if (failures.getAndUpdate(f -> Math.max(0, f - 1)) > 0) {
        dst.put(new byte[dst.remaining() / 2]);
        throw error;
      }
      d.load(name, offset, dst);
    }

    @Override
    public java.util.Optional<BlobInfo> stat(BlobName name) throws IOException {
      return d.stat(name);
    }

    @Override
    public java.util.List<BlobName> list(BlobType type) throws IOException {
      return d.list(type);
    }

    @Override
    public void delete(BlobName name) throws IOException {
      d.delete(name);
    }

    @Override
    public String location() {
      return d.location();
    }
  }

  private static final BlobName NAME = new BlobName(BlobType.INDEX, "ab");

  @Test
  void transientFailuresAreRetriedUntilTheyPass() throws Exception {
    Flaky flaky = new Flaky(tmp, 3, new TransientBlobStoreException("HTTP 503 SlowDown", null));
    flaky.save(NAME, new byte[] {7});
    RetryingBlobStore s = new RetryingBlobStore(flaky, 4, Duration.ofMillis(1));
    assertThat(s.load(NAME)).containsExactly(7);
    assertThat(flaky.calls).hasValue(4);
  }

  @Test
  void aRetriedLoadIntoABufferStartsAgainWhereItBegan() throws Exception {
    Flaky flaky = new Flaky(tmp, 2, new TransientBlobStoreException("connection reset", null));
    byte[] data = new byte[1000];
    new java.util.Random(3).nextBytes(data);
    flaky.save(NAME, data);
    RetryingBlobStore s = new RetryingBlobStore(flaky, 4, Duration.ofMillis(1));
    java.nio.ByteBuffer dst = java.nio.ByteBuffer.allocateDirect(110).position(10);
    s.load(NAME, 200, dst);
    assertThat(flaky.calls).hasValue(3);
    assertThat(dst.position()).isEqualTo(110);
    byte[] got = new byte[100];
    dst.position(10).get(got);
    assertThat(got).isEqualTo(java.util.Arrays.copyOfRange(data, 200, 300));
  }

  @Test
  void givesUpAfterTheLastAttempt() throws Exception {
    Flaky flaky = new Flaky(tmp, 10, new TransientBlobStoreException("connection reset", null));
    flaky.save(NAME, new byte[] {7});
    RetryingBlobStore s = new RetryingBlobStore(flaky, 3, Duration.ofMillis(1));
    assertThatThrownBy(() -> s.load(NAME))
        .isInstanceOf(TransientBlobStoreException.class)
        .hasMessage("connection reset");
    assertThat(flaky.calls).hasValue(3);
  }

  /**
   * A store that never answered fails after the short budget (misconfigured, most likely); once it
   * has answered, an outage gets the long one (an S3 restart of ~8 s failed a backup that had run
   * for minutes: the budget was 2-6 s in all).
   */
  @Test
  void onceTheStoreAnsweredAnOutageGetsMoreAttempts() throws Exception {
    Flaky never = new Flaky(tmp, 100, new TransientBlobStoreException("connection refused", null));
    never.save(NAME, new byte[] {7});
    RetryingBlobStore cold = new RetryingBlobStore(never, 2, 6, Duration.ofMillis(1));
    assertThatThrownBy(() -> cold.load(NAME)).isInstanceOf(TransientBlobStoreException.class);
    assertThat(never.calls).hasValue(2);

    Flaky later = new Flaky(tmp, 0, new TransientBlobStoreException("connection refused", null));
    RetryingBlobStore warm = new RetryingBlobStore(later, 2, 6, Duration.ofMillis(1));
    assertThat(warm.load(NAME)).containsExactly(7);
    later.failures.set(5); // the server restarts: 5 calls fail, the 6th attempt gets through
    assertThat(warm.load(NAME)).containsExactly(7);
    assertThat(later.calls).hasValue(7);
    later.failures.set(6);
    assertThatThrownBy(() -> warm.load(NAME)).isInstanceOf(TransientBlobStoreException.class);
    // given up once: the next call gets the short budget until the store answers again
    int before = later.calls.get();
    later.failures.set(100);
    assertThatThrownBy(() -> warm.load(NAME)).isInstanceOf(TransientBlobStoreException.class);
    assertThat(later.calls.get() - before).isEqualTo(2);
    later.failures.set(0);
    assertThat(warm.load(NAME)).containsExactly(7);
    later.failures.set(5);
    assertThat(warm.load(NAME)).as("answered again: the long budget").containsExactly(7);
  }

  @Test
  void permanentFailuresAreNotRetried() throws Exception {
    Flaky flaky = new Flaky(tmp, 10, new AccessDeniedException("s3:x"));
    flaky.save(NAME, new byte[] {7});
    RetryingBlobStore s = new RetryingBlobStore(flaky, 5, Duration.ofMillis(1));
    assertThatThrownBy(() -> s.load(NAME)).isInstanceOf(AccessDeniedException.class);
    assertThat(flaky.calls).hasValue(1);
  }

  /**
   * A conditional save whose answer was lost (it saved, and the store said "unreachable"): the
   * retry finds the blob there; with this save's bytes it is this save's, with others' it is
   * another's (an init took its own config for another's, and deleted its key blob).
   */
  @Test
  void aRetriedSaveNewThatFindsItsOwnBytesSaved() throws Exception {
    LocalBlobStore local = new LocalBlobStore(tmp);
    BlobStore lostAnswer =
        new ForwardingBlobStore(local) {
          final AtomicInteger tries = new AtomicInteger();

          @Override
          public void saveNew(BlobName name, byte[] data) throws IOException {
            if (tries.incrementAndGet() == 1) {
              super.saveNew(name, data);
              throw new TransientBlobStoreException("connection reset", null);
            }
            super.saveNew(name, data);
          }
        };
    RetryingBlobStore s = new RetryingBlobStore(lostAnswer, 4, Duration.ofMillis(1));
    s.saveNew(BlobName.CONFIG, new byte[] {1, 2});
    assertThat(local.load(BlobName.CONFIG)).containsExactly(1, 2);
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> s.saveNew(BlobName.CONFIG, new byte[] {3}))
        .isInstanceOf(java.nio.file.FileAlreadyExistsException.class);
  }
}
