package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedStream;
import io.granule.engine.internal.repo.backup.Damage;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.crypto.KeyInfo;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.ByteArrayInputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An encrypted repository: round trip, nothing readable at rest, wrong password, tampering named,
 * password change without rewriting data.
 */
class EncryptedRepositoryTest {
  private static final String HOST = "secret-host-name";
  // long enough that random ciphertext never contains it by chance (a 3-byte name did, ~1% of runs)
  private static final String DISK = "vda-secret-disk-name";
  private static final String STREAM = "wal-secret-file-name";

  @TempDir Path tmp;
  private Path dir;
  private LocalBlobStore store;
  private byte[] data;
  private Manifest m;

  private static PasswordSource pw(String s) {
    return s::toCharArray;
  }

  private Repository open(String password) {
    return Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"), pw(password));
  }

  @BeforeEach
  void setUp() throws Exception {
    dir = tmp.resolve("repo");
    store = new LocalBlobStore(dir);
    data = TestImages.mixed(4 << 20, 71);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    byte[] stream = ("quick brown fox " + STREAM).repeat(5000).getBytes(StandardCharsets.UTF_8);
    try (Repository repo =
            Repository.init(
                store,
                RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(512 << 10),
                Clock.systemUTC(),
                tmp.resolve("cache"),
                "correct horse".toCharArray(),
                KdfParams.TESTING);
        RawDiskImage img = RawDiskImage.open(image)) {
      m =
          repo.backup(
                  new BackupRequest(
                      List.of(new NamedDisk(DISK, img)),
                      List.of(new NamedStream(STREAM, new ByteArrayInputStream(stream))),
                      HOST,
                      List.of("tag-secret"),
                      null),
                  BackupListener.NONE)
              .manifest();
    }
  }

