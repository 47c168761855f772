package io.granule.engine.internal.repo.crypto;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The key blobs of an encrypted repository ({@code keys/<64 hex digits>}): each holds the {@link
 * MasterKey} wrapped with AES-256-GCM under a key derived from one password with scrypt. Any one
 * password opens the repository; adding and deleting key blobs changes passwords without touching
 * data.
 *
 * <p>A key blob is a {@link BlobFrames} frame (magic "GKEY", version 1) around JSON: {@code
 * {"version":1,"kdf":"scrypt","n":32768,"r":8,"p":1,"salt":B64,"nonce":B64,"ciphertext":B64,
 * "created":ISO}}. The ciphertext is the 64-byte master key plus the 16-byte tag; the AAD is {@code
 * "granule-key-v1:" + repository id}, so a key blob cannot be moved to another repository. Key
 * blobs are never transformed by the repository codec (they are what unlocks it). Stateless.
 */
public final class KeyRing {
  private static final Logger LOG = LoggerFactory.getLogger(KeyRing.class);
  static final int MAGIC = 0x474b4559;
  private static final ObjectMapper JSON =
      new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  private KeyRing() {}

  /** The JSON payload of a key blob. */
  record KeyFile(
      @JsonProperty("version") int version,
      @JsonProperty("kdf") String kdf,
      @JsonProperty("n") int n,
      @JsonProperty("r") int r,
      @JsonProperty("p") int p,
      @JsonProperty("salt") String salt,
      @JsonProperty("nonce") String nonce,
      @JsonProperty("ciphertext") String ciphertext,
      @JsonProperty("created") String created) {}

  /** A master key opened with a password, and the key blob that opened it. */
  public record Unlocked(MasterKey key, BlobName blob) {}

  /**
   * Wraps {@code key} under {@code password} and saves it as a new key blob.
   *
   * @return the new key blob
   */
  public static BlobName add(
      BlobStore store,
      String repositoryId,
      MasterKey key,
      char[] password,
      KdfParams params,
      Clock clock)
      throws IOException {
    params.validate();
    SecureRandom random = new SecureRandom();
    byte[] salt = new byte[32];
    byte[] nonce = new byte[AesGcmCodec.NONCE];
    byte[] id = new byte[32];
    random.nextBytes(salt);
    random.nextBytes(nonce);
    random.nextBytes(id);
    byte[] kek = kek(password, salt, params);
    byte[] plain = key.toBytes();
    byte[] ct;
    try {
      ct = wrap(true, kek, nonce, repositoryId, plain, NativeCrypto.available());
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("unable to wrap the master key: " + e.getMessage(), e);
    } finally {
      Arrays.fill(kek, (byte) 0);
      Arrays.fill(plain, (byte) 0);
    }
    Base64.Encoder b64 = Base64.getEncoder();
    KeyFile f =
        new KeyFile(
            1,
            "scrypt",
            params.n(),
            params.r(),
            params.p(),
            b64.encodeToString(salt),
            b64.encodeToString(nonce),
            b64.encodeToString(ct),
            clock.instant().toString());
    BlobName name = new BlobName(BlobType.KEY, Hex.encode(id));
    store.save(name, BlobFrames.frame(MAGIC, 1, JSON.writeValueAsBytes(f)));
    return name;
  }

  /**
   * Tries {@code password} on every key blob.
   *
   * @return the master key and the blob it came from, or empty if no key blob matches
   */
  public static Optional<Unlocked> unlock(BlobStore store, String repositoryId, char[] password)
      throws IOException {
    return unlock(store, repositoryId, password, new java.util.ArrayList<>());
  }

  /**
   * As {@link #unlock(BlobStore, String, char[])}, adding to {@code unreadable} why each key blob
   * that could not be read or parsed was skipped (a wrong password is then not the only answer).
   */
  public static Optional<Unlocked> unlock(
      BlobStore store, String repositoryId, char[] password, java.util.List<String> unreadable)
      throws IOException {
    List<BlobName> listed = store.list(BlobType.KEY);
    if (listed.isEmpty()) {
      unreadable.add(
          "the repository lists no key blob at all (its keys hold none that is a regular file:"
              + " damaged, or copied incompletely)");
    }
    for (BlobName n : listed) {
      KeyFile f;
      try {
        f = read(n, loadKey(store, n));
      } catch (RepositoryCorruptedException | IllegalArgumentException e) {
        LOG.warn("skipping damaged key blob: {}", e.getMessage());
        unreadable.add(e.getMessage());
        continue;
      }
      Base64.Decoder b64 = Base64.getDecoder();
      byte[] kek = kek(password, b64.decode(f.salt()), new KdfParams(f.n(), f.r(), f.p()));
      try {
        byte[] plain =
            wrap(
                false,
                kek,
                b64.decode(f.nonce()),
                repositoryId,
                b64.decode(f.ciphertext()),
                NativeCrypto.available());
        MasterKey k = MasterKey.fromBytes(plain);
        Arrays.fill(plain, (byte) 0);
        return Optional.of(new Unlocked(k, n));
      } catch (AEADBadTagException e) {
        // another password's key blob (or a damaged one): try the next
      } catch (GeneralSecurityException e) {
        throw new IllegalStateException("unable to unwrap " + n + ": " + e.getMessage(), e);
      } finally {
        Arrays.fill(kek, (byte) 0);
      }
    }
    return Optional.empty();
  }

  /** Largest key blob read: they are a few hundred bytes. */
  static final long MAX_KEY_BLOB = 64 << 10;

