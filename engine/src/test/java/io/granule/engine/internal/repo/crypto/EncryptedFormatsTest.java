package io.granule.engine.internal.repo.crypto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Pins the encrypted record and key blob layouts of docs/formats.md, "Encryption". */
class EncryptedFormatsTest {
  @TempDir Path tmp;

  @Test
  void recordIsNonceCiphertextTagWithTheBlobNameAsAad() throws Exception {
    byte[] key = new byte[32];
    Arrays.fill(key, (byte) 7);
    BlobName name = new BlobName(BlobType.INDEX, "ab12");
    byte[] plain = "hello, record".getBytes(StandardCharsets.US_ASCII);
    byte[] stored = new AesGcmCodec(key).encode(name, plain);
    assertThat(stored).hasSize(plain.length + 28);
    // decrypt by hand, exactly as the document says
    Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
    c.init(
        Cipher.DECRYPT_MODE,
        new SecretKeySpec(key, "AES"),
        new GCMParameterSpec(128, stored, 0, 12));
    // one segment: AAD = name, segment index 0 (4 bytes), last-segment flag 1
    byte[] aad = "granule-v1:index/ab12".getBytes(StandardCharsets.UTF_8);
    byte[] segmentAad = Arrays.copyOf(aad, aad.length + 5);
    segmentAad[aad.length + 4] = 1;
    c.updateAAD(segmentAad);
    assertThat(c.doFinal(stored, 12, stored.length - 12)).isEqualTo(plain);
    // another name, same bytes: refused
    assertThatThrownBy(
            () -> new AesGcmCodec(key).decode(new BlobName(BlobType.SNAPSHOT, "ab12"), stored))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("authentication failed: the data was changed or damaged");
  }

  @Test
  void largeRecordsAreSegmentedAndSegmentsCannotBeReorderedOrDropped() {
    byte[] key = new byte[32];
    BlobName name = new BlobName(BlobType.PACK, "cd34");
    AesGcmCodec codec = new AesGcmCodec(key);
    for (int len : new int[] {0, 1, 65535, 65536, 65537, 3 * 65536, (1 << 20) + 7}) {
      byte[] plain = new byte[len];
      new java.util.Random(len).nextBytes(plain);
      byte[] stored = codec.encode(name, plain);
      int segments = Math.max(1, (len + 65535) / 65536);
      assertThat(stored).as("length " + len).hasSize(12 + len + 16 * segments);
      assertThat(AesGcmCodec.storedLength(len)).isEqualTo(stored.length);
      assertThat(codec.decode(name, stored)).as("length " + len).isEqualTo(plain);
    }
    byte[] plain = new byte[3 * 65536];
    byte[] stored = codec.encode(name, plain);
    // swap the first two segments
    byte[] swapped = stored.clone();
    int seg = 65536 + 16;
    System.arraycopy(stored, 12 + seg, swapped, 12, seg);
    System.arraycopy(stored, 12, swapped, 12 + seg, seg);
    assertThatThrownBy(() -> codec.decode(name, swapped))
        .hasMessage("authentication failed: the data was changed or damaged");
    // drop the last segment: the new last one is not marked last
    byte[] cut = Arrays.copyOf(stored, 12 + 2 * seg);
    assertThatThrownBy(() -> codec.decode(name, cut))
        .hasMessage("authentication failed: the data was changed or damaged");
  }