  @Test
  void roundTripsAndVerifies() throws Exception {
    try (Repository repo = open("correct horse")) {
      assertThat(repo.config().encryption()).isEqualTo("aes-256-gcm");
      assertThat(repo.config().chunkHash()).isEqualTo("blake3-keyed");
      assertThat(repo.config().version()).isEqualTo(3);
      assertThat(repo.resolve("latest")).isEqualTo(m);
      assertThat(repo.resolve("latest").host()).isEqualTo(HOST);
      repo.restoreDisk(m, DISK, tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
      assertThat(repo.verify(true, VerifyListener.NONE).ok()).isTrue();
    }
  }

  @Test
  void noPlaintextAtRest() throws Exception {
    List<byte[]> needles =
        Stream.of("quick brown fox", HOST, STREAM, "tag-secret", DISK)
            .map(s -> s.getBytes(StandardCharsets.UTF_8))
            .toList();
    int files = 0;
    try (Stream<Path> all = Files.walk(dir)) {
      for (Path f : all.filter(Files::isRegularFile).toList()) {
        byte[] content = Files.readAllBytes(f);
        for (byte[] n : needles) {
          assertThat(indexOf(content, n))
              .as("'%s' in %s", new String(n, StandardCharsets.UTF_8), f)
              .isNegative();
        }
        files++;
      }
    }
    assertThat(files).isGreaterThan(5);
    // plain ids of the chunks would say which known content is stored; keyed ones do not
    String plainId = ChunkHasher.javaBlake3(null).hash(data, 0, 64 << 10).toString();
    try (Stream<Path> all = Files.walk(dir)) {
      assertThat(all.map(p -> p.getFileName().toString())).noneMatch(n -> n.equals(plainId));
    }
  }

  @Test
  void wrongPasswordIsItsOwnError() {
    assertThatThrownBy(() -> open("wrong"))
        .isInstanceOf(WrongPasswordException.class)
        .hasMessage(
            "wrong password for repository at '"
                + dir
                + "' (no key matches); try again or use the right --password-file");
    assertThatThrownBy(() -> Repository.open(dir))
        .isInstanceOf(PasswordRequiredException.class)
        .hasMessageContaining("GRANULE_PASSWORD");
  }

  /**
   * A key blob that cannot be read (a FIFO planted at its name, a damaged file) was skipped in
   * silence: the right password was told it was wrong. It is still a wrong-password error (another
   * key may be the one), but it says which key blobs could not be read.
   */
  @Test
  void anUnreadableKeyBlobIsNamedNotJustAWrongPassword() throws Exception {
    List<Path> keys;
    try (Stream<Path> s = Files.list(dir.resolve("keys"))) {
      keys = s.toList();
    }
    assertThat(keys).hasSize(1);
    Files.delete(keys.get(0));
    Process p = new ProcessBuilder("mkfifo", keys.get(0).toString()).start();
    assertThat(p.waitFor()).isZero();
    assertThatThrownBy(() -> open("correct horse"))
        .isInstanceOf(WrongPasswordException.class)
        .hasMessageContaining("if the password is right, the key it opens is not readable")
        .hasMessageContaining("lists no key blob at all");
  }

  @Test
  void changedPasswordOpensAndOldOneNoLonger() throws Exception {
    List<Path> before = files();
    String added;
    try (Repository repo = open("correct horse")) {
      String old = repo.currentKey();
      added = repo.changePassword("battery staple".toCharArray(), KdfParams.TESTING);
      assertThat(repo.keys()).extracting(KeyInfo::id).containsExactly(added).doesNotContain(old);
    }
    assertThatThrownBy(() -> open("correct horse")).isInstanceOf(WrongPasswordException.class);
    try (Repository repo = open("battery staple")) {
      assertThat(repo.currentKey()).isEqualTo(added);
      repo.restoreDisk(m, DISK, tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
    }
    // no data rewritten: only the key blob changed
    List<Path> after = files();
    assertThat(after.stream().filter(p -> !p.startsWith(dir.resolve("keys"))))
        .containsExactlyInAnyOrderElementsOf(
            before.stream().filter(p -> !p.startsWith(dir.resolve("keys"))).toList());
  }

  @Test
  void flippedBitInPackIsNamed() throws Exception {
    BlobName pack = store.list(BlobType.PACK).get(0);
    PackEntry e = PackReader.loadTrailer(store, pack).get(0);
    flip(store.path(pack), e.offset() + 20);
    VerifyReport r = verify();
    assertThat(r.ok()).isFalse();
    assertThat(r.damages()).extracting(Damage::file).contains(pack.toString());
  }

  @Test
  void flippedBitInIndexIsNamed() throws Exception {
    BlobName index = store.list(BlobType.INDEX).get(0);
    flipInsideFrame(index);
    Damage d = damageOf(verify(), index);
    assertThat(d.problems()).anyMatch(p -> p.contains(AesGcmMessage.TEXT));
  }

  @Test
  void flippedBitInSnapshotIsNamed() throws Exception {
    BlobName snap = new BlobName(BlobType.SNAPSHOT, m.id());
    flipInsideFrame(snap);
    VerifyReport r = verify();
    assertThat(r.affectedSnapshots()).containsExactly(m.id());
    assertThat(damageOf(r, snap).problems()).anyMatch(p -> p.contains(AesGcmMessage.TEXT));
    try (Repository repo = open("correct horse")) {
      assertThatThrownBy(() -> repo.resolve(m.id()))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessage("snapshot " + snap + ": " + AesGcmMessage.TEXT);
    }
  }

  @Test
  void snapshotSwappedForAnotherBlobFailsAuthentication() throws Exception {
    // same key, valid ciphertext, wrong name: the AAD binds each blob to its name
    BlobName snap = new BlobName(BlobType.SNAPSHOT, m.id());
    BlobName index = store.list(BlobType.INDEX).get(0);
    Files.copy(
        store.path(index), store.path(snap), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    try (Repository repo = open("correct horse")) {
      assertThatThrownBy(() -> repo.resolve(m.id()))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining(AesGcmMessage.TEXT);
    }
  }

  /** The codec's message, spelled out so a change to it is a visible test change. */
  private static final class AesGcmMessage {
    static final String TEXT = "authentication failed: the data was changed or damaged";
  }

  private VerifyReport verify() {
    try (Repository repo = open("correct horse")) {
      return repo.verify(true, VerifyListener.NONE);
    }
  }

  private static Damage damageOf(VerifyReport r, BlobName name) {
    return r.damages().stream()
        .filter(d -> d.file().equals(name.toString()))
        .findFirst()
        .orElseThrow(() -> new AssertionError(name + " not named in " + r.damages()));
  }

  /** Flips a bit in the ciphertext of a codec-encoded blob. */
  private void flipInsideFrame(BlobName name) throws Exception {
    flip(store.path(name), Files.size(store.path(name)) / 2);
  }

  private static void flip(Path file, long at) throws Exception {
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.seek(at);
      int v = f.read();
      f.seek(at);
      f.write(v ^ 0x10);
    }
  }

  private List<Path> files() throws Exception {
    try (Stream<Path> all = Files.walk(dir)) {
      return all.filter(Files::isRegularFile).toList();
    }
  }

  private static int indexOf(byte[] hay, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= hay.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
