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
import java.util.Comparator;
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
 * <p>A key blob is a {@link BlobFrames} frame (magic "GKEY", version 2) around JSON: {@code
 * {"version":2,"kdf":"scrypt","n":32768,"r":8,"p":1,"salt":B64,"nonce":B64,"ciphertext":B64,
 * "created":ISO}}. The ciphertext is the 64-byte master key and the SHA-256 of the repository's
 * {@code config} blob, plus the 16-byte tag; the AAD is {@code "granule-key-v2:" + repository id},
 * so a key blob cannot be moved to another repository, nor made to pass for a version 1 blob. The
 * config is thus sealed by every password: whoever can write the storage but knows no password
 * cannot change it (chunk size, compression, chunk ids, pack size) without {@link #unlock} noticing
 * ({@link ConfigChangedException}). Version 1 blobs (older builds) hold the master key alone under
 * AAD {@code "granule-key-v1:" + repository id}; they still open, and seal nothing: {@code granule
 * key passwd} replaces the blob it is run with by a version 2 one. Key blobs are never transformed
 * by the repository codec (they are what unlocks it). Stateless.
 */
public final class KeyRing {
  private static final Logger LOG = LoggerFactory.getLogger(KeyRing.class);
  static final int MAGIC = 0x474b4559;

  /** The key blob version this build writes (see the class comment); it reads 1 and 2. */
  static final int VERSION = 2;

  private static final int DIGEST = 32;
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

  /**
   * A master key opened with a password, and the key blob that opened it.
   *
   * @param sealed whether that blob seals the config (version 2): if not, the config the repository
   *     was opened with is not authenticated
   */
  public record Unlocked(MasterKey key, BlobName blob, boolean sealed) {}

  /**
   * A password opened a key blob whose sealed config digest is not the one of the config read: the
   * config was changed after that key blob was written, and granule never changes a config.
   */
  public static final class ConfigChangedException extends RepositoryCorruptedException {
    private static final long serialVersionUID = 1L;

    ConfigChangedException(String message) {
      super(message);
    }
  }

  /**
   * A password opened only an old key blob (version 1, sealing no config) while key blobs were left
   * unread or untried: a blob of this password that seals the config may be among them, and without
   * it a changed config would go unnoticed.
   */
  public static final class UnsealedOpenException extends RepositoryCorruptedException {
    private static final long serialVersionUID = 1L;

    UnsealedOpenException(String message) {
      super(message);
    }
  }

  /**
   * Wraps {@code key} and the SHA-256 of {@code config} (the repository's config blob, as stored)
   * under {@code password} and saves them as a new key blob.
   *
   * @return the new key blob
   */
  public static BlobName add(
      BlobStore store,
      String repositoryId,
      byte[] config,
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
    byte[] master = key.toBytes();
    byte[] plain = new byte[MasterKey.LENGTH + DIGEST];
    System.arraycopy(master, 0, plain, 0, MasterKey.LENGTH);
    System.arraycopy(sha256(config), 0, plain, MasterKey.LENGTH, DIGEST);
    byte[] ct;
    try {
      ct = wrap(true, kek, nonce, VERSION, repositoryId, plain, NativeCrypto.available());
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("unable to wrap the master key: " + e.getMessage(), e);
    } finally {
      Arrays.fill(kek, (byte) 0);
      Arrays.fill(master, (byte) 0);
      Arrays.fill(plain, (byte) 0);
    }
    Base64.Encoder b64 = Base64.getEncoder();
    KeyFile f =
        new KeyFile(
            VERSION,
            "scrypt",
            params.n(),
            params.r(),
            params.p(),
            b64.encodeToString(salt),
            b64.encodeToString(nonce),
            b64.encodeToString(ct),
            clock.instant().toString());
    BlobName name = new BlobName(BlobType.KEY, Hex.encode(id));
    store.save(name, BlobFrames.frame(MAGIC, VERSION, JSON.writeValueAsBytes(f)));
    return name;
  }

  static byte[] sha256(byte[] bytes) {
    try {
      return java.security.MessageDigest.getInstance("SHA-256").digest(bytes);
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JDK", e);
    }
  }

  /**
   * Tries {@code password} on every key blob of the repository whose config blob is {@code config}
   * (as stored).
   *
   * @return the master key and the blob it came from, or empty if no key blob matches
   * @throws ConfigChangedException if the password opens a key blob that sealed another config
   */
  public static Optional<Unlocked> unlock(
      BlobStore store, String repositoryId, byte[] config, char[] password) throws IOException {
    return unlock(store, repositoryId, config, password, new java.util.ArrayList<>());
  }

  /**
   * As {@link #unlock(BlobStore, String, byte[], char[])}, adding to {@code unreadable} why each
   * key blob that could not be read, parsed or derived was skipped, and how many were not tried (a
   * wrong password is then not the only answer).
   *
   * <p>Key blobs are read before anything is authenticated, so whoever can write the storage can
   * add key blobs, and each costs the scrypt its parameters ask for. The cost is bounded: blobs
   * asking for more than {@link KdfParams#MAX_MEMORY} or {@link KdfParams#MAX_P} are refused
   * unread, at most {@link #MAX_READ} are read, and at most {@link #MAX_TRIED} are tried within
   * {@link #MAX_WORK}, those with {@link KdfParams#DEFAULT} (what granule writes) first, then the
   * cheapest (see {@link #plan}).
   */
  public static Optional<Unlocked> unlock(
      BlobStore store,
      String repositoryId,
      byte[] config,
      char[] password,
      java.util.List<String> unreadable)
      throws IOException {
    Plan plan = plan(store, unreadable, true);
    // an old blob (version 1) that opened: used only once every blob that could seal the config
    // was tried, since blob names and listing order are the storage's to choose
    Unlocked old = null;
    for (Candidate c : plan.tried()) {
      BlobName n = c.name();
      Read f = c.read();
      if (old != null && f.version() == 1) {
        continue; // another old one: nothing more to learn from it
      }
      Base64.Decoder b64 = Base64.getDecoder();
      byte[] kek;
      try {
        kek = kek(password, b64.decode(f.file().salt()), c.params());
      } catch (RuntimeException | Error e) {
        // an OutOfMemoryError too (the memory of the derivation is free again): the next blob
        Throwable cause = e instanceof PrederivedKeys.DerivationFailedException ? e.getCause() : e;
        String why =
            "key blob "
                + n
                + " (scrypt n="
                + c.params().n()
                + " r="
                + c.params().r()
                + " p="
                + c.params().p()
                + "): its key could not be derived: "
                + cause;
        LOG.warn("skipping {}", why);
        unreadable.add(why);
        continue;
      }
      byte[] plain;
      try {
        plain =
            wrap(
                false,
                kek,
                b64.decode(f.file().nonce()),
                f.version(),
                repositoryId,
                b64.decode(f.file().ciphertext()),
                NativeCrypto.available());
      } catch (AEADBadTagException e) {
        // another password's key blob (or a damaged one): try the next
        continue;
      } catch (GeneralSecurityException e) {
        throw new IllegalStateException("unable to unwrap " + n + ": " + e.getMessage(), e);
      } finally {
        Arrays.fill(kek, (byte) 0);
      }
      try {
        if (f.version() == 1) {
          old = new Unlocked(MasterKey.fromBytes(plain), n, false);
          continue;
        }
        if (plain.length != MasterKey.LENGTH + DIGEST) {
          throw new RepositoryCorruptedException(
              "key blob " + n + " holds " + plain.length + " bytes, not a master key and a digest");
        }
        byte[] sealed = Arrays.copyOfRange(plain, MasterKey.LENGTH, plain.length);
        if (!java.security.MessageDigest.isEqual(sealed, sha256(config))) {
          throw new ConfigChangedException(
              "the config of this repository is not the one its key blob "
                  + n
                  + " (opened with this password) was made with: it was changed after, and"
                  + " granule never changes a config, so someone who can write the storage did;"
                  + " nothing was read or written. Put back the original config (a copy of the"
                  + " repository has it: its SHA-256 is "
                  + Hex.encode(sealed)
                  + ")");
        }
        return Optional.of(
            new Unlocked(MasterKey.fromBytes(Arrays.copyOf(plain, MasterKey.LENGTH)), n, true));
      } finally {
        Arrays.fill(plain, (byte) 0);
      }
    }
    if (old != null && plan.notTried() > 0) {
      throw new UnsealedOpenException(
          "the password opened key blob "
              + old.blob()
              + ", an old one (version 1) that does not seal the repository's config, but "
              + plan.notTried()
              + " key blob(s) were not read or tried, and one of them may be this password's"
              + " sealing key blob: without it a changed config would go unnoticed, so nothing"
              + " was read or written. Move the key blobs not written by granule out of keys/"
              + " (see 'granule key list'), then run again; 'granule key passwd' replaces the old"
              + " blob");
    }
    return Optional.ofNullable(old);
  }

  /** The most key blobs an unlock reads (a small load each; one GET on S3). */
  static final int MAX_READ = 256;

  /** The most key blobs an unlock tries (one scrypt each). */
  static final int MAX_TRIED = 64;

  /** The most scrypt work ({@link KdfParams#work}) of one unlock: 64 derivations with DEFAULT. */
  static final long MAX_WORK = 64 * KdfParams.DEFAULT.work();

  /** How many keys are derived ahead at most: the first ones an unlock tries. */
  static final int AHEAD = 4;

  /** A key blob read and parsed, to try. */
  record Candidate(BlobName name, Read read, KdfParams params) {}

  /**
   * The key blobs to try, in order, and how many were left out.
   *
   * @param notTried key blobs readable (or not read) that are not tried
   */
  record Plan(List<Candidate> tried, int notTried) {}

  /**
   * Reads the key blobs of {@code store} (at most {@link #MAX_READ}, in listing order) and orders
   * them: those with {@link KdfParams#DEFAULT} first (what granule writes), then the others by
   * increasing cost, in listing order where equal; then keeps the first ones, at most {@link
   * #MAX_TRIED} and at most {@link #MAX_WORK} in all. Why each unreadable blob was skipped, and how
   * many were not tried, is added to {@code unreadable}.
   */
  static Plan plan(BlobStore store, List<String> unreadable, boolean warn) throws IOException {
    List<BlobName> listed = store.list(BlobType.KEY);
    if (listed.isEmpty()) {
      unreadable.add(
          "the repository lists no key blob at all (its keys hold none that is a regular file:"
              + " damaged, or copied incompletely)");
    }
    List<Candidate> readable = new ArrayList<>();
    for (BlobName n : listed.subList(0, Math.min(listed.size(), MAX_READ))) {
      try {
        Read f = read(n, loadKey(store, n));
        readable.add(new Candidate(n, f, new KdfParams(f.file().n(), f.file().r(), f.file().p())));
      } catch (java.nio.file.NoSuchFileException gone) {
        // removed since it was listed ('key remove' elsewhere): nothing to try
      } catch (RepositoryCorruptedException
          | io.granule.engine.internal.repo.UnsupportedRepositoryVersionException
          | IllegalArgumentException e) {
        if (warn) {
          LOG.warn("skipping damaged key blob: {}", e.getMessage());
        }
        unreadable.add(e.getMessage());
      }
    }
    // a blob that seals the config before one that does not, at equal parameters: with both for
    // one password (an old blob kept and put back), the one listed first decided, and blob names
    // are the storage's to choose
    readable.sort(
        Comparator.comparing((Candidate c) -> !KdfParams.DEFAULT.equals(c.params()))
            .thenComparing(c -> c.read().version() < VERSION)
            .thenComparingLong(c -> c.params().work()));
    List<Candidate> tried = new ArrayList<>();
    long work = 0;
    int left = listed.size() - Math.min(listed.size(), MAX_READ);
    for (Candidate c : readable) {
      if (tried.size() < MAX_TRIED && work + c.params().work() <= MAX_WORK) {
        tried.add(c);
        work += c.params().work();
      } else {
        left++;
      }
    }
    if (left > 0) {
      String why =
          left
              + " of the "
              + listed.size()
              + " key blobs were not tried: an unlock reads at most "
              + MAX_READ
              + " key blobs and tries at most "
              + MAX_TRIED
              + ", within the scrypt work of "
              + (MAX_WORK / KdfParams.DEFAULT.work())
              + " derivations with the default parameters (those first, then the cheapest);"
              + " move the key blobs not written by granule out of keys/";
      if (warn) {
        LOG.warn("{}", why);
      }
      unreadable.add(why);
    }
    return new Plan(tried, left);
  }

  /** Largest key blob read: they are a few hundred bytes. */
  public static final long MAX_KEY_BLOB = 64 << 10;

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
   * Registers with {@link PrederivedKeys} the first {@link #AHEAD} key blobs an unlock tries, those
   * that cost no more than {@link KdfParams#DEFAULT} (see {@link #plan}: their salt and parameters
   * under {@code password}), completes {@code listed}, then derives each key in turn: the work of a
   * {@link PrederivedKeys#task}, on its thread. Unreadable or damaged key blobs are skipped
   * silently (the unlock meets them too, and reports them). Every key registered is completed,
   * whatever happens: derived, failed (an OutOfMemoryError too), or given up for the unlock to
   * derive; an unlock waits for it.
   */
  static void prederive(BlobStore store, byte[] password, CompletableFuture<Void> listed) {
    List<PrederivedKeys.Entry> mine = new ArrayList<>();
    try {
      List<Candidate> tried = plan(store, new ArrayList<>(), false).tried();
      for (Candidate c : tried.subList(0, Math.min(tried.size(), AHEAD))) {
        if (c.params().work() > KdfParams.DEFAULT.work()) {
          break; // costlier than granule writes: derived by the unlock, only if it gets there
        }
        mine.add(
            PrederivedKeys.register(
                password, Base64.getDecoder().decode(c.read().file().salt()), c.params()));
      }
    } catch (IOException | RuntimeException | Error e) {
      // an error too: the keys registered so far are derived below all the same (a waiter for
      // one of them waited forever once this thread died)
      LOG.debug("keys not derived ahead: {}", e.toString());
    } finally {
      listed.complete(null);
    }
    try {
      for (PrederivedKeys.Entry e : mine) {
        if (!e.forgotten()) { // the command may be over
          e.derive(password);
        }
      }
    } finally {
      for (PrederivedKeys.Entry e : mine) {
        e.abandon(); // not derived: the unlock derives it
      }
    }
  }

  /** Every readable key blob, in no particular order; damaged ones are skipped with a warning. */
  public static List<KeyInfo> list(BlobStore store) throws IOException {
    List<KeyInfo> out = new ArrayList<>();
    for (BlobName n : store.list(BlobType.KEY)) {
      try {
        Read r = read(n, loadKey(store, n));
        KeyFile f = r.file();
        out.add(
            new KeyInfo(
                n.name(),
                f.created(),
                "scrypt n=" + f.n() + " r=" + f.r() + " p=" + f.p(),
                r.version()));
      } catch (RepositoryCorruptedException
          | io.granule.engine.internal.repo.UnsupportedRepositoryVersionException
          | IllegalArgumentException e) {
        LOG.warn("skipping damaged key blob: {}", e.getMessage());
      }
    }
    return out;
  }

  /** A parsed key blob and its frame version. */
  record Read(int version, KeyFile file) {}

  private static Read read(BlobName name, byte[] bytes) {
    BlobFrames.Framed framed = BlobFrames.unframe(name, bytes, MAGIC, VERSION);
    ByteBuffer p = framed.payload();
    KeyFile f;
    try {
      f = JSON.readValue(p.array(), p.arrayOffset() + p.position(), p.remaining(), KeyFile.class);
    } catch (IOException e) {
      throw new RepositoryCorruptedException(name + ": unreadable: " + e.getMessage(), e);
    }
    if (!"scrypt".equals(f.kdf())) {
      throw new IllegalArgumentException(name + ": unsupported key derivation '" + f.kdf() + "'");
    }
    try {
      new KdfParams(f.n(), f.r(), f.p()).validate();
    } catch (IllegalArgumentException e) {
      // named: a forged blob is told apart from the real ones, and can be moved out of keys/
      throw new IllegalArgumentException(
          "key blob "
              + name
              + " refused, its key not derived: "
              + e.getMessage()
              + "; not written by granule, move it out of keys/",
          e);
    }
    return new Read(framed.version(), f);
  }

  private static byte[] kek(char[] password, byte[] salt, KdfParams params) {
    byte[] pw = Scrypt.passwordBytes(password);
    try {
      byte[] ahead = PrederivedKeys.take(pw, salt, params);
      return ahead != null ? ahead : PrederivedKeys.kdf.derive(pw, salt, params);
    } finally {
      Arrays.fill(pw, (byte) 0);
    }
  }

  /**
   * AES-256-GCM of a key blob's secret ({@code encrypt}) or of its wrapped form under {@code kek},
   * with the AAD of a key blob of {@code version}: libcrypto's when {@code nativeCrypto} (no JCA
   * provider to load on the way to a command's first byte), else the JDK's; the same bytes either
   * way.
   *
   * @throws AEADBadTagException if the wrapped form does not authenticate under {@code kek}
   */
  static byte[] wrap(
      boolean encrypt,
      byte[] kek,
      byte[] nonce,
      int version,
      String repositoryId,
      byte[] in,
      boolean nativeCrypto)
      throws GeneralSecurityException {
    byte[] aad = ("granule-key-v" + version + ":" + repositoryId).getBytes(StandardCharsets.UTF_8);
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