  @Test
  void decodingIntoBuffersMatchesDecodingArraysWithLibcryptoAndTheJdk() {
    BlobName name = new BlobName(BlobType.PACK, "aa77");
    java.util.Random r = new java.util.Random(9);
    for (boolean nativeCrypto : new boolean[] {true, false}) {
      AesGcmCodec codec = new AesGcmCodec(new byte[32], nativeCrypto);
      for (int len : new int[] {0, 1, 65536, 65537, 300_000}) {
        byte[] plain = new byte[len];
        r.nextBytes(plain);
        byte[] stored = codec.encode(name, plain);
        assertThat(codec.decodedLength(stored.length)).isEqualTo(len);
        for (boolean direct : new boolean[] {true, false}) {
          String what = "native " + nativeCrypto + ", direct " + direct + ", length " + len;
          ByteBuffer src = buffer(direct, stored.length + 5).position(5);
          src.put(stored).position(5);
          ByteBuffer dst = buffer(direct, len + 7).position(7);
          assertThat(codec.decode(name, src, dst)).as(what).isEqualTo(len);
          assertThat(src.hasRemaining()).as(what).isFalse();
          assertThat(dst.position()).as(what).isEqualTo(7 + len);
          byte[] got = new byte[len];
          dst.position(7).get(got);
          assertThat(got).as(what).isEqualTo(plain);
        }
        if (len > 0) {
          byte[] bad = stored.clone();
          bad[bad.length / 2] ^= 1;
          assertThatThrownBy(
                  () -> codec.decode(name, ByteBuffer.wrap(bad), ByteBuffer.allocateDirect(len)))
              .isInstanceOf(IllegalArgumentException.class)
              .hasMessage(AesGcmCodec.AUTH_FAILED);
        }
      }
      // no record is 27 bytes (shorter than nonce + tag) or one segment plus 5 bytes of tag room
      assertThatThrownBy(() -> codec.decodedLength(27))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("too short");
      assertThatThrownBy(() -> codec.decodedLength(12 + 65536 + 16 + 5))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage(AesGcmCodec.AUTH_FAILED);
    }
  }

  private static ByteBuffer buffer(boolean direct, int capacity) {
    return direct ? ByteBuffer.allocateDirect(capacity) : ByteBuffer.allocate(capacity);
  }

  @Test
  void encodingInPlaceMakesRecordsThatDecode() {
    AesGcmCodec codec = new AesGcmCodec(new byte[32]);
    BlobName name = new BlobName(BlobType.PACK, "ef56");
    java.util.Random r = new java.util.Random(5);
    for (int len : new int[] {0, 1, 65536, 65537, 300_000}) {
      byte[] src = new byte[len + 30];
      r.nextBytes(src);
      byte[] dst = new byte[100 + codec.encodedLength(len)];
      java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(src, 30, len);
      java.nio.ByteBuffer out = java.nio.ByteBuffer.wrap(dst, 100, dst.length - 100);
      int n = codec.encode(name, in, out);
      assertThat(in.hasRemaining()).isFalse();
      assertThat(out.position()).isEqualTo(100 + n);
      assertThat(n).isEqualTo(codec.encodedLength(len)).isEqualTo(AesGcmCodec.storedLength(len));
      assertThat(codec.decode(name, Arrays.copyOfRange(dst, 100, 100 + n)))
          .isEqualTo(Arrays.copyOfRange(src, 30, 30 + len));
    }
  }

  private static final byte[] CONFIG = "the config blob".getBytes(StandardCharsets.UTF_8);

  /** The AES-GCM key of a key blob's JSON {@code j} under password "pw", by hand. */
  private static byte[] unwrapByHand(JsonNode j, String aad) throws Exception {
    byte[] salt = Base64.getDecoder().decode(j.get("salt").asText());
    byte[] kek =
        Scrypt.derive(
            "pw".getBytes(StandardCharsets.UTF_8),
            salt,
            j.get("n").asInt(),
            j.get("r").asInt(),
            j.get("p").asInt(),
            32);
    Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
    c.init(
        Cipher.DECRYPT_MODE,
        new SecretKeySpec(kek, "AES"),
        new GCMParameterSpec(128, Base64.getDecoder().decode(j.get("nonce").asText())));
    c.updateAAD(aad.getBytes(StandardCharsets.UTF_8));
    return c.doFinal(Base64.getDecoder().decode(j.get("ciphertext").asText()));
  }

