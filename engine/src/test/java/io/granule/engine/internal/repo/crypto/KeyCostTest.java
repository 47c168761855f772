package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What key blobs written by someone who can write the storage, but knows no password, may cost an
 * unlock (audit10 M4): a forged blob's scrypt parameters are bounded, so are the number of blobs
 * tried and their total work, and a derivation that fails, out of memory too, never holds the
 * unlock.
 */
class KeyCostTest {
  private static final byte[] CONFIG = "the config blob".getBytes(StandardCharsets.UTF_8);
  private static final SecureRandom RANDOM = new SecureRandom();

  @TempDir Path dir;

  /** The parameters of every derivation, ahead or not (when {@link #recording} is in place). */
  private final List<KdfParams> derived = new CopyOnWriteArrayList<>();

  @AfterEach
  void reset() {
    PrederivedKeys.kdf = PrederivedKeys.SCRYPT;
    PrederivedKeys.derivationWaitMs = 60_000;
    PrederivedKeys.forget();
  }

  private LocalBlobStore storeWithKey(MasterKey mk, String password) throws Exception {
    LocalBlobStore store = new LocalBlobStore(dir.resolve("repo"));
    KeyRing.add(
        store, "repo-id", CONFIG, mk, password.toCharArray(), KdfParams.TESTING, Clock.systemUTC());
    return store;
  }

  /** A key blob of version 2 as a forger writes it: any parameters, random salt and ciphertext. */
  private static BlobName forge(LocalBlobStore store, int n, int r, int p) throws Exception {
    byte[] id = new byte[32];
    byte[] salt = new byte[32];
    byte[] nonce = new byte[12];
    byte[] ct = new byte[64 + 32 + 16];
    RANDOM.nextBytes(id);
    RANDOM.nextBytes(salt);
    RANDOM.nextBytes(nonce);
    RANDOM.nextBytes(ct);
    Base64.Encoder b64 = Base64.getEncoder();
    String json =
        "{\"version\":2,\"kdf\":\"scrypt\",\"n\":"
            + n
            + ",\"r\":"
            + r
            + ",\"p\":"
            + p
            + ",\"salt\":\""
            + b64.encodeToString(salt)
            + "\",\"nonce\":\""
            + b64.encodeToString(nonce)
            + "\",\"ciphertext\":\""
            + b64.encodeToString(ct)
            + "\",\"created\":\"2026-01-01T00:00:00Z\"}";
    BlobName name = new BlobName(BlobType.KEY, Hex.encode(id));
    store.save(name, BlobFrames.frame(KeyRing.MAGIC, 2, json.getBytes(StandardCharsets.UTF_8)));
    return name;
  }

  /** Derivations are recorded and cost nothing (the keys they give open nothing forged). */
  private void recording() {
    PrederivedKeys.kdf =
        (pw, salt, q) -> {
          derived.add(q);
          return q.equals(KdfParams.TESTING)
              ? PrederivedKeys.SCRYPT.derive(pw, salt, q)
              : new byte[32];
        };
  }

  @Test
  void granuleAcceptsAtMostFourTimesItsDefaultMemoryAndFourLanes() {
    KdfParams.DEFAULT.validate();
    new KdfParams(1 << 17, 8, 4).validate();
    new KdfParams(1 << 16, 16, 1).validate();
    assertThatThrownBy(() -> new KdfParams(1 << 18, 8, 1).validate())
        .hasMessageContaining("256 MiB")
        .hasMessageContaining("at most 128 MiB");
    assertThatThrownBy(() -> new KdfParams(1 << 15, 8, 5).validate())
        .hasMessageContaining("p at most 4");
    assertThatThrownBy(() -> new KdfParams(1 << 30, 1 << 30, 1).validate())
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(new KdfParams(1 << 17, 8, 4).memory()).isLessThan(320L << 20 >> 1);
  }

