package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Keys derived ahead ({@link PrederivedKeys}): an unlock with the same password takes the key
 * instead of deriving it again, any other unlock behaves as without it, and nothing is left behind.
 */
class KeyPrederiveTest {
  private static final byte[] CONFIG = "the config blob".getBytes(StandardCharsets.UTF_8);

  @TempDir Path dir;

  @AfterEach
  void forget() {
    PrederivedKeys.forget();
  }

  private LocalBlobStore storeWithKey(MasterKey mk, String password) throws Exception {
    LocalBlobStore store = new LocalBlobStore(dir.resolve("repo"));
    KeyRing.add(
        store, "repo-id", CONFIG, mk, password.toCharArray(), KdfParams.TESTING, Clock.systemUTC());
    return store;
  }

  @Test
  void anUnlockWithTheSamePasswordTakesTheKeyDerivedAhead() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    char[] pw = "right".toCharArray();
    Runnable task = PrederivedKeys.task(store, pw);
    Arrays.fill(pw, '\0'); // the task keeps its own copy
    task.run();
    assertThat(PrederivedKeys.count()).isEqualTo(1);

    KeyRing.Unlocked u =
        KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray()).orElseThrow();
    assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
    assertThat(PrederivedKeys.count()).as("taken, once").isZero();
    // the next unlock derives its own and still opens
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray())).isPresent();
  }

  @Test
  void aKeyDerivedAheadFromAnotherPasswordIsNotTakenAndTheWrongPasswordStillFails()
      throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    PrederivedKeys.task(store, "wrong".toCharArray()).run();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "wrong".toCharArray())).isEmpty();
    assertThat(PrederivedKeys.count()).as("taken by the wrong password's unlock").isZero();

    PrederivedKeys.task(store, "wrong".toCharArray()).run();
    KeyRing.Unlocked u =
        KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray()).orElseThrow();
    assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
    assertThat(PrederivedKeys.count()).as("another password's key stays untaken").isEqualTo(1);
    PrederivedKeys.forget();
    assertThat(PrederivedKeys.count()).isZero();
  }

  @Test
  void anUnlockDoesNotWaitLongForATaskThatNeverRuns() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    PrederivedKeys.task(store, "right".toCharArray()); // created, never run
    long t0 = System.nanoTime();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray())).isPresent();
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertThat(ms).isGreaterThanOrEqualTo(PrederivedKeys.LISTING_WAIT_MS - 5).isLessThan(10_000);
  }

  @Test
  void aDamagedKeyBlobIsSkippedAndTheOthersAreDerived() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    Path bad = store.path(new BlobName(BlobType.KEY, "00".repeat(32)));
    Files.write(bad, new byte[] {1, 2, 3});
    PrederivedKeys.task(store, "right".toCharArray()).run();
    assertThat(PrederivedKeys.count()).isEqualTo(1);
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray())).isPresent();
    assertThat(PrederivedKeys.count()).isZero();
  }

  /**
   * A huge file in keys/ (sparse: it costs nothing on disk) is refused unread: read whole, it ran
   * the derivation ahead out of memory, and the unlock then waited forever for a key it had
   * registered.
   */
  @Test
  void aHugeKeyBlobIsRefusedUnreadAndTheRealKeyStillUnlocks() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    Path keys = dir.resolve("repo/keys");
    String real;
    try (var files = Files.list(keys)) {
      real = files.findFirst().orElseThrow().getFileName().toString();
    }
    String bigName = "f".repeat(real.length());
    try (java.io.RandomAccessFile f =
        new java.io.RandomAccessFile(keys.resolve(bigName).toFile(), "rw")) {
      f.setLength(4L << 30);
    }
    BlobName big = new BlobName(BlobType.KEY, bigName);
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> KeyRing.loadKey(store, big))
        .hasMessageContaining("not a key blob");
    PrederivedKeys.task(store, "right".toCharArray()).run();
    KeyRing.Unlocked u =
        KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray()).orElseThrow();
    assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
  }
}