  /**
   * Key blob {@code n}, refused unread if it is larger than a key blob can be: one large file in
   * keys/ ran the key derivation ahead out of memory, and every command then waited for it forever.
   */
  static byte[] loadKey(BlobStore store, BlobName n) throws IOException {
    Optional<io.granule.engine.internal.repo.blob.BlobInfo> info = store.stat(n);
    if (info.isPresent() && info.get().size() > MAX_KEY_BLOB) {
      throw new RepositoryCorruptedException(
          "key blob "
              + n
              + " is "
              + info.get().size()
              + " bytes, not a key blob (they are under 1 KiB): damaged, or not written by"
              + " granule; move it out of keys/ if no key is lost with it");
    }
    byte[] b = store.load(n);
    if (b.length > MAX_KEY_BLOB) {
      throw new RepositoryCorruptedException(
          "key blob " + n + " is " + b.length + " bytes, not a key blob (they are under 1 KiB)");
    }
    return b;
  }

  /**
   * Registers with {@link PrederivedKeys} every key blob of {@code store} (its salt and parameters
   * under {@code password}), completes {@code listed}, then derives each key in turn: the work of a
   * {@link PrederivedKeys#task}, on its thread. Unreadable or damaged key blobs are skipped
   * silently (the unlock meets them too, and reports them).
   */
  static void prederive(BlobStore store, byte[] password, CompletableFuture<Void> listed) {
    List<PrederivedKeys.Entry> mine = new ArrayList<>();
    try {
      for (BlobName n : store.list(BlobType.KEY)) {
        try {
          KeyFile f = read(n, loadKey(store, n));
          mine.add(
              PrederivedKeys.register(
                  password,
                  Base64.getDecoder().decode(f.salt()),
                  new KdfParams(f.n(), f.r(), f.p())));
        } catch (RepositoryCorruptedException | IllegalArgumentException | IOException e) {
          // skipped
        }
      }
    } catch (IOException | RuntimeException | Error e) {
      // an error too: the keys registered so far are derived below all the same (a waiter for
      // one of them waited forever once this thread died)
      LOG.debug("keys not derived ahead: {}", e.toString());
    } finally {
      listed.complete(null);
    }
    for (PrederivedKeys.Entry e : mine) {
      e.derive(password);
    }
  }

  /** Every readable key blob, in no particular order; damaged ones are skipped with a warning. */
  public static List<KeyInfo> list(BlobStore store) throws IOException {
    List<KeyInfo> out = new ArrayList<>();
    for (BlobName n : store.list(BlobType.KEY)) {
      try {
        KeyFile f = read(n, loadKey(store, n));
        out.add(
            new KeyInfo(
                n.name(), f.created(), "scrypt n=" + f.n() + " r=" + f.r() + " p=" + f.p()));
      } catch (RepositoryCorruptedException | IllegalArgumentException e) {
        LOG.warn("skipping damaged key blob: {}", e.getMessage());
      }
    }
    return out;
  }

  private static KeyFile read(BlobName name, byte[] bytes) {
    ByteBuffer p = BlobFrames.unframe(name, bytes, MAGIC, 1).payload();
    KeyFile f;
    try {
      f = JSON.readValue(p.array(), p.arrayOffset() + p.position(), p.remaining(), KeyFile.class);
    } catch (IOException e) {
      throw new RepositoryCorruptedException(name + ": unreadable: " + e.getMessage(), e);
    }
    if (!"scrypt".equals(f.kdf())) {
      throw new IllegalArgumentException(name + ": unsupported key derivation '" + f.kdf() + "'");
    }
    new KdfParams(f.n(), f.r(), f.p()).validate();
    return f;
  }

  private static byte[] kek(char[] password, byte[] salt, KdfParams params) {
    byte[] pw = Scrypt.passwordBytes(password);
    try {
      byte[] ahead = PrederivedKeys.take(pw, salt, params);
      return ahead != null
          ? ahead
          : Scrypt.derive(pw, salt, params.n(), params.r(), params.p(), 32);
    } finally {
      Arrays.fill(pw, (byte) 0);
    }
  }

  /**
   * AES-256-GCM of a master key ({@code encrypt}) or of its wrapped form under {@code kek}, with
   * the key blob's AAD: libcrypto's when {@code nativeCrypto} (no JCA provider to load on the way
   * to a command's first byte), else the JDK's; the same bytes either way.
   *
   * @throws AEADBadTagException if the wrapped form does not authenticate under {@code kek}
   */
  static byte[] wrap(
      boolean encrypt,
      byte[] kek,
      byte[] nonce,
      String repositoryId,
      byte[] in,
      boolean nativeCrypto)
      throws GeneralSecurityException {
    byte[] aad = ("granule-key-v1:" + repositoryId).getBytes(StandardCharsets.UTF_8);
    int len = encrypt ? in.length + AesGcmCodec.TAG : in.length - AesGcmCodec.TAG;
    if (len < 0) {
      throw new AEADBadTagException("wrapped key shorter than its tag");
    }
    if (nativeCrypto) {
      byte[] out = new byte[len];
      int r = NativeCrypto.aesGcm(encrypt, kek, nonce, aad, in, 0, in.length, out, 0);
      if (r == -2) {
        throw new AEADBadTagException("wrapped key does not authenticate");
      }
      if (r != len) {
        throw new GeneralSecurityException("libcrypto failed on a key blob");
      }
      return out;
    }
    Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
    c.init(
        encrypt ? Cipher.ENCRYPT_MODE : Cipher.DECRYPT_MODE,
        new SecretKeySpec(kek, "AES"),
        new GCMParameterSpec(AesGcmCodec.TAG * 8, nonce));
    c.updateAAD(aad);
    return c.doFinal(in);
  }
}