  /**
   * A forged blob asking for 1 GiB, or for p=16 (each accepted before), is refused by name without
   * a derivation, and the unlock goes on.
   */
  @Test
  void aForgedBlobAskingForHugeParametersIsRefusedByNameAndNotDerived() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    BlobName huge = forge(store, 1 << 20, 8, 1);
    BlobName lanes = forge(store, 1 << 15, 8, 16);
    BlobName big = forge(store, 1 << 18, 8, 1);
    recording();
    List<String> why = new ArrayList<>();
    long t0 = System.nanoTime();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "wrong".toCharArray(), why)).isEmpty();
    assertThat(System.nanoTime() - t0).isLessThan(Duration.ofSeconds(10).toNanos());
    assertThat(derived).containsExactly(KdfParams.TESTING);
    assertThat(why)
        .anySatisfy(
            s -> assertThat(s).contains("key blob " + huge + " refused").contains("1024 MiB"))
        .anySatisfy(s -> assertThat(s).contains("key blob " + lanes + " refused").contains("p=16"))
        .anySatisfy(s -> assertThat(s).contains("key blob " + big + " refused"));
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray())).isPresent();
  }

  /** Blobs with granule's default parameters, then the cheapest, are tried first. */
  @Test
  void theCheapestBlobsAreTriedFirstSoCostlyForgedOnesDelayNothing() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    for (int i = 0; i < 3; i++) {
      forge(store, 1 << 17, 8, 4);
    }
    recording();
    KeyRing.Unlocked u =
        KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray()).orElseThrow();
    assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
    assertThat(derived).containsExactly(KdfParams.TESTING);
  }

  /** At most 64 key blobs are tried, and the wrong-password reasons say how many were not. */
  @Test
  void atMostSixtyFourBlobsAreTriedAndTheRestAreReported() throws Exception {
    LocalBlobStore store = storeWithKey(MasterKey.generate(), "right");
    for (int i = 0; i < 80; i++) {
      forge(store, 1 << 9, 8, 1);
    }
    recording();
    List<String> why = new ArrayList<>();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "wrong".toCharArray(), why)).isEmpty();
    assertThat(derived).hasSize(KeyRing.MAX_TRIED);
    assertThat(why)
        .anySatisfy(
            s ->
                assertThat(s)
                    .startsWith("17 of the 81 key blobs were not tried")
                    .contains("tries at most 64"));
  }

  /** The blobs tried cost at most 64 default derivations in all. */
  @Test
  void theTotalWorkOfAnUnlockIsBounded() throws Exception {
    LocalBlobStore store = storeWithKey(MasterKey.generate(), "right");
    for (int i = 0; i < 6; i++) {
      forge(store, 1 << 17, 8, 4); // 16 default derivations each
    }
    recording();
    List<String> why = new ArrayList<>();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "wrong".toCharArray(), why)).isEmpty();
    long work = derived.stream().mapToLong(KdfParams::work).sum();
    assertThat(work).isLessThanOrEqualTo(KeyRing.MAX_WORK);
    assertThat(derived).hasSize(1 + 3); // the real one, then three of the costly ones
    assertThat(why).anySatisfy(s -> assertThat(s).startsWith("3 of the 7 key blobs were not"));
  }

  @Test
  void atMostAFewKeysAreDerivedAhead() throws Exception {
    LocalBlobStore store = storeWithKey(MasterKey.generate(), "right");
    for (int i = 0; i < 10; i++) {
      forge(store, 1 << 9, 8, 1);
    }
    recording();
    PrederivedKeys.task(store, "right".toCharArray()).run();
    assertThat(PrederivedKeys.count()).isEqualTo(KeyRing.AHEAD);
    assertThat(derived).hasSize(KeyRing.AHEAD);
  }

  /**
   * Blobs costlier than granule's default are not derived ahead (the unlock derives them if it gets
   * there), nor anything once the command forgot the keys derived ahead.
   */
  @Test
  void costlyBlobsAreNotDerivedAhead() throws Exception {
    LocalBlobStore store = storeWithKey(MasterKey.generate(), "right");
    for (int i = 0; i < 3; i++) {
      forge(store, 1 << 17, 8, 4);
    }
    recording();
    PrederivedKeys.task(store, "right".toCharArray()).run();
    assertThat(derived).containsExactly(KdfParams.TESTING);
    assertThat(PrederivedKeys.count()).isEqualTo(1);
  }

  /**
   * The derivation ahead runs out of memory on a forged blob (injected: the JDK scrypt did so on a
   * forged 1 GiB blob, and the unlock waited forever for that key): the unlock skips that blob,
   * says why, and opens the real one.
   */
  @Test
  void anOutOfMemoryErrorDerivingAheadDoesNotHoldTheUnlock() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    BlobName forged = forge(store, 1 << 9, 8, 1);
    PrederivedKeys.kdf =
        (pw, salt, q) -> {
          if (q.n() == 1 << 9) {
            throw new OutOfMemoryError("Java heap space");
          }
          return PrederivedKeys.SCRYPT.derive(pw, salt, q);
        };
    for (String password : List.of("wrong", "right")) {
      Thread ahead = new Thread(PrederivedKeys.task(store, password.toCharArray()), "granule-key");
      ahead.setDaemon(true);
      ahead.start();
      List<String> why = new ArrayList<>();
      java.util.Optional<KeyRing.Unlocked> u =
          assertTimeoutPreemptively(
              Duration.ofSeconds(20),
              () -> KeyRing.unlock(store, "repo-id", CONFIG, password.toCharArray(), why));
      ahead.join(10_000);
      if (password.equals("wrong")) {
        assertThat(u).isEmpty();
        assertThat(why)
            .singleElement()
            .satisfies(
                s ->
                    assertThat(s)
                        .contains("key blob " + forged)
                        .contains("could not be derived")
                        .contains("OutOfMemoryError"));
      } else {
        assertThat(u.orElseThrow().key().toBytes()).isEqualTo(mk.toBytes());
      }
      PrederivedKeys.forget();
    }
  }

  /** Out of memory in the unlock's own derivation: that blob is skipped, the unlock goes on. */
  @Test
  void anOutOfMemoryErrorInTheUnlocksOwnDerivationSkipsThatBlob() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    forge(store, 1 << 9, 8, 1);
    PrederivedKeys.kdf =
        (pw, salt, q) -> {
          if (q.n() == 1 << 9) {
            throw new OutOfMemoryError("Java heap space");
          }
          return PrederivedKeys.SCRYPT.derive(pw, salt, q);
        };
    List<String> why = new ArrayList<>();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "wrong".toCharArray(), why)).isEmpty();
    assertThat(why).singleElement().asString().contains("OutOfMemoryError");
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray())).isPresent();
  }

  /** A derivation ahead that never ends holds the unlock no longer than its wait. */
  @Test
  void aDerivationAheadThatNeverEndsDoesNotHoldTheUnlock() throws Exception {
    MasterKey mk = MasterKey.generate();
    LocalBlobStore store = storeWithKey(mk, "right");
    CountDownLatch never = new CountDownLatch(1);
    PrederivedKeys.derivationWaitMs = 300;
    PrederivedKeys.kdf =
        (pw, salt, q) -> {
          if (Thread.currentThread().getName().equals("granule-key-test")) {
            try {
              never.await();
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          }
          return PrederivedKeys.SCRYPT.derive(pw, salt, q);
        };
    Thread ahead =
        new Thread(PrederivedKeys.task(store, "right".toCharArray()), "granule-key-test");
    ahead.setDaemon(true);
    ahead.start();
    try {
      KeyRing.Unlocked u =
          assertTimeoutPreemptively(
              Duration.ofSeconds(20),
              () -> KeyRing.unlock(store, "repo-id", CONFIG, "right".toCharArray()).orElseThrow());
      assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
    } finally {
      never.countDown();
      ahead.join(10_000);
    }
  }
}