  @Test
  void keyBlobIsFramedJsonWrappingTheMasterKeyAndTheConfigDigest() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    MasterKey mk = MasterKey.generate();
    BlobName n =
        KeyRing.add(
            store, "repo-id", CONFIG, mk, "pw".toCharArray(), KdfParams.TESTING, Clock.systemUTC());
    assertThat(n.name()).matches("[0-9a-f]{64}");
    byte[] bytes = store.load(n);
    ByteBuffer header = ByteBuffer.wrap(bytes);
    assertThat(header.getInt()).isEqualTo(0x474b4559);
    assertThat(header.getShort()).as("frame version").isEqualTo((short) 2);
    JsonNode j = new ObjectMapper().readTree(Arrays.copyOfRange(bytes, 8, bytes.length - 4));
    assertThat(j.fieldNames())
        .toIterable()
        .containsExactly("version", "kdf", "n", "r", "p", "salt", "nonce", "ciphertext", "created");
    assertThat(j.get("version").asInt()).isEqualTo(2);
    assertThat(j.get("kdf").asText()).isEqualTo("scrypt");
    byte[] plain = unwrapByHand(j, "granule-key-v2:repo-id");
    assertThat(Arrays.copyOf(plain, 64)).isEqualTo(mk.toBytes());
    assertThat(Arrays.copyOfRange(plain, 64, plain.length))
        .isEqualTo(java.security.MessageDigest.getInstance("SHA-256").digest(CONFIG));
    assertThatThrownBy(() -> unwrapByHand(j, "granule-key-v1:repo-id"))
        .as("a version 2 blob is not a version 1 blob")
        .isInstanceOf(javax.crypto.AEADBadTagException.class);
    assertThat(KeyRing.unlock(store, "other-repo", CONFIG, "pw".toCharArray())).isEmpty();
    KeyRing.Unlocked u = KeyRing.unlock(store, "repo-id", CONFIG, "pw".toCharArray()).orElseThrow();
    assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
    assertThat(u.sealed()).isTrue();
    assertThat(KeyRing.list(store)).singleElement().matches(KeyInfo::sealsConfig);
  }

  /**
   * Someone who can write the storage but knows no password changes the config (here any byte of
   * it): the password opens its key blob, and the digest sealed in it says the config is not the
   * one it was made with. A wrong password is still only a wrong password.
   */
  @Test
  void aKeyBlobRefusesAnotherConfigThanTheOneItSealed() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    MasterKey mk = MasterKey.generate();
    BlobName n =
        KeyRing.add(
            store, "repo-id", CONFIG, mk, "pw".toCharArray(), KdfParams.TESTING, Clock.systemUTC());
    byte[] changed = CONFIG.clone();
    changed[3] ^= 1;
    assertThatThrownBy(() -> KeyRing.unlock(store, "repo-id", changed, "pw".toCharArray()))
        .isInstanceOf(KeyRing.ConfigChangedException.class)
        .hasMessageContaining("key blob " + n)
        .hasMessageContaining(
            Hex.encode(java.security.MessageDigest.getInstance("SHA-256").digest(CONFIG)));
    assertThat(KeyRing.unlock(store, "repo-id", changed, "wrong".toCharArray())).isEmpty();
  }

  /**
   * A version 2 blob relabelled as version 1 (frame and JSON), so that its sealed digest would not
   * be checked: its AAD then differs and it opens with no password.
   */
  @Test
  void aSealingKeyBlobRelabelledAsVersionOneDoesNotOpen() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    BlobName n =
        KeyRing.add(
            store,
            "repo-id",
            CONFIG,
            MasterKey.generate(),
            "pw".toCharArray(),
            KdfParams.TESTING,
            Clock.systemUTC());
    byte[] bytes = store.load(n);
    ObjectNodeEdit.relabel(store, n, bytes, 1);
    byte[] changed = CONFIG.clone();
    changed[0] ^= 1;
    assertThat(KeyRing.unlock(store, "repo-id", changed, "pw".toCharArray())).isEmpty();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "pw".toCharArray())).isEmpty();
  }

  /**
   * A key blob of version 1, written as builds before config sealing wrote them (the master key
   * alone under AAD "granule-key-v1:" + id), still opens whatever the config: it seals nothing.
   */
  /** Writes a version 1 key blob (as builds before config sealing did) of {@code mk} under "pw". */
  private static void writeVersionOne(LocalBlobStore store, String name, MasterKey mk)
      throws Exception {
    byte[] salt = new byte[32];
    byte[] nonce = new byte[12];
    new java.security.SecureRandom().nextBytes(salt);
    KdfParams p = KdfParams.TESTING;
    byte[] kek =
        Scrypt.derive("pw".getBytes(StandardCharsets.UTF_8), salt, p.n(), p.r(), p.p(), 32);
    Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
    c.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(kek, "AES"), new GCMParameterSpec(128, nonce));
    c.updateAAD("granule-key-v1:repo-id".getBytes(StandardCharsets.UTF_8));
    byte[] ct = c.doFinal(mk.toBytes());
    Base64.Encoder b64 = Base64.getEncoder();
    String json =
        "{\"version\":1,\"kdf\":\"scrypt\",\"n\":"
            + p.n()
            + ",\"r\":"
            + p.r()
            + ",\"p\":"
            + p.p()
            + ",\"salt\":\""
            + b64.encodeToString(salt)
            + "\",\"nonce\":\""
            + b64.encodeToString(nonce)
            + "\",\"ciphertext\":\""
            + b64.encodeToString(ct)
            + "\",\"created\":\"2026-01-01T00:00:00Z\"}";
    BlobName n = new BlobName(BlobType.KEY, name);
    store.save(
        n,
        io.granule.engine.internal.repo.BlobFrames.frame(
            KeyRing.MAGIC, 1, json.getBytes(StandardCharsets.UTF_8)));
  }

  @Test
  void aVersionOneKeyBlobStillOpensAndSaysItSealsNothing() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    MasterKey mk = MasterKey.generate();
    writeVersionOne(store, "ab".repeat(32), mk);
    KeyRing.Unlocked u =
        KeyRing.unlock(
                store, "repo-id", "any config".getBytes(StandardCharsets.UTF_8), "pw".toCharArray())
            .orElseThrow();
    assertThat(u.key().toBytes()).isEqualTo(mk.toBytes());
    assertThat(u.sealed()).isFalse();
    assertThat(KeyRing.list(store)).singleElement().matches(k -> !k.sealsConfig());
  }

  /**
   * audit11: a version 1 blob kept by the storage and put back beside the version 2 blob of the
   * same password, named so that it is listed first, decided the unlock, and a changed config
   * opened unsealed. The sealing blob is tried first whatever the names.
   */
  @Test
  void aSealingKeyBlobIsTriedBeforeAnOldOneOfTheSamePassword() throws Exception {
    for (String oldName : new String[] {"00".repeat(32), "ff".repeat(32)}) {
      LocalBlobStore store = new LocalBlobStore(tmp.resolve(oldName.substring(0, 2)));
      MasterKey mk = MasterKey.generate();
      KeyRing.add(
          store, "repo-id", CONFIG, mk, "pw".toCharArray(), KdfParams.TESTING, Clock.systemUTC());
      writeVersionOne(store, oldName, mk);
      byte[] changed = CONFIG.clone();
      changed[1] ^= 1;
      assertThatThrownBy(() -> KeyRing.unlock(store, "repo-id", changed, "pw".toCharArray()))
          .as(oldName)
          .isInstanceOf(KeyRing.ConfigChangedException.class);
      assertThat(
              KeyRing.unlock(store, "repo-id", CONFIG, "pw".toCharArray()).orElseThrow().sealed())
          .isTrue();
    }
  }

  /**
   * audit12: the storage listed the old (version 1) blob of the password first, then enough junk
   * that the sealing blob was never read (an unlock reads at most 256): the old blob opened and a
   * changed config was accepted. An old blob is now used only once every blob was read and tried;
   * otherwise the unlock is refused, naming what to move out of keys/.
   */
  @Test
  void anOldKeyBlobIsNotUsedWhileTheSealingOneMayBeAmongBlobsNotRead() throws Exception {
    LocalBlobStore local = new LocalBlobStore(tmp);
    MasterKey mk = MasterKey.generate();
    BlobName sealing =
        KeyRing.add(
            local, "repo-id", CONFIG, mk, "pw".toCharArray(), KdfParams.TESTING, Clock.systemUTC());
    String oldName = "00".repeat(32);
    writeVersionOne(local, oldName, mk);
    List<BlobName> junk = new java.util.ArrayList<>();
    for (int i = 1; i <= KeyRing.MAX_READ + 10; i++) {
      BlobName n = new BlobName(BlobType.KEY, String.format(java.util.Locale.ROOT, "%064x", i));
      local.save(n, "junk".getBytes(StandardCharsets.UTF_8));
      junk.add(n);
    }
    // the storage's order: the old blob first, the junk, the sealing blob last
    io.granule.engine.internal.repo.blob.BlobStore ordered =
        new io.granule.engine.internal.repo.blob.ForwardingBlobStore(local) {
          @Override
          public List<BlobName> list(BlobType type) throws java.io.IOException {
            if (type != BlobType.KEY) {
              return super.list(type);
            }
            List<BlobName> l = new java.util.ArrayList<>();
            l.add(new BlobName(BlobType.KEY, oldName));
            l.addAll(junk);
            l.add(sealing);
            return l;
          }
        };
    byte[] changed = CONFIG.clone();
    changed[1] ^= 1;
    for (byte[] config : List.of(changed, CONFIG)) {
      assertThatThrownBy(() -> KeyRing.unlock(ordered, "repo-id", config, "pw".toCharArray()))
          .isInstanceOf(KeyRing.UnsealedOpenException.class)
          .hasMessageContaining("opened key blob keys/" + oldName)
          .hasMessageContaining("were not read or tried")
          .hasMessageContaining("out of keys/");
    }
    // every blob read: the sealing one is found and decides, whatever the order
    for (BlobName n : junk) {
      local.delete(n);
    }
    junk.clear();
    assertThatThrownBy(() -> KeyRing.unlock(ordered, "repo-id", changed, "pw".toCharArray()))
        .isInstanceOf(KeyRing.ConfigChangedException.class);
    assertThat(KeyRing.unlock(ordered, "repo-id", CONFIG, "pw".toCharArray()).orElseThrow().blob())
        .isEqualTo(sealing);
  }

  /**
   * audit11: one key blob of a newer frame version stopped every unlock and key list ("upgrade
   * granule") though the password's own blob was there; it is skipped with the reason.
   */
  @Test
  void aKeyBlobOfANewerVersionIsSkippedNotFatal() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    MasterKey mk = MasterKey.generate();
    BlobName real =
        KeyRing.add(
            store, "repo-id", CONFIG, mk, "pw".toCharArray(), KdfParams.TESTING, Clock.systemUTC());
    byte[] bytes = store.load(real);
    BlobName newer = new BlobName(BlobType.KEY, "00".repeat(32));
    store.save(
        newer,
        io.granule.engine.internal.repo.BlobFrames.frame(
            KeyRing.MAGIC, 3, Arrays.copyOfRange(bytes, 8, bytes.length - 4)));
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "pw".toCharArray()).orElseThrow().blob())
        .isEqualTo(real);
    assertThat(KeyRing.list(store)).extracting(KeyInfo::id).containsExactly(real.name());
    java.util.List<String> why = new java.util.ArrayList<>();
    assertThat(KeyRing.unlock(store, "repo-id", CONFIG, "wrong".toCharArray(), why)).isEmpty();
    assertThat(why).anySatisfy(w -> assertThat(w).contains("version 3"));
  }

  /** Rewrites a key blob's frame version and JSON version. */
  private static final class ObjectNodeEdit {
    static void relabel(LocalBlobStore store, BlobName n, byte[] bytes, int version)
        throws Exception {
      com.fasterxml.jackson.databind.node.ObjectNode j =
          (com.fasterxml.jackson.databind.node.ObjectNode)
              new ObjectMapper().readTree(Arrays.copyOfRange(bytes, 8, bytes.length - 4));
      j.put("version", version);
      store.delete(n);
      store.save(
          n,
          io.granule.engine.internal.repo.BlobFrames.frame(
              KeyRing.MAGIC, version, new ObjectMapper().writeValueAsBytes(j)));
    }
  }
}
